"""`pamer predict` and `pamer.Recognizer`: reading clips, loading checkpoints, recognising a clip, bad input."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from pamer.cli import app
from pamer.models import create_model
from pamer.predict import PredictError, Recognizer, frame_number, load_checkpoint, read_frame_folder, read_video

runner = CliRunner()


def _write_frames(folder: Path, frames: list[np.ndarray], names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for frame, name in zip(frames, names, strict=True):
        assert cv2.imwrite(str(folder / name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


def _write_video(path: Path, frames: list[np.ndarray], fps: float = 100.0) -> Path:
    # FFV1 is lossless, so the decoded video holds exactly the folder's pixels
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"FFV1"), fps, (width, height))
    assert writer.isOpened(), "OpenCV cannot write FFV1 video here"
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return path


def _random_frames(n: int, seed: int = 0, shape: tuple[int, int] = (24, 32)) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*shape, 3), dtype=np.uint8) for _ in range(n)]


def _fail(args: list[str]) -> str:
    """Run the CLI expecting a clean failure; return its error text."""
    result = runner.invoke(app, args)
    assert result.exit_code != 0, result.output
    assert isinstance(result.exception, SystemExit), f"traceback instead of a message: {result.exception!r}"
    assert "Traceback" not in result.output
    assert result.stderr.startswith("error: "), result.output
    return result.stderr


# ------------------------------------------------------------------------------------------------- reading


@pytest.mark.parametrize(
    ("name", "number"),
    [("img46.jpg", 46), ("reg_img46.jpg", 46), ("006_05562.jpg", 5562), ("image17581039.jpg", 17581039), ("7.png", 7)],
)
def test_frame_number_from_any_prefix_and_padding(name: str, number: int) -> None:
    assert frame_number(Path(name)) == number


def test_frame_folder_is_sorted_numerically(tmp_path: Path) -> None:
    frames = _random_frames(4)
    # lexical order would be img1, img10, img2, img9
    folder = _write_frames(tmp_path / "clip", frames, ["img1.png", "img2.png", "img9.png", "img10.png"])
    (folder / "notes.txt").write_text("not a frame")
    clip = read_frame_folder(folder)
    assert clip.numbers == [1, 2, 9, 10]
    assert clip.names == ["img1.png", "img2.png", "img9.png", "img10.png"]
    for got, want in zip(clip.frames, frames, strict=True):
        np.testing.assert_array_equal(got, want)


def test_video_decodes_the_frames_written(tmp_path: Path) -> None:
    frames = _random_frames(5)
    clip = read_video(_write_video(tmp_path / "clip.avi", frames))
    assert clip.numbers == [0, 1, 2, 3, 4]
    for got, want in zip(clip.frames, frames, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: d / "absent", "does not exist"),
        (lambda d: (d / "empty").mkdir() or d / "empty", "holds no image files"),
        (lambda d: _write_frames(d / "dup", _random_frames(2), ["img1.png", "img01.png"]), "same frame number 1"),
        (lambda d: _write_frames(d / "nonum", _random_frames(1), ["onset.png"]), "no frame number"),
    ],
)
def test_bad_frame_folder(tmp_path: Path, make, message: str) -> None:
    with pytest.raises(PredictError, match=message):
        read_frame_folder(make(tmp_path))


def test_corrupt_frame_is_named(tmp_path: Path) -> None:
    folder = _write_frames(tmp_path / "clip", _random_frames(2), ["img1.png", "img2.png"])
    (folder / "img3.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(PredictError, match=r"img3\.jpg cannot be read"):
        read_frame_folder(folder)


def test_unreadable_video(tmp_path: Path) -> None:
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(PredictError, match=r"clip\.mp4 cannot be read"):
        read_video(bad)
    with pytest.raises(PredictError, match="does not exist"):
        read_video(tmp_path / "absent.mp4")


# --------------------------------------------------------------------------------------------- checkpoints


def _card(**changes) -> dict:
    card = {
        "model": "pamnet_test",
        "num_classes": 3,
        "classes": ["negative", "positive", "surprise"],
        "input_size": 32,
        "mean": [0.0, 0.0, 0.0],
        "std": [0.2, 0.2, 0.2],
        "representation": "diff",
        "preprocess": {"size": 64},
        "pamer_version": "test",
    }
    return {**card, **changes}


def _handmade_model_dir(path: Path, card: dict | None = None, num_classes: int = 3) -> Path:
    """A checkpoint written by hand (not by `pamer train`), for the loader's own checks."""
    path.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = create_model("pamnet_test", num_classes=num_classes)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path / "model.safetensors"))
    (path / "model.json").write_text(json.dumps(card or _card()))
    return path


def test_checkpoint_loads_the_saved_tensors(tmp_path: Path) -> None:
    model_dir = _handmade_model_dir(tmp_path / "model")
    torch.manual_seed(0)
    reference = create_model("pamnet_test", num_classes=3).eval()
    model, card = load_checkpoint(model_dir)
    assert card.classes == ("negative", "positive", "surprise")
    assert not model.training
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(model(x), reference(x), rtol=0, atol=0)


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_pickled_checkpoint_is_refused(tmp_path: Path, writer: str) -> None:
    model_dir = _handmade_model_dir(tmp_path / "model")
    state = create_model("pamnet_test", num_classes=3).state_dict()
    if writer == "torch.save":
        torch.save(state, model_dir / "model.safetensors")
    else:
        (model_dir / "model.safetensors").write_bytes(pickle.dumps({k: v.numpy() for k, v in state.items()}))
    with pytest.raises(PredictError, match="pickled checkpoint"):
        Recognizer.from_dir(model_dir)
    assert "never loads pickle" in _fail(["predict", str(model_dir), "--frames", str(tmp_path)])


def test_tensors_that_do_not_match_the_model_are_refused(tmp_path: Path) -> None:
    # model.json says 5 classes, the tensors hold 3
    model_dir = _handmade_model_dir(tmp_path / "model", _card(num_classes=5, classes=list("abcde")))
    with pytest.raises(PredictError, match=r"wrong shape: fc\.weight \(3, 64\) \(model has \(5, 64\)\)"):
        load_checkpoint(model_dir)
    # the tensors are another network's
    (model_dir / "model.json").write_text(json.dumps(_card(model="pamnet_backbone")))
    with pytest.raises(
        PredictError, match="does not match model 'pamnet_backbone'.*missing: layer1.*unexpected: attention"
    ):
        load_checkpoint(model_dir)


@pytest.mark.parametrize("missing", ["model.safetensors", "model.json"])
def test_model_dir_missing_a_file(tmp_path: Path, missing: str) -> None:
    model_dir = _handmade_model_dir(tmp_path / "model")
    (model_dir / missing).unlink()
    assert f"lacks {missing}" in _fail(["predict", str(model_dir), "--frames", str(tmp_path)])


def test_model_json_missing_a_key(tmp_path: Path) -> None:
    card = _card()
    del card["classes"]
    model_dir = _handmade_model_dir(tmp_path / "model", card)
    with pytest.raises(PredictError, match=r"model\.json lacks the keys \['classes'\]"):
        load_checkpoint(model_dir)


def test_cli_needs_exactly_one_input(tmp_path: Path) -> None:
    model_dir = _handmade_model_dir(tmp_path / "model")
    assert "exactly one of --video" in _fail(["predict", str(model_dir)])
    assert "exactly one of --video" in _fail(["predict", str(model_dir), "--video", "a.mp4", "--frames", "b"])
    assert "does not exist" in _fail(["predict", str(tmp_path / "absent"), "--video", "a.mp4"])
