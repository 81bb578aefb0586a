"""The classifier of the classic methods: a linear SVM fitted on one fold's training clips, and its scores.

LIBSVM (scikit-learn's `SVC`) with a linear kernel, as the LBP-TOP and Bi-WOOF baselines use: one-vs-one
training, `decision_function_shape="ovr"` scores (the one-vs-one votes plus a confidence term that breaks ties) and
`break_ties=True`, so the predicted class is exactly the arg-max of the scores. The kernel is precomputed: the dot
products of every pair of clips' features (`linear_kernel`) are computed once per run, and each fit reads the block
of its training clips, each prediction the test clips' dot products with the training clips - the same numbers a
`kernel="linear"` SVM computes for itself, without recomputing them in every fold and inner fold.

Nothing of a test clip reaches the fit: a fold's SVM is fitted on the training clips' block of the kernel alone, C
is fixed in the configuration or chosen by `choose_c` on the training subjects alone, and the features themselves
are computed per clip, with nothing fitted across clips.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import f1_score
from sklearn.svm import SVC

__all__ = ["choose_c", "linear_kernel", "svm_scores", "softmax"]


def linear_kernel(features: np.ndarray) -> np.ndarray:
    """The dot product of every pair of clips' features: (N, D) -> (N, N) float64."""
    x = np.asarray(features, dtype=np.float64)
    return x @ x.T


def _scores(
    gram_train: np.ndarray,
    gram_test: np.ndarray,
    y_train: np.ndarray,
    num_classes: int,
    c: float,
    balanced: bool,
) -> np.ndarray:
    present = np.unique(y_train)
    scores = np.full((gram_test.shape[0], num_classes), -np.inf)
    if len(present) == 1:  # a one-class training set: that class, whatever the input
        scores[:, present[0]] = 0.0
        return scores
    svm = SVC(
        kernel="precomputed",
        C=c,
        decision_function_shape="ovr",
        break_ties=True,
        class_weight="balanced" if balanced else None,
    )
    svm.fit(gram_train, y_train)
    values = svm.decision_function(gram_test)
    if values.ndim == 1:  # two classes: one signed distance, positive for the second
        values = np.stack([-values, values], axis=1)
    scores[:, svm.classes_] = values
    return scores


def svm_scores(
    kernel: np.ndarray,
    labels: np.ndarray,
    train_idx: np.ndarray,
    test_idx: np.ndarray,
    num_classes: int,
    c: float,
    balanced: bool = False,
) -> np.ndarray:
    """Fit a linear SVM on the clips `train_idx`, and score the clips `test_idx`.

    Args:
        kernel: (N, N) `linear_kernel` of every clip's features (only the rows of `train_idx` and `test_idx` and
            the columns of `train_idx` are read).
        labels: (N,) class index of every clip (only the training clips' are read).
        train_idx, test_idx: clip indices.
        num_classes: number of classes C.
        c: the SVM's C.
        balanced: weigh each class's errors by the inverse of its share of the training clips.

    Returns:
        (len(test_idx), C) float64 decision values; -inf for a class with no training clip.
    """
    train_idx, test_idx = np.asarray(train_idx), np.asarray(test_idx)
    gram_train = kernel[np.ix_(train_idx, train_idx)]
    gram_test = kernel[np.ix_(test_idx, train_idx)]
    return _scores(gram_train, gram_test, np.asarray(labels)[train_idx], num_classes, c, balanced)


def choose_c(
    kernel: np.ndarray,
    labels: np.ndarray,
    subjects: Sequence[str],
    train_idx: np.ndarray,
    grid: Sequence[float],
    num_classes: int,
    balanced: bool = False,
) -> float:
    """The C of `grid` with the best pooled macro-F1 (UF1) in a leave-one-subject-out over the training clips.

    Only the clips `train_idx` are read (their block of `kernel`, their labels and subjects): each of their
    subjects is held out once, the SVM fitted on the others, and the held-out predictions of all inner folds
    pooled. Ties go to the smallest C (the simplest model).
    """
    train_idx = np.asarray(train_idx)
    gram = kernel[np.ix_(train_idx, train_idx)]
    y = np.asarray(labels)[train_idx]
    groups = np.asarray(subjects)[train_idx]
    inner = sorted(set(groups.tolist()))
    if len(inner) < 2:
        raise ValueError(f"choosing C by an inner leave-one-subject-out needs 2 training subjects, got {inner}")
    best_c, best_f1 = None, -1.0
    for c in sorted(grid):
        predicted = np.empty_like(y)
        for subject in inner:
            held = groups == subject
            fit, out = np.flatnonzero(~held), np.flatnonzero(held)
            scores = _scores(gram[np.ix_(fit, fit)], gram[np.ix_(out, fit)], y[fit], num_classes, c, balanced)
            predicted[out] = scores.argmax(axis=1)
        f1 = f1_score(y, predicted, average="macro")
        if f1 > best_f1:
            best_c, best_f1 = c, f1
    return float(best_c)


def softmax(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of decision values: a score in [0, 1] per class, whose arg-max is the SVM's prediction.

    Not a calibrated probability (LIBSVM's Platt scaling would need an internal cross-validation and can
    disagree with the prediction); a class scored -inf gets 0.
    """
    shifted = scores - scores.max(axis=1, keepdims=True)
    weights = np.exp(shifted)
    return weights / weights.sum(axis=1, keepdims=True)
