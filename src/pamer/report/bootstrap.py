"""Subject-level bootstrap of pooled LOSO metrics, vectorised over the draws.

The clips of one subject are not independent (one person, one session), so the unit resampled is the subject:
each draw picks as many subjects as there are, with replacement, and pools their clips. A draw is a vector of
counts (how often each subject was picked), so the pooled confusion matrix of every draw is one matrix product
of the counts with the per-subject confusion matrices, and the metrics of all draws come out together.
"""

from __future__ import annotations

import numpy as np

from pamer.engine.metrics import scores_of

__all__ = ["DRAWS", "LEVEL", "SEED", "draw_counts", "interval", "metric_values", "subject_confusions"]

DRAWS = 2000
SEED = 0
LEVEL = 0.95


def subject_confusions(
    subjects: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray, order: list[str], num_classes: int
) -> np.ndarray:
    """One confusion matrix per subject, `C[s, t, p]` clips of subject `order[s]` of true class t predicted p.

    Shape:
        - subjects, y_true, y_pred: (N,); y_true and y_pred class indices in [0, num_classes).
        - Output: (len(order), num_classes, num_classes) int64.
    """
    position = {s: i for i, s in enumerate(order)}
    s = np.array([position[x] for x in np.asarray(subjects).tolist()], dtype=np.int64)
    flat = (s * num_classes + np.asarray(y_true, dtype=np.int64)) * num_classes + np.asarray(y_pred, dtype=np.int64)
    counts = np.bincount(flat, minlength=len(order) * num_classes**2)
    return counts.reshape(len(order), num_classes, num_classes)


def draw_counts(n_subjects: int, draws: int = DRAWS, seed: int = SEED) -> np.ndarray:
    """How often each subject is picked in each draw: `rng.integers(0, n, (draws, n))` counted per row.

    The same `n_subjects`, `draws` and `seed` give the same draws, so two runs on the same subjects are
    resampled identically (a paired bootstrap) when each calls this.

    Shape:
        - Output: (draws, n_subjects) int64, each row summing to n_subjects.
    """
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, n_subjects, size=(draws, n_subjects))
    rows = np.arange(draws)[:, None] * n_subjects
    return np.bincount((picks + rows).ravel(), minlength=draws * n_subjects).reshape(draws, n_subjects)


def metric_values(confusions: np.ndarray, weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Accuracy, macro-F1 (= UF1) and UAR of pooled confusion matrices, by the engine's one definition
    (`pamer.engine.metrics.scores_of`), so a draw with all subjects once gives the run's own numbers.

    Args:
        confusions: per-subject confusion matrices, (..., S, K, K).
        weights: (B, S) counts of each subject per draw (`draw_counts`); None pools every subject once.

    Returns:
        Each metric as an array of shape (..., B) (or (...) when `weights` is None).
    """
    confusions = np.asarray(confusions, dtype=np.float64)
    if weights is None:
        pooled = confusions.sum(axis=-3)
    else:
        pooled = np.einsum("bs,...skl->...bkl", np.asarray(weights, dtype=np.float64), confusions)
    return scores_of(pooled)


def interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The central `level` percentile interval of bootstrap draws (2.5th and 97.5th percentiles at 0.95)."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(np.asarray(values, dtype=np.float64), [tail, 100 - tail])
    return float(low), float(high)
