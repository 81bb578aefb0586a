"""Classification metrics of the paper (eq. 11-13) and of MEGC2019 (UF1 = macro-F1, UAR), from a confusion matrix."""

from __future__ import annotations

import numpy as np

__all__ = ["confusion_matrix", "oracle_metrics", "pooled_metrics", "scores", "scores_of"]


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts `C[t, p]` of clips of true class `t` predicted as `p`.

    Shape:
        - y_true, y_pred: (N,) integer class indices in [0, num_classes).
        - Output: (num_classes, num_classes) int64.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true and y_pred must be 1-D of equal length, got {y_true.shape} and {y_pred.shape}")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} holds class indices outside [0, {num_classes}): {sorted(set(y.tolist()))}")
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def scores_of(confusions: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1 (= MEGC2019's UF1) and UAR of each confusion matrix of a stack: the one definition of
    the metrics in pamer (`scores` for one matrix, `pamer.report.bootstrap` for bootstrap draws).

    Accuracy is eq. 11; F1_a = 2 TP_a / (N_true_a + N_pred_a) (eq. 12) averaged over the classes (eq. 13).
    A class with neither true nor predicted clips has no defined F1 and is left out of the mean, and a class
    with no true clips has no recall and is left out of UAR: so the numbers equal scikit-learn's
    `accuracy_score`, `f1_score(average='macro')` and `balanced_accuracy_score` on the same labels. An empty
    matrix scores 0.

    Shape:
        - confusions: (..., K, K) counts (or weighted counts) `C[..., t, p]`.
        - Output: each metric (...).
    """
    confusions = np.asarray(confusions, dtype=np.float64)
    tp = np.diagonal(confusions, axis1=-2, axis2=-1)
    n_true = confusions.sum(axis=-1)
    n_pred = confusions.sum(axis=-2)
    total = confusions.sum(axis=(-2, -1))
    present = (n_true + n_pred) > 0
    f1 = np.divide(2 * tp, n_true + n_pred, out=np.zeros_like(tp), where=present)
    n_present = present.sum(axis=-1)
    f1_macro = np.divide(f1.sum(axis=-1), n_present, out=np.zeros(f1.shape[:-1]), where=n_present > 0)
    has_true = n_true > 0
    recall = np.divide(tp, n_true, out=np.zeros_like(tp), where=has_true)
    n_has = has_true.sum(axis=-1)
    uar = np.divide(recall.sum(axis=-1), n_has, out=np.zeros(recall.shape[:-1]), where=n_has > 0)
    accuracy = np.divide(tp.sum(axis=-1), total, out=np.zeros(total.shape), where=total > 0)
    return {"accuracy": accuracy, "f1_macro": f1_macro, "uf1": f1_macro, "uar": uar}


def scores(confusion: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1 (= MEGC2019's UF1) and UAR of one confusion matrix (K x K), as `scores_of` defines them."""
    return {name: float(value) for name, value in scores_of(confusion).items()}


def pooled_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, groups: list[str] | np.ndarray, classes: tuple[str, ...] | list[str]
) -> dict:
    """Headline metrics on the predictions of all folds pooled, plus each fold's own and their mean.

    Args:
        y_true, y_pred: class indices of every test clip of every fold.
        groups: the fold (test subject) of each clip.
        classes: class names, in index order.

    Returns:
        `accuracy`, `f1_macro`, `uf1`, `uar` (pooled), `confusion` (list of rows), `classes`, `per_fold`
        ({subject: {n, accuracy, f1_macro}}) and `per_fold_mean` (the mean of the folds' accuracy and
        F1, which some papers report instead of the pooled numbers).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    groups = np.asarray(groups)
    num_classes = len(classes)
    confusion = confusion_matrix(y_true, y_pred, num_classes)
    result: dict = scores(confusion)
    per_fold = {}
    for subject in sorted(set(groups.tolist())):
        mask = groups == subject
        fold = scores(confusion_matrix(y_true[mask], y_pred[mask], num_classes))
        per_fold[subject] = {"n": int(mask.sum()), "accuracy": fold["accuracy"], "f1_macro": fold["f1_macro"]}
    result["per_fold"] = per_fold
    result["per_fold_mean"] = {
        "accuracy": float(np.mean([f["accuracy"] for f in per_fold.values()])) if per_fold else 0.0,
        "f1_macro": float(np.mean([f["f1_macro"] for f in per_fold.values()])) if per_fold else 0.0,
    }
    result["classes"] = list(classes)
    result["confusion"] = confusion.tolist()
    return result


def oracle_metrics(
    y_true: np.ndarray, per_epoch: np.ndarray, groups: list[str] | np.ndarray, classes: tuple[str, ...] | list[str]
) -> dict:
    """The peers' best-epoch practice, for contrast only: each fold scored at the first epoch with the most correct
    test clips of that fold (an epoch chosen by looking at the test subject), then pooled.

    Shape:
        - y_true: (N,) class indices; per_epoch: (N, E) each clip's predicted class after each epoch.

    Returns:
        `accuracy`, `f1_macro`, `uf1`, `uar`, `per_fold_mean` and `confusion` of `pooled_metrics` on the chosen
        epochs' predictions, and `best_epoch` ({subject: epoch, 1-based}).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    per_epoch = np.asarray(per_epoch, dtype=np.int64)
    groups = np.asarray(groups)
    best_pred = np.empty_like(y_true)
    best_epoch = {}
    for subject in sorted(set(groups.tolist())):
        mask = groups == subject
        hits = (per_epoch[mask] == y_true[mask, None]).sum(axis=0)
        e = int(hits.argmax())  # the first epoch with the most correct test clips
        best_epoch[subject] = e + 1
        best_pred[mask] = per_epoch[mask, e]
    m = pooled_metrics(y_true, best_pred, groups, classes)
    return {
        **{k: m[k] for k in ("accuracy", "f1_macro", "uf1", "uar", "per_fold_mean", "confusion")},
        "best_epoch": best_epoch,
    }
