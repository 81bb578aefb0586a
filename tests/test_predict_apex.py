"""`pamer predict` with models of the apex frame alone: from a pamer cache (aligned apex crops) and from ready-made
crops (htnet), where the frame is the crop."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from _htnet import APEX, build_htnet_tree
from _trees import prepare_synthetic
from pamer.checkpoint import CheckpointError, write_checkpoint
from pamer.cli import app
from pamer.config import ConfigError, load_config
from pamer.data import read
from pamer.engine import train_final
from pamer.predict import PredictError, Recognizer
from pamer.preprocess import load_cache
from pamer.preprocess.images import prepare_images
from pamer.preprocess.network_input import model_input

runner = CliRunner()
TRAIN = ["model.name=pamnet_test", "data.representation=apex", "seed=0"]
TRAIN += ["train.epochs=1", "train.batch_size=4", "train.input_size=32", "train.device=cpu", "train.threads=1"]


def _train(cache: Path, out: Path) -> Path:
    threads = torch.get_num_threads()
    try:
        return train_final(load_config(None, [*TRAIN, f"data.cache={cache}"]), out)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def aligned(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A pamnet_test trained on the apex crops of a `pamer prepare`d synthetic CASME II-style set."""
    work = tmp_path_factory.mktemp("apex")
    root, cache = prepare_synthetic(work)
    model = _train(cache, work / "model")
    assert json.loads((model / "model.json").read_text())["representation"] == "apex"
    return {"model": model, "cache": cache, "index": read("casme2", root, "megc2019"), "work": work}


def test_apex_model_sees_the_cached_apex_crop(aligned: dict) -> None:
    cache = load_cache(aligned["cache"])
    recognizer = Recognizer.from_dir(aligned["model"])
    sample = aligned["index"].samples[0]
    k = list(zip(cache.subjects, cache.clips, strict=True)).index((sample.subject, sample.clip))
    result = recognizer.predict(sample.frames[0].parent, onset=sample.onset, apex=sample.apex, register=False)
    np.testing.assert_array_equal(result.apex_crop, cache.apex[k])  # aligned on the onset, as the cache was
    card = recognizer.card
    expected = model_input(
        None, cache.apex[k : k + 1], input_size=32, mean=card.mean, std=card.std, representation="apex"
    )
    np.testing.assert_array_equal(result.motion, expected[0].numpy())
    assert (result.onset, result.onset_source) == (sample.onset, "given")


def test_apex_model_needs_only_the_apex_frame(aligned: dict, tmp_path: Path) -> None:
    sample = aligned["index"].samples[1]
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(sample.apex_path, alone / sample.apex_path.name)
    recognizer = Recognizer.from_dir(aligned["model"])
    result = recognizer.predict(alone)
    assert (result.onset, result.onset_source, result.onset_crop) == (None, "unused", None)
    assert (result.apex, result.apex_source) == (sample.apex, "only")
    assert result.face["face"] is True and result.apex_crop.shape == (48, 48, 3)
    assert sum(result.probabilities.values()) == pytest.approx(1.0)
    # a given apex in a whole clip: no onset used either
    given = recognizer.predict(sample.frames[0].parent, apex=sample.apex)
    assert (given.onset_source, given.apex_source, given.apex) == ("unused", "given", sample.apex)
    # the command line says so, and draws the picture from the network's input
    picture = tmp_path / "apex.png"
    table = runner.invoke(app, ["predict", str(aligned["model"]), "--frames", str(alone), "--picture", str(picture)])
    assert table.exit_code == 0, table.output
    assert "onset not used: the model reads the apex frame alone" in table.stdout
    assert "the clip's only frame" in table.stdout and picture.stat().st_size > 0
    as_json = runner.invoke(app, ["predict", str(aligned["model"]), "--frames", str(alone), "--json"])
    assert json.loads(as_json.stdout)["onset"] == {"frame": None, "name": None, "source": "unused"}
    # an onset given on the only frame: nothing comes after it, and leaving it out is what helps
    with pytest.raises(PredictError, match=r"the clip holds one frame; leave out --onset, and model 'pamnet_test' rea"):
        recognizer.predict(alone, onset=sample.apex)


def test_a_diff_model_still_needs_two_frames(aligned: dict, tmp_path: Path) -> None:
    sample = aligned["index"].samples[1]
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(sample.apex_path, alone / sample.apex_path.name)
    diff = _train_diff(aligned)
    # an --apex cannot help (it must come after the onset): the message said to give one
    with pytest.raises(
        PredictError, match="no frame after onset .*: the clip holds one frame, and model 'pamnet_test' "
    ):
        Recognizer.from_dir(diff).predict(alone)


def _train_diff(aligned: dict) -> Path:
    out = aligned["work"] / "diff-model"
    if not out.is_dir():
        threads = torch.get_num_threads()
        try:
            config = load_config(None, [*TRAIN, "data.representation=diff", f"data.cache={aligned['cache']}"])
            train_final(config, out)
        finally:
            torch.set_num_threads(threads)
    return out


def test_a_model_of_ready_made_crops_takes_the_frame_as_the_crop(tmp_path: Path) -> None:
    root = build_htnet_tree(tmp_path / "HTNet", folds=False)
    cache_dir = prepare_images(read("htnet", root), tmp_path / "caches", "apex", size=64)
    model = _train(cache_dir, tmp_path / "model")
    cache = load_cache(cache_dir)
    recognizer = Recognizer.from_dir(model)
    assert recognizer.given_crops
    frames = tmp_path / "frames"
    frames.mkdir()
    shutil.copy(root / APEX / "s01_s1_po_01.jpg", frames / "s01_s1_po_01.jpg")
    result = recognizer.predict(frames)
    assert result.face == {"face": "given", "frame": 1}
    k = cache.clips.index("s01_po_01")
    np.testing.assert_array_equal(result.apex_crop, cache.apex[k])  # resized 224 -> 64 as the cache was
    card = recognizer.card
    expected = model_input(
        None, cache.apex[k : k + 1], input_size=32, mean=card.mean, std=card.std, representation="apex"
    )
    np.testing.assert_array_equal(result.motion, expected[0].numpy())
    table = runner.invoke(app, ["predict", str(model), "--frames", str(frames)])
    assert table.exit_code == 0, table.output
    assert "not searched: the model was trained on ready-made face crops" in table.stdout


def test_a_flow_model_is_refused_before_training(aligned: dict, tmp_path: Path) -> None:
    """predict computes no flow field from a clip: `pamer train` on a flow cache trained a model no command could
    use, and said so only when the model was loaded."""
    root = build_htnet_tree(tmp_path / "HTNet", folds=False)
    cache_dir = prepare_images(read("htnet", root), tmp_path / "caches", "flow")
    config = load_config(None, [*TRAIN, "data.representation=flow", f"data.cache={cache_dir}"])
    with pytest.raises(ConfigError, match="data.representation = 'flow': a saved model is for `pamer predict`"):
        train_final(config, tmp_path / "model")
    assert not (tmp_path / "model").exists()
    # a flow model.json (written by an older pamer) is refused where it is loaded
    state = load_file(aligned["model"] / "model.safetensors")
    card = {**json.loads((aligned["model"] / "model.json").read_text()), "representation": "flow"}
    (tmp_path / "old").mkdir()
    write_checkpoint(tmp_path / "old", state, card)
    with pytest.raises(CheckpointError, match="representation 'flow' is not supported by predict .*'diff' or 'apex'"):
        Recognizer.from_dir(tmp_path / "old")
