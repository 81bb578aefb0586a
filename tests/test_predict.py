"""`pamer predict` and `pamer.Recognizer`: reading clips, loading checkpoints, recognising a clip, bad input."""

from __future__ import annotations

import csv
import json
import pickle
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from _spotting import Event, expression_frames, write_video
from _trees import prepare_synthetic
from pamer.checkpoint import CheckpointError, load_checkpoint
from pamer.cli import app
from pamer.clip import ClipError, read_clip, read_frame_folder, read_video
from pamer.data._clips import list_frames
from pamer.demo import synthetic
from pamer.frames import file_frame_number, read_rgb
from pamer.models import create_model
from pamer.predict import Recognizer

runner = CliRunner()


def _write_frames(folder: Path, frames: list[np.ndarray], names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for frame, name in zip(frames, names, strict=True):
        assert cv2.imwrite(str(folder / name), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    return folder


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
    assert file_frame_number(Path(name)) == number


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


def test_a_copy_of_a_frame_is_named_not_read_as_a_frame(tmp_path: Path) -> None:
    folder = _write_frames(tmp_path / "clip", _random_frames(3), ["img46.png", "img47.png", "img46 copy 2.png"])
    with pytest.raises(ClipError, match=r"img46 copy 2\.png is a copy of a frame \(its name ends in 'copy N'\)"):
        read_frame_folder(folder)


def test_video_decodes_the_frames_written(tmp_path: Path) -> None:
    frames = _random_frames(5)
    clip = read_video(write_video(tmp_path / "clip.avi", frames, fps=100.0))
    assert clip.numbers == [0, 1, 2, 3, 4]
    for got, want in zip(clip.frames, frames, strict=True):
        np.testing.assert_array_equal(got, want)


def test_video_that_ends_before_its_stated_frames_is_read_with_a_warning(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", _random_frames(20), fps=100.0)
    assert read_video(video).warnings == []
    data = video.read_bytes()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(data[: len(data) // 2])  # the header still states 20 frames
    clip = read_video(truncated)
    assert 0 < len(clip) < 20
    (warning,) = clip.warnings
    assert f"states 20 frames but only its first {len(clip)} could be decoded" in warning
    assert f"frames {len(clip)}-19 were not read" in warning


def test_frame_folder_is_read_as_prepare_reads_a_dataset(tmp_path: Path) -> None:
    """One decoder and one frame-number rule for training and prediction: an EXIF-rotated JPEG is turned upright,
    a 16-bit PNG is read, and a macOS metadata file (`._img3.png`) is no frame, in both."""
    from PIL import Image

    folder = tmp_path / "clip"
    folder.mkdir()
    upright = np.zeros((24, 32, 3), np.uint8)
    upright[:4, :8] = 255  # a mark in the top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the viewer rotates the stored 24 x 32 image by 90 degrees, to 32 x 24
    Image.fromarray(upright).save(folder / "img1.jpg", exif=exif.tobytes(), quality=100)
    deep = (np.random.default_rng(0).integers(0, 65536, (32, 24, 3))).astype(np.uint16)
    assert cv2.imwrite(str(folder / "img2.png"), deep)
    assert cv2.imwrite(str(folder / "img10.png"), np.full((32, 24, 3), 90, np.uint8))
    (folder / "._img3.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble metadata, not an image")

    clip = read_frame_folder(folder)
    paths, numbers, duplicates = list_frames(folder)
    assert clip.numbers == numbers == [1, 2, 10] and not duplicates
    assert clip.names == [p.name for p in paths]
    for got, path in zip(clip.frames, paths, strict=True):
        np.testing.assert_array_equal(got, read_rgb(path))  # the pixels prepare caches
    assert clip.frames[0].shape == (32, 24, 3)  # turned upright, as the viewer shows it
    np.testing.assert_array_equal(clip.frames[1][..., 0], (deep[..., 2] >> 8).astype(np.uint8))  # BGR on disk


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
    with pytest.raises(ClipError, match=message):
        read_frame_folder(make(tmp_path))


def test_corrupt_frame_is_named(tmp_path: Path) -> None:
    folder = _write_frames(tmp_path / "clip", _random_frames(2), ["img1.png", "img2.png"])
    (folder / "img3.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(ClipError, match=r"img3\.jpg: not a readable image"):
        read_frame_folder(folder)


def test_frames_of_different_sizes_or_too_many(tmp_path: Path) -> None:
    mixed = _random_frames(1) + _random_frames(1, shape=(20, 32))
    folder = _write_frames(tmp_path / "mixed", mixed, ["1.png", "2.png"])
    with pytest.raises(ClipError, match="frames differ in size"):
        read_frame_folder(folder)
    frames = _random_frames(6)  # 6 frames of 32x24x3 = 2304 bytes each
    folder = _write_frames(tmp_path / "long", frames, [f"{i}.png" for i in range(6)])
    assert len(read_frame_folder(folder, max_bytes=6 * 2304)) == 6
    with pytest.raises(ClipError, match="too long to predict on: 6 frames of 32x24"):
        read_frame_folder(folder, max_bytes=5 * 2304)
    with pytest.raises(ClipError, match="frame 1 has shape"):
        read_clip(mixed)
    video = write_video(tmp_path / "long.avi", frames, fps=100.0)
    with pytest.raises(ClipError, match="too long to predict on: 6 frames of 32x24"):
        read_video(video, max_bytes=5 * 2304)


def test_unreadable_video(tmp_path: Path) -> None:
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(b"this is not a video" * 100)
    with pytest.raises(ClipError, match=r"clip\.mp4 cannot be read"):
        read_video(bad)
    with pytest.raises(ClipError, match="does not exist"):
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
    with pytest.raises(CheckpointError, match="pickled checkpoint"):
        Recognizer.from_dir(model_dir)
    assert "never loads pickle" in _fail(["predict", str(model_dir), "--frames", str(tmp_path)])


def test_tensors_that_do_not_match_the_model_are_refused(tmp_path: Path) -> None:
    # model.json says 5 classes, the tensors hold 3
    model_dir = _handmade_model_dir(tmp_path / "model", _card(num_classes=5, classes=list("abcde")))
    with pytest.raises(CheckpointError, match=r"wrong shape: fc\.weight \(3, 64\) \(model has \(5, 64\)\)"):
        load_checkpoint(model_dir)
    # the tensors are another network's
    (model_dir / "model.json").write_text(json.dumps(_card(model="pamnet_backbone")))
    with pytest.raises(
        CheckpointError, match="does not match model 'pamnet_backbone'.*missing: layer1.*unexpected: attention"
    ):
        load_checkpoint(model_dir)


@pytest.mark.parametrize("missing", ["model.safetensors", "model.json"])
def test_model_dir_missing_a_file(tmp_path: Path, missing: str) -> None:
    model_dir = _handmade_model_dir(tmp_path / "model")
    (model_dir / missing).unlink()
    assert f"lacks {missing}" in _fail(["predict", str(model_dir), "--frames", str(tmp_path)])


def test_model_json_missing_a_key_or_malformed(tmp_path: Path) -> None:
    card = _card()
    del card["classes"]
    model_dir = _handmade_model_dir(tmp_path / "model", card)
    with pytest.raises(CheckpointError, match=r"model\.json lacks the keys \['classes'\]"):
        load_checkpoint(model_dir)
    (model_dir / "model.json").write_text(json.dumps(_card(mean=0.5)))
    with pytest.raises(CheckpointError, match=r"model\.json: a value has the wrong type"):
        load_checkpoint(model_dir)
    (model_dir / "model.json").write_text("{model: pamnet_test")
    with pytest.raises(CheckpointError, match=r"model\.json is not readable JSON"):
        load_checkpoint(model_dir)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_size": 0}, "input_size is 0; expected an integer from 16 to 1024"),
        ({"input_size": "224"}, "input_size is '224'"),
        ({"num_classes": True}, "num_classes is True"),
        ({"classes": ["negative", "negative", "surprise"]}, "classes names negative more than once"),
        ({"std": [0.2, float("nan"), 0.2]}, "mean and std must be 3 finite numbers"),
        # renamed or reordered classes: the cache the model was trained on says otherwise
        (
            {"classes": ["negative", "surprise", "positive"]},
            r"differ from the classes of the cache.*preprocess\.classes",
        ),
        ({"classes": ["sad", "happy", "surprise"]}, r"\['sad', 'happy', 'surprise'\] differ from the classes"),
    ],
)
def test_model_json_checked_against_what_it_must_hold(tmp_path: Path, changes: dict, message: str) -> None:
    good = _card(preprocess={"size": 64, "classes": ["negative", "positive", "surprise"]})
    model_dir = _handmade_model_dir(tmp_path / "model", good)
    assert load_checkpoint(model_dir)[1].classes == ("negative", "positive", "surprise")
    (model_dir / "model.json").write_text(json.dumps({**good, **changes}))
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(model_dir)
    assert re.search(message, _fail(["predict", str(model_dir), "--frames", str(tmp_path)]))


def test_non_finite_weights_are_refused(tmp_path: Path) -> None:
    model_dir = _handmade_model_dir(tmp_path / "model")
    state = create_model("pamnet_test", num_classes=3).state_dict()
    state["fc.weight"][0, 0] = float("nan")  # what a diverged training leaves
    save_file({k: v.contiguous() for k, v in state.items()}, str(model_dir / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"fc\.weight hold NaN or infinite values.*retrain"):
        load_checkpoint(model_dir)
    error = _fail(["predict", str(model_dir), "--frames", str(tmp_path), "--json"])
    assert "NaN or infinite" in error


def test_recognizer_is_exported_lazily() -> None:
    import pamer

    assert pamer.Recognizer is Recognizer


def test_prediction_does_not_load_the_engine() -> None:
    # the evaluation-time input lives below both (`pamer.preprocess.network_input`): predict needs no training code
    code = "import sys, pamer.predict; print('pamer.engine' in sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "False"


def test_cli_needs_exactly_one_input(tmp_path: Path) -> None:
    model_dir = _handmade_model_dir(tmp_path / "model")
    assert "exactly one of --video" in _fail(["predict", str(model_dir)])
    assert "exactly one of --video" in _fail(["predict", str(model_dir), "--video", "a.mp4", "--frames", "b"])
    assert "does not exist" in _fail(["predict", str(tmp_path / "absent"), "--video", "a.mp4"])
    assert "not a torch device" in _fail(["predict", str(model_dir), "--video", "a.mp4", "--device", "gpu0"])


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="checks a machine without an Apple GPU")
def test_a_device_torch_knows_but_that_is_not_here_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--device mps on Linux was a traceback from torch as the network moved there, --device meta one from numpy."""
    model_dir = _handmade_model_dir(tmp_path / "model")
    assert "torch sees no MPS" in _fail(["predict", str(model_dir), "--video", "a.mp4", "--device", "mps"])
    assert "expected cpu, cuda or cuda:N" in _fail(["predict", str(model_dir), "--video", "a.mp4", "--device", "meta"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(CheckpointError, match=r"device 'cuda:2': this machine has 2 CUDA device\(s\)"):
        load_checkpoint(model_dir, "cuda:2")


# ------------------------------------------------------------------------------------- recognising a clip


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny pamnet_test trained by `pamer prepare` + `pamer train` on a synthetic CASME II-style set: the model
    directory, the cache it was trained on and the dataset root."""
    work = tmp_path_factory.mktemp("trained")
    root, cache = prepare_synthetic(work)
    (work / "train.yaml").write_text(
        f"data: {{cache: {cache}}}\nmodel: {{name: pamnet_test}}\nseed: 0\n"
        "train: {epochs: 2, batch_size: 4, input_size: 64, device: cpu, threads: 1}\n"
    )
    threads = torch.get_num_threads()  # train.threads sets torch's process-wide count; later tests get theirs back
    try:
        trained = runner.invoke(app, ["train", str(work / "train.yaml"), "--out", str(work / "model"), "--quiet"])
    finally:
        torch.set_num_threads(threads)
    assert trained.exit_code == 0, trained.output
    return {"model": work / "model", "cache": cache, "root": root}


@pytest.fixture(scope="module")
def model_dir(trained: dict[str, Path]) -> Path:
    return trained["model"]


@pytest.fixture(scope="module")
def face_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[np.ndarray], int]:
    """A 10-frame clip of a real face (matplotlib's grace_hopper.jpg) with a lip-corner pull peaking at a known
    apex, and no head motion, lighting drift or noise, so the spotted apex must be the rendered one."""
    faces, _ = synthetic.load_faces(face_px=128)
    config = synthetic.SyntheticConfig(
        face_px=128, frames=(10, 10), head_shift_px=0, head_rotation_deg=0, illumination=0, noise=0
    )
    clip = synthetic.render_clip(faces[0], synthetic.EMOTION_AUS["happiness"], np.random.default_rng(1), config)
    return clip.frames, clip.apex


def test_folder_and_video_give_the_same_answer(model_dir: Path, face_clip, tmp_path: Path) -> None:
    frames, true_apex = face_clip
    folder = _write_frames(tmp_path / "frames", frames, [f"frame_{i:04d}.png" for i in range(len(frames))])
    video = write_video(tmp_path / "clip.avi", frames, fps=100.0)
    recognizer = Recognizer.from_dir(model_dir)
    assert recognizer.classes == ("negative", "positive", "surprise")

    from_folder = recognizer.predict(folder)
    from_video = recognizer.predict(video)
    assert from_folder.label == from_video.label
    assert from_folder.probabilities == pytest.approx(from_video.probabilities, abs=1e-9)
    assert (from_folder.onset, from_folder.onset_source) == (0, "first")
    assert (from_folder.apex, from_folder.apex_source) == (true_apex, "spotted")
    assert from_video.apex == true_apex
    assert sum(from_folder.probabilities.values()) == pytest.approx(1.0, abs=1e-12)
    assert all(0 <= p <= 1 for p in from_folder.probabilities.values())
    assert len(from_folder.attention) == 4
    assert from_folder.onset_crop.shape == (48, 48, 3)  # the cache's crop size, from model.json
    assert from_folder.motion.shape == (3, 64, 64)  # the network's input size
    assert from_folder.face["face"] is True


def test_given_onset_and_apex_are_used(model_dir: Path, face_clip, tmp_path: Path) -> None:
    frames, true_apex = face_clip
    # frame numbers start at 46 as in CASME II; onset/apex are file-name numbers for a folder
    folder = _write_frames(tmp_path / "frames", frames, [f"img{46 + i}.jpg" for i in range(len(frames))])
    recognizer = Recognizer.from_dir(model_dir)
    given = recognizer.predict(folder, onset=47, apex=46 + true_apex)
    assert (given.onset, given.onset_source, given.onset_name) == (47, "given", "img47.jpg")
    assert (given.apex, given.apex_source) == (46 + true_apex, "given")
    # the same pair as frames 1 and true_apex of the arrays: the same network input
    from_arrays = recognizer.predict(read_frame_folder(folder).frames, onset=1, apex=true_apex)
    np.testing.assert_array_equal(given.motion, from_arrays.motion)
    spotted = recognizer.predict(folder, onset=47)
    assert (spotted.apex, spotted.apex_source) == (46 + true_apex, "spotted")


def test_predict_sees_what_training_saw(trained: dict[str, Path]) -> None:
    """A training clip given to predict with its annotated onset and apex, unregistered as the cache's clips are,
    gives the cache's crops and the engine's input for them: prediction and training cannot drift apart."""
    from pamer.data import read
    from pamer.preprocess import load_cache
    from pamer.preprocess.network_input import model_input

    cache = load_cache(trained["cache"])
    recognizer = Recognizer.from_dir(trained["model"])
    index = read("casme2", trained["root"], "megc2019")
    for sample in index.samples[:2]:
        k = next(
            i
            for i, (s, c) in enumerate(zip(cache.subjects, cache.clips, strict=True))
            if (s, c) == (sample.subject, sample.clip)
        )
        result = recognizer.predict(sample.frames[0].parent, onset=sample.onset, apex=sample.apex, register=False)
        np.testing.assert_array_equal(result.onset_crop, cache.onset[k])
        np.testing.assert_array_equal(result.apex_crop, cache.apex[k])
        card = recognizer.card
        expected = model_input(
            cache.onset[k : k + 1], cache.apex[k : k + 1], input_size=card.input_size, mean=card.mean, std=card.std
        )
        np.testing.assert_array_equal(result.motion, expected[0].numpy())


def test_cli_table_json_and_picture(model_dir: Path, face_clip, tmp_path: Path) -> None:
    frames, _ = face_clip
    video = write_video(tmp_path / "clip.avi", frames, fps=100.0)
    table = runner.invoke(app, ["predict", str(model_dir), "--video", str(video)])
    assert table.exit_code == 0, table.output
    assert "probability" in table.stdout and "spotted" in table.stdout

    picture = tmp_path / "attention.png"
    result = runner.invoke(app, ["predict", str(model_dir), "--video", str(video), "--json", "--picture", str(picture)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["label"] in ("negative", "positive", "surprise")
    assert summary["label"] == max(summary["probabilities"], key=summary["probabilities"].get)
    assert sum(summary["probabilities"].values()) == pytest.approx(1.0, abs=1e-9)
    assert summary["apex"]["source"] == "spotted"
    image = cv2.imread(str(picture))
    assert image is not None and image.shape[1] > image.shape[0]  # one row: face, motion, four maps


def test_cli_warns_of_a_truncated_video_in_the_table_json_and_errors(model_dir: Path, face_clip, tmp_path: Path):
    frames, _ = face_clip
    data = write_video(tmp_path / "clip.avi", frames * 4, fps=100.0).read_bytes()
    truncated = tmp_path / "truncated.avi"
    truncated.write_bytes(data[: len(data) // 2])
    read = len(read_video(truncated))
    assert 0 < read < 40
    warning = f"states 40 frames but only its first {read} could be decoded"
    table = runner.invoke(app, ["predict", str(model_dir), "--video", str(truncated)])
    assert table.exit_code == 0, table.output
    assert warning in " ".join(table.stderr.split()) and "probability" in table.stdout
    as_json = runner.invoke(app, ["predict", str(model_dir), "--video", str(truncated), "--json"])
    assert as_json.exit_code == 0, as_json.output
    (line,) = json.loads(as_json.stdout)["warnings"]
    assert warning in line
    # an apex past the end: refused, and the warning printed first says why that frame is not in the clip
    beyond = runner.invoke(app, ["predict", str(model_dir), "--video", str(truncated), "--apex", "39"])
    assert beyond.exit_code != 0 and warning in " ".join(beyond.stderr.split())
    assert "apex 39 is out of range" in " ".join(beyond.output.split())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--onset", "20"], "onset 20 is out of range for .*: its frames are 0..9"),
        (["--apex", "-1"], "apex -1 is out of range"),
        (["--onset", "5", "--apex", "3"], "apex 3 must come after onset 5"),
        (["--onset", "9"], "no frame after onset 9 to spot the apex in: it is the clip's last of 10 frames; give an "),
        (["--picture", "out.jpg"], r"expected a file name ending in \.png"),
    ],
)
def test_cli_bad_onset_apex_and_picture(model_dir: Path, face_clip, tmp_path: Path, args, message: str) -> None:
    frames, _ = face_clip
    video = write_video(tmp_path / "clip.avi", frames, fps=100.0)
    error = _fail(["predict", str(model_dir), "--video", str(video), *args])
    assert re.search(message, error), error


def test_cli_picture_into_a_folder_that_cannot_take_it(model_dir: Path, face_clip, tmp_path: Path, read_only_dir):
    """Refused before the work, by name: a read-only folder, a file where the folder should be, a folder where the
    file should be; and a disk that fills up while the picture is written."""
    frames, _ = face_clip
    video = str(write_video(tmp_path / "clip.avi", frames, fps=100.0))
    error = _fail(["predict", str(model_dir), "--video", video, "--picture", str(read_only_dir / "a.png")])
    assert f"cannot write into {read_only_dir}" in error
    (tmp_path / "file").write_text("a file, not a folder")
    error = _fail(["predict", str(model_dir), "--video", video, "--picture", str(tmp_path / "file" / "a.png")])
    assert f"{tmp_path / 'file'} is a file, not a folder" in error
    (tmp_path / "dir.png").mkdir()
    assert "is a folder" in _fail(["predict", str(model_dir), "--video", video, "--picture", str(tmp_path / "dir.png")])
    full = tmp_path / "full.png"
    full.symlink_to("/dev/full")  # every write to it fails with ENOSPC, as on a full disk
    error = _fail(["predict", str(model_dir), "--video", video, "--picture", str(full)])
    assert f"picture {full} cannot be written: no space left on the disk" in error


def test_cli_bad_clips(model_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no image files" in _fail(["predict", str(model_dir), "--frames", str(empty)])
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video" * 50)
    assert "broken.mp4 cannot be read" in _fail(["predict", str(model_dir), "--video", str(broken)])
    # a flat grey clip: nothing to detect
    blank = _write_frames(tmp_path / "blank", [np.full((120, 160, 3), 128, np.uint8)] * 3, ["1.png", "2.png", "3.png"])
    assert "no face found in" in _fail(["predict", str(model_dir), "--frames", str(blank)])


# ------------------------------------------------------------------------------------ spotting, then recognising


@pytest.fixture(scope="module")
def micro_video(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Event]:
    """2.5 s at 30 fps of a real face with a drifting head and one brow raise of 0.43 s (a micro-expression)."""
    event = Event(30, 36, 42, ("1", "2"), 8.0)
    path = tmp_path_factory.mktemp("micro") / "micro.avi"
    return write_video(path, expression_frames(75, (event,))), event


def test_spot_recognises_each_micro_expression_with_the_model(
    model_dir: Path, micro_video: tuple[Path, Event], tmp_path: Path
) -> None:
    video, event = micro_video
    result = runner.invoke(app, ["spot", str(video), "--model", str(model_dir), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    with (tmp_path / "intervals.csv").open() as f:
        rows = list(csv.DictReader(f))
    (row,) = rows
    assert row["type"] == "micro" and int(row["onset"]) <= event.apex <= int(row["offset"])
    probabilities = {c: float(row[f"p_{c}"]) for c in ("negative", "positive", "surprise")}
    assert row["class"] == max(probabilities, key=probabilities.get)
    assert sum(probabilities.values()) == pytest.approx(1.0, abs=1e-3)
    # the same answer as the model gives for the registered onset and apex of the interval
    recognizer = Recognizer.from_dir(model_dir)
    frames = read_video(video).frames
    direct = recognizer.predict([frames[int(row["onset"])], frames[int(row["apex"])]], onset=0, apex=1)
    assert direct.label == row["class"]
    assert direct.probabilities == pytest.approx(probabilities, abs=1e-4)
    assert row["class"] in result.stdout


def test_a_long_video_is_read_at_its_strongest_interval(model_dir: Path, micro_video: tuple[Path, Event]) -> None:
    video, event = micro_video
    result = Recognizer.from_dir(model_dir).predict(video)
    assert (result.onset_source, result.apex_source) == ("interval", "interval")
    assert event.onset - 6 <= result.onset < result.apex and event.onset <= result.apex <= event.offset
    assert result.face["registration"]["residual_px"] < 0.5
    assert "spot" in result.timings
