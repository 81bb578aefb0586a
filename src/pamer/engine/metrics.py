"""Classification metrics of the paper (eq. 11-13) and of MEGC2019 (UF1 = macro-F1, UAR), from a confusion matrix."""

from __future__ import annotations

import numpy as np

__all__ = ["confusion_matrix", "pooled_metrics", "scores"]


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


def scores(confusion: np.ndarray) -> dict[str, float]:
    """Accuracy, macro-F1 (= MEGC2019's UF1) and UAR of a confusion matrix.

    Accuracy is eq. 11; F1_a = 2 TP_a / (N_true_a + N_pred_a) (eq. 12) averaged over the classes (eq. 13).
    A class with neither true nor predicted clips has no defined F1 and is left out of the mean, and a class
    with no true clips has no recall and is left out of UAR: so the numbers equal scikit-learn's
    `accuracy_score`, `f1_score(average='macro')` and `balanced_accuracy_score` on the same labels.
    """
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    n_true = confusion.sum(axis=1)
    n_pred = confusion.sum(axis=0)
    total = confusion.sum()
    present = (n_true + n_pred) > 0
    f1 = 2 * tp[present] / (n_true[present] + n_pred[present])
    has_true = n_true > 0
    recall = tp[has_true] / n_true[has_true]
    f1_macro = float(f1.mean()) if f1.size else 0.0
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "f1_macro": f1_macro,
        "uf1": f1_macro,
        "uar": float(recall.mean()) if recall.size else 0.0,
    }


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
