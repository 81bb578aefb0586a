"""The one training loop (`fold.train_learner`) that drives one fold and the stack alike."""

from __future__ import annotations

import time

import numpy as np
import pytest
from torch import nn

from pamer.config import load_config
from pamer.engine.fold import DivergedError, train_learner


class ScriptedLearner:
    """Two folds whose epoch losses and test predictions follow a script (fold 1 has no test clips)."""

    def __init__(self, losses: list[list[float]]) -> None:
        self.losses = losses
        self.means, self.stds = [[0.1], [0.2]], [[1.0], [2.0]]
        self.epoch = 0
        self.predictions = 0

    def train_epoch(self) -> list[tuple[float, float]]:
        self.epoch += 1
        return [(loss, 0.5) for loss in self.losses[self.epoch - 1]]

    def predict(self) -> list[np.ndarray | None]:
        self.predictions += 1
        probs = np.zeros((2, 3))
        probs[:, self.epoch % 3] = 1.0  # the predicted class follows the epoch
        return [probs, None]

    def model(self, k: int) -> nn.Module:
        return nn.Identity()


def test_oracle_records_every_epoch_and_the_final_prediction_once() -> None:
    config = load_config(None, ["train.epochs=3", "oracle=true"])
    learner = ScriptedLearner([[1.0, 1.0]] * 3)
    first, second = train_learner(config, learner, start=time.perf_counter())
    assert learner.predictions == 3  # two oracle epochs and the final prediction, no fourth
    assert first.epoch_preds.tolist() == [[1, 1], [2, 2], [0, 0]]
    assert second.epoch_preds is None and second.probs is None  # no test clips: nothing recorded
    assert first.history == [(1.0, 0.5)] * 3 and (first.mean, second.std) == ([0.1], [2.0])


def test_divergence_stops_at_its_epoch_and_names_the_folds() -> None:
    config = load_config(None, ["train.epochs=3"])
    learner = ScriptedLearner([[1.0, 1.0], [1.0, float("nan")], [1.0, 1.0]])
    calls = []
    with pytest.raises(DivergedError, match=r"at epoch 2: the mean training loss is nan") as err:
        train_learner(config, learner, start=time.perf_counter(), on_epoch=lambda e, s: calls.append(e))
    assert err.value.positions == [1]
    assert calls == [1] and learner.epoch == 2  # nothing after the diverged epoch
