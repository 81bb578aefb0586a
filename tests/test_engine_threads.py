"""Torch's thread count: a block sets `train.threads` and gives the caller's count back, as a fold task does."""

from __future__ import annotations

import pytest
import torch

from _engine import make_cache
from pamer.config import SHIPPED, load_config
from pamer.engine.executors import run_fold
from pamer.engine.threads import torch_threads


def _other(threads: int) -> int:
    return 2 if threads == 1 else 1


def test_torch_threads_sets_the_count_and_gives_the_callers_back() -> None:
    before = torch.get_num_threads()
    other = _other(before)
    with torch_threads(other):
        assert torch.get_num_threads() == other
    assert torch.get_num_threads() == before
    with pytest.raises(KeyError), torch_threads(other):
        raise KeyError("the block failed")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("threads", [0, None])
def test_torch_threads_without_a_count_leaves_it_and_undoes_what_the_block_set(threads: int | None) -> None:
    before = torch.get_num_threads()
    with torch_threads(threads):
        assert torch.get_num_threads() == before
        torch.set_num_threads(_other(before))
    assert torch.get_num_threads() == before


def test_a_fold_task_trains_on_the_runs_threads_and_gives_the_callers_back() -> None:
    before = torch.get_num_threads()
    other = _other(before)
    sets = ["model.name=pamnet_test", "train.epochs=1", "train.input_size=32", f"train.threads={other}"]
    config = load_config(SHIPPED / "paper" / "smic.yaml", sets)
    output = run_fold(config.to_dict(), make_cache(per_subject=4, labels="every class"), 0)
    assert output.threads == other  # the count its fold file records: the one it trained on
    assert torch.get_num_threads() == before
