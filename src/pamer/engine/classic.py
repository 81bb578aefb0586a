"""One LOSO fold of a classic method (`pamer.classic`): every clip's features (and their linear kernel) once per
process, then a linear SVM fitted on the fold's training subjects only and scored on its test subject.

The fold's `FoldOutput.probs` are the softmax of the SVM's decision values: their arg-max is the SVM's prediction,
but they are scores, not calibrated probabilities. A classic fold has no epochs: no history, no per-epoch
predictions (`oracle` is refused by `check_classic`).
"""

from __future__ import annotations

import time
import weakref
from typing import Any

import numpy as np

from pamer.classic import classic_features, feature_options, svm_options
from pamer.classic.svm import choose_c, linear_kernel, softmax, svm_scores
from pamer.config import Config
from pamer.engine.fold import FoldOutput, fold_plan
from pamer.preprocess.cache import Cache

__all__ = ["classic_fold", "kernel_for"]

# per process: the linear kernel of the last cache's features. A weak reference identifies the cache without keeping
# its arrays alive after the run (an id() alone could be reused by another cache once the first is freed).
_KERNEL: dict[str, Any] = {}


def kernel_for(config: Config, cache: Cache) -> np.ndarray:
    """The linear kernel of every clip's features for the configured classic method, computed on the first call for
    a cache (features of each clip alone, then their dot products: no fold's choice is in it)."""
    key = (config.model.name, tuple(sorted(feature_options(config).items())))
    held = _KERNEL.get("cache")
    if held is None or held() is not cache or _KERNEL.get("key") != key:
        _KERNEL.clear()
        _KERNEL.update(cache=weakref.ref(cache), key=key, kernel=linear_kernel(classic_features(config, cache)))
    return _KERNEL["kernel"]


def classic_fold(config: Config, cache: Cache, fold: int) -> FoldOutput:
    """Fit the SVM on fold `fold`'s training subjects (C fixed, or chosen on them alone) and score its test subject."""
    start = time.perf_counter()
    kernel = kernel_for(config, cache)
    labels = np.asarray(cache.labels, dtype=np.int64)
    subject, train_idx, test_idx = fold_plan(cache.subjects)[fold]
    c, grid = svm_options(config)
    balanced = config.train.class_weights
    classes = len(cache.classes)
    if grid:
        c = choose_c(kernel, labels, cache.subjects, train_idx, grid, classes, balanced)
    scores = svm_scores(kernel, labels, train_idx, test_idx, classes, c, balanced)
    seconds = time.perf_counter() - start
    # numpy in float64 on the CPU whatever train.device says; its BLAS threads are not torch's, so none recorded
    return FoldOutput(subject, test_idx, softmax(scores), None, [], seconds, device="cpu", dtype="float64")
