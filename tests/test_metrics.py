"""Metrics equal scikit-learn's on random labels, with classes missing from folds and from the truth."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from sklearn.metrics import confusion_matrix as sk_confusion

from pamer.engine.metrics import confusion_matrix, pooled_metrics, scores


@pytest.mark.parametrize("seed", range(20))
def test_scores_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    num_classes = int(rng.integers(2, 7))
    n = int(rng.integers(5, 60))
    y_true = rng.integers(0, num_classes, n)
    y_pred = rng.integers(0, num_classes, n)
    if seed % 3 == 0:  # a class never true but predicted, another never true nor predicted
        y_true[y_true == 0] = 1
        y_pred[y_pred == num_classes - 1] = 1
    s = scores(confusion_matrix(y_true, y_pred, num_classes))
    assert abs(s["accuracy"] - accuracy_score(y_true, y_pred)) < 1e-12
    assert abs(s["f1_macro"] - f1_score(y_true, y_pred, average="macro")) < 1e-12
    assert s["uf1"] == s["f1_macro"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns when y_pred holds a class y_true lacks
        expected_uar = balanced_accuracy_score(y_true, y_pred)
    assert abs(s["uar"] - expected_uar) < 1e-12


def test_confusion_matches_sklearn() -> None:
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, 4), sk_confusion(y_true, y_pred, labels=range(4)))


def test_hand_computed_f1() -> None:
    # class 0: TP 2, true 3, pred 2 -> 0.8; class 1: TP 1, true 1, pred 2 -> 2/3; class 2: never seen -> left out
    s = scores(confusion_matrix(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1]), 3))
    assert s["f1_macro"] == pytest.approx((0.8 + 2 / 3) / 2, abs=1e-15)
    assert s["accuracy"] == 0.75
    assert s["uar"] == pytest.approx((2 / 3 + 1) / 2, abs=1e-15)


def test_pooled_differs_from_fold_mean_and_matches_sklearn() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat([f"s{i}" for i in range(6)], rng.integers(2, 9, 6))
    n = len(groups)
    y_true, y_pred = rng.integers(0, 3, n), rng.integers(0, 3, n)
    m = pooled_metrics(y_true, y_pred, groups, ("a", "b", "c"))
    assert abs(m["f1_macro"] - f1_score(y_true, y_pred, average="macro")) < 1e-12
    for subject, fold in m["per_fold"].items():
        mask = groups == subject
        assert fold["n"] == mask.sum()
        assert abs(fold["f1_macro"] - f1_score(y_true[mask], y_pred[mask], average="macro")) < 1e-12
        assert abs(fold["accuracy"] - accuracy_score(y_true[mask], y_pred[mask])) < 1e-12
    fold_mean = np.mean([f["f1_macro"] for f in m["per_fold"].values()])
    assert abs(m["per_fold_mean"]["f1_macro"] - fold_mean) < 1e-12
    assert abs(m["per_fold_mean"]["f1_macro"] - m["f1_macro"]) > 1e-6  # the two definitions are not confused


def test_bad_indices_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(np.array([0, 3]), np.array([0, 1]), 3)
