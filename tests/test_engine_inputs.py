"""What the engine feeds the network from each kind of cache: apex crops alone, metric and normalised flow, and the
clear errors when a cache lacks what the configuration asks for."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from _engine import make_cache
from pamer.config import load_config
from pamer.engine import run_loso
from pamer.engine.augment import random_affine, warp
from pamer.engine.inputs import prepare_inputs
from pamer.engine.rundir import cache_fingerprint
from pamer.preprocess.cache import CacheError
from pamer.preprocess.network_input import motion_inputs

# 3 subjects x 3 clips of 24 px
SMALL = {"per_subject": 3, "size": 24, "labels": "every class"}


def _config(*extra: str):
    return load_config(
        None,
        ["model.name=pamnet_test", "train.epochs=1", "train.input_size=24", "train.batch_size=4"]
        + ["train.threads=1", "train.device=cpu", *extra],
    )


def _stretch(flow: np.ndarray) -> np.ndarray:
    """Min-max stretch each channel of one flow field to 0..255, as the HTNet/STSTNet flow images were made."""
    low, high = flow.min(axis=(0, 1)), flow.max(axis=(0, 1))
    return 255 * (flow - low) / (high - low)


def test_normalised_flow_flips_like_the_stretch_of_the_flipped_flow() -> None:
    """Flip the metric flow (mirror, negate u) and stretch it: that is what a flip of the stretched image must give."""
    rng = np.random.default_rng(1)
    metric = rng.normal(0, 1.5, (16, 16, 3))
    metric[..., 2] = np.abs(metric[..., 2])  # strain is a magnitude
    flipped = metric[:, ::-1].copy()
    flipped[..., 0] *= -1
    want = _stretch(flipped)

    image = _stretch(metric).astype(np.float32)[None]
    theta = random_affine(1, hflip=1.0, rotation=0.0, crop_scale=1.0)
    centred = motion_inputs(image, None, 16, representation="flow", flow_kind="normalised")
    got = warp(centred, theta, vector_channels=(0, 1))[0].permute(1, 2, 0).numpy()
    got[..., :2] += 127.5
    np.testing.assert_allclose(got, want, atol=1e-3)
    # read as metric, the same image would flip to negative u: 0..255 values are not velocities
    wrong = warp(motion_inputs(image, None, 16, representation="flow"), theta, vector_channels=(0, 1))
    assert wrong[0, 0].max() <= 0 and np.abs(wrong[0].permute(1, 2, 0).numpy() - want).max() > 100


def test_normalised_centring_leaves_the_cache_untouched() -> None:
    flow = np.full((2, 8, 8, 3), 200.0, dtype=np.float32)
    x = motion_inputs(flow, None, 8, representation="flow", flow_kind="normalised")
    assert torch.all(x[:, :2] == 72.5) and torch.all(x[:, 2] == 200.0)
    assert np.all(flow == 200.0)
    with pytest.raises(ValueError, match="unknown flow_kind 'stretched'; expected one of metric, normalised"):
        motion_inputs(flow, None, 8, representation="flow", flow_kind="stretched")


def test_apex_input_is_the_apex_crop_alone() -> None:
    cache = make_cache(**SMALL)
    x = prepare_inputs(cache, _config("data.representation=apex"), torch.device("cpu"))
    want = torch.as_tensor(cache.apex).permute(0, 3, 1, 2).float() / 255
    torch.testing.assert_close(x, want, rtol=0, atol=0)
    apex_only = make_cache(**SMALL, arrays=("apex",))
    torch.testing.assert_close(prepare_inputs(apex_only, _config("data.representation=apex"), "cpu"), want)
    resized = prepare_inputs(apex_only, _config("data.representation=apex", "train.input_size=16"), "cpu")
    want16 = F.interpolate(want, size=(16, 16), mode="bilinear", align_corners=False, antialias=True)
    torch.testing.assert_close(resized, want16)


@pytest.mark.parametrize(
    ("arrays", "representation", "message"),
    [
        (("apex",), "diff", "cache caches/x holds apex crops only, no onset; set data.representation=apex"),
        (("flow",), "diff", "cache caches/x holds flow images only, no onset; set data.representation=flow"),
        (("flow",), "apex", "cache caches/x holds no apex crops .* prepare it with --representation apex"),
        (("apex",), "flow", "cache caches/x has no flow field; prepare it with --representation flow"),
    ],
)
def test_a_cache_without_the_input_asked_for_is_named(arrays, representation: str, message: str) -> None:
    config = _config(f"data.representation={representation}", "data.cache=caches/x")
    with pytest.raises(CacheError, match=message):
        prepare_inputs(make_cache(**SMALL, arrays=arrays), config, torch.device("cpu"))


def test_fingerprint_covers_origins_and_absent_arrays() -> None:
    full = make_cache(**SMALL)
    apex_only = make_cache(**SMALL, arrays=("apex",))
    assert cache_fingerprint(full) != cache_fingerprint(apex_only)
    mixed = make_cache(**SMALL, datasets=["casme2", "samm", "smic"] * 3)
    relabelled = make_cache(**SMALL, datasets=["casme2", "smic", "samm"] * 3)
    assert len({cache_fingerprint(full), cache_fingerprint(mixed), cache_fingerprint(relabelled)}) == 3


def test_fingerprint_covers_aus_and_landmarks() -> None:
    base = make_cache(**SMALL)
    aus = np.eye(9, 3, dtype=np.float32)
    landmarks = np.random.default_rng(1).uniform(0, 24, (9, 2, 68, 2)).astype(np.float32)
    coded = dataclasses.replace(base, aus=aus, au_names=("1", "4", "12"))
    other_au = dataclasses.replace(base, aus=aus[::-1].copy(), au_names=("1", "4", "12"))
    renamed = dataclasses.replace(base, aus=aus, au_names=("1", "4", "14"))
    placed = dataclasses.replace(base, landmarks=landmarks)
    moved = dataclasses.replace(base, landmarks=landmarks + 1)
    prints = [cache_fingerprint(c) for c in (base, coded, other_au, renamed, placed, moved)]
    assert len(set(prints)) == len(prints)


def test_loso_on_apex_crops_alone_writes_the_origins(tmp_path) -> None:
    cache = make_cache(**SMALL, arrays=("apex",), datasets=["casme2", "samm", "smic"] * 3)
    metrics = run_loso(_config("data.representation=apex"), tmp_path, "local", cache=cache, quiet=True)
    assert metrics["clips"] == 9 and metrics["folds"] == 3
    folds = pd.concat([pd.read_csv(p) for p in sorted((tmp_path / "folds").glob("*.csv"))])
    assert dict(zip(folds["clip"], folds["dataset"], strict=True)) == dict(
        zip(cache.clips, cache.datasets, strict=True)
    )
