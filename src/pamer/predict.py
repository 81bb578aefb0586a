"""Recognise the micro-expression in a user's clip: `Recognizer.from_dir(MODEL_DIR).predict(video_or_frames)`.

The clip goes through the same steps as training data: one face transform per clip fitted on the onset frame
(`pamer.preprocess.face`), the apex spotted when not given (`pamer.preprocess.motion.spot_apex`), and the
engine's own evaluation-time motion image (`pamer.engine`), so training and prediction cannot drift apart.
"""

from __future__ import annotations

import json
import math
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pamer.checkpoint import CARD_DIGEST_KEY, CARD_KEYS, MODEL_FILES, card_digest
from pamer.errors import PamerError

# one decoder and one frame-number rule for training (pamer prepare) and prediction
from pamer.frames import IMAGE_SUFFIXES, ImageError, is_junk, read_rgb
from pamer.frames import file_frame_number as frame_number
from pamer.outputs import os_error_text, write_problem

__all__ = [
    "IMAGE_SUFFIXES",
    "Clip",
    "ModelCard",
    "Prediction",
    "PredictError",
    "Recognizer",
    "check_picture_path",
    "frame_number",
    "load_checkpoint",
    "read_clip",
    "read_frame_folder",
    "read_video",
]

# the decoded frames of one clip are held in memory; a clip is seconds around one expression, not a whole film
MAX_CLIP_BYTES = 2 * 2**30
MIN_INPUT_SIZE = 16  # the smallest train.input_size a configuration accepts
# a video longer than this (seconds) with no onset or apex given is spotted (`pamer.spot`) for its strongest
# expression: a micro-expression with its onset and offset spans under a second
LONG_CLIP_S = 2.0
# what predict computes from a clip: apex - onset, or the apex crop alone
PREDICT_REPRESENTATIONS = ("diff", "apex")


class PredictError(PamerError):
    """A model directory, clip or onset/apex that cannot be used for prediction (the message names it)."""


# ---------------------------------------------------------------------------------------------------- clips


@dataclass
class Clip:
    """The frames of a user's clip, in time order.

    `numbers[i]` is the frame number of `frames[i]`: the number in the file name for a folder of frames, the
    0-based position for a video. `onset`/`apex` given to `Recognizer.predict` are such frame numbers. `fps` is the
    video's stated frame rate (None for frames, whose rate nothing states).
    """

    frames: list[np.ndarray]  # uint8 RGB, H x W x 3
    numbers: list[int]
    names: list[str]
    source: str
    decode_s: float = 0.0
    fps: float | None = None

    def __len__(self) -> int:
        return len(self.frames)

    def index(self, number: int, what: str) -> int:
        """Position of frame `number` in the clip (a `PredictError` naming the clip and its range if absent)."""
        if isinstance(number, bool) or not isinstance(number, (int, np.integer)):
            raise PredictError(f"{what} must be an integer frame number, got {number!r}")
        try:
            return self.numbers.index(int(number))
        except ValueError:
            pass
        first, last = self.numbers[0], self.numbers[-1]
        if first <= number <= last:
            raise PredictError(f"{what} {number} is not a frame of {self.source}: no frame numbered {number}")
        raise PredictError(f"{what} {number} is out of range for {self.source}: its frames are {first}..{last}")


def _video_rgb(image: np.ndarray, name: str) -> np.ndarray:
    import cv2

    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise PredictError(f"frame {name}: expected an 8-bit BGR video frame, got {image.dtype} {image.shape}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def _too_long(source: str, frames: int, frame: np.ndarray, max_bytes: int) -> PredictError:
    height, width = frame.shape[:2]
    return PredictError(
        f"{source} is too long to predict on: {frames} frames of {width}x{height} need more than "
        f"{max_bytes / 2**30:.2g} GiB decoded; cut the clip to the seconds around the expression"
    )


def read_frame_folder(folder: str | Path, max_bytes: int = MAX_CLIP_BYTES) -> Clip:
    """Read a folder of frame images, sorted by the frame number in their names (not by listing order).

    Frames are named, numbered and decoded exactly as `pamer prepare` reads a dataset's frames (`pamer.frames`):
    the number ends the file name's stem, EXIF orientation is applied, 16-bit images are scaled to 8 bits. Files
    that are not images (by suffix: .jpg, .png, .bmp, ...) and junk (`._img46.jpg`, `Thumbs.db`) are ignored.

    Raises:
        PredictError: missing folder, no image in it, a name without a number, two files with the same
            number, an image that cannot be decoded (the message names the file), frames of different sizes,
            or more than `max_bytes` of decoded frames.
    """
    start = time.perf_counter()
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise PredictError(f"frame folder {folder} {what}")
    # junk beside copied frames (`._img46.jpg`, Thumbs.db) is left out by the dataset readers' rule
    files = [p for p in folder.iterdir() if not is_junk(p.name) and p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise PredictError(f"frame folder {folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    numbered = []
    for path in files:
        number = frame_number(path)
        if number is None:
            raise PredictError(
                f"frame file {path} has no frame number ending its name (expected e.g. img46.jpg or 006_05562.png)"
            )
        numbered.append((number, path))
    numbered.sort()
    for (n1, p1), (n2, p2) in zip(numbered, numbered[1:], strict=False):
        if n1 == n2:
            raise PredictError(f"frame folder {folder}: {p1.name} and {p2.name} have the same frame number {n1}")
    frames = []
    for _, path in numbered:
        if frames and len(numbered) * frames[0].nbytes > max_bytes:
            raise _too_long(f"frame folder {folder}", len(numbered), frames[0], max_bytes)
        try:
            frames.append(read_rgb(path))
        except ImageError as err:
            raise PredictError(f"frame {err}") from None
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise PredictError(f"frame folder {folder}: frames differ in size ({sorted(shapes)}); expected one size")
    return Clip(
        frames=frames,
        numbers=[n for n, _ in numbered],
        names=[p.name for _, p in numbered],
        source=str(folder),
        decode_s=time.perf_counter() - start,
    )


def read_video(path: str | Path, max_bytes: int = MAX_CLIP_BYTES) -> Clip:
    """Decode every frame of a video file with OpenCV; frame numbers are 0-based positions.

    Raises:
        PredictError: missing file, a file OpenCV cannot decode (no frame comes out), or more than `max_bytes`
            of decoded frames.
    """
    import cv2

    start = time.perf_counter()
    path = Path(path)
    if not path.is_file():
        what = (
            "is a folder, not a video file (use --frames for a folder of frames)" if path.is_dir() else "does not exist"
        )
        raise PredictError(f"video {path} {what}")
    capture = cv2.VideoCapture(str(path))
    fps = capture.get(cv2.CAP_PROP_FPS)
    frames = []
    try:
        while capture.isOpened():
            ok, image = capture.read()
            if not ok:
                break
            frames.append(_video_rgb(image, f"{path}#{len(frames)}"))
            if len(frames) * frames[0].nbytes > max_bytes:
                raise _too_long(f"video {path}", len(frames), frames[0], max_bytes)
    finally:
        capture.release()
    if not frames:
        raise PredictError(f"video {path} cannot be read: OpenCV decoded no frame from it (corrupt or unsupported)")
    return Clip(
        frames=frames,
        numbers=list(range(len(frames))),
        names=[f"frame {i}" for i in range(len(frames))],
        source=str(path),
        decode_s=time.perf_counter() - start,
        fps=float(fps) if math.isfinite(fps) and fps > 0 else None,
    )


def read_clip(source: str | Path | Clip | Sequence[np.ndarray]) -> Clip:
    """A `Clip` from a video file, a folder of frames, or a sequence of uint8 RGB arrays (numbered 0..N-1)."""
    if isinstance(source, Clip):
        return source
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise PredictError(f"clip {path} does not exist (expected a video file or a folder of frames)")
        return read_frame_folder(path) if path.is_dir() else read_video(path)
    frames = [np.asarray(f) for f in source]
    if not frames:
        raise PredictError("the clip holds no frames")
    for i, f in enumerate(frames):
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
            raise PredictError(f"frame {i}: expected a uint8 RGB array H x W x 3, got {f.dtype} {f.shape}")
        if f.shape != frames[0].shape:
            raise PredictError(f"frame {i} has shape {f.shape}, frame 0 {frames[0].shape}: a clip has one frame size")
    return Clip(frames, list(range(len(frames))), [f"frame {i}" for i in range(len(frames))], "the given frames")


# --------------------------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class ModelCard:
    """What `model.json` says about a checkpoint: the network, its classes and the input it expects."""

    model: str
    classes: tuple[str, ...]
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    representation: str
    preprocess: dict
    model_args: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_json(cls, path: Path) -> ModelCard:
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise PredictError(f"{path} is not readable JSON: {err}") from None
        if not isinstance(meta, dict):
            raise PredictError(f"{path}: expected a JSON object, got {type(meta).__name__}")
        missing = [k for k in CARD_KEYS if k not in meta]
        if missing:
            raise PredictError(f"{path} lacks the keys {missing}; expected at least {list(CARD_KEYS)}")
        try:
            return cls._checked(meta, path)
        except PredictError:
            raise
        except (TypeError, ValueError) as err:  # e.g. a number where a list belongs
            raise PredictError(
                f"{path}: a value has the wrong type ({err}); expected what `pamer train` writes"
            ) from None

    @classmethod
    def _checked(cls, meta: dict, path: Path) -> ModelCard:
        classes = meta["classes"]
        if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
            raise PredictError(f"{path}: classes must be a list of class names, got {classes!r}")
        duplicated = sorted({c for c in classes if classes.count(c) > 1})
        if duplicated:
            raise PredictError(f"{path}: classes names {', '.join(duplicated)} more than once; each class once")
        num_classes = meta["num_classes"]
        if isinstance(num_classes, bool) or num_classes != len(classes) or not classes:
            raise PredictError(f"{path}: num_classes is {num_classes!r} but classes lists {len(classes)} names")
        size = meta["input_size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < MIN_INPUT_SIZE:
            raise PredictError(
                f"{path}: input_size is {size!r}; expected an integer >= {MIN_INPUT_SIZE} (the network's input side "
                "in pixels, as `pamer train` writes it)"
            )
        if meta["representation"] not in PREDICT_REPRESENTATIONS:
            raise PredictError(
                f"{path}: representation {meta['representation']!r} is not supported by predict (expected "
                f"{' or '.join(map(repr, PREDICT_REPRESENTATIONS))}: predict computes no flow field from a clip)"
            )
        model_args = meta.get("model_args") or {}
        if not isinstance(model_args, dict):
            raise PredictError(f"{path}: model_args must be an object of model options, got {model_args!r}")
        mean, std = [float(m) for m in meta["mean"]], [float(s) for s in meta["std"]]
        if not (len(mean) == len(std) == 3 and all(math.isfinite(v) for v in mean + std) and min(std) > 0):
            raise PredictError(
                f"{path}: mean and std must be 3 finite numbers each, std positive; got {meta['mean']}, {meta['std']}"
            )
        preprocess = meta["preprocess"]
        if not isinstance(preprocess, dict):
            raise PredictError(f"{path}: preprocess must be the training cache's settings, got {preprocess!r}")
        # `pamer train` copies the cache's settings, class list included: a renamed or reordered class shows here
        trained = preprocess.get("classes")
        if trained is not None and list(trained) != classes:
            raise PredictError(
                f"{path}: classes {classes} differ from the classes of the cache the model was trained on "
                f"({list(trained)}, in preprocess.classes); the class names must be the training cache's, in its order"
            )
        rest = {k: v for k, v in meta.items() if k not in (*CARD_KEYS, "model_args")}
        return cls(
            model=str(meta["model"]),
            classes=tuple(classes),
            input_size=size,
            mean=tuple(mean),
            std=tuple(std),
            representation=str(meta["representation"]),
            preprocess=dict(preprocess),
            model_args=model_args,
            extra=rest,
        )


def _check_safetensors(path: Path) -> None:
    """Refuse anything that is not a safetensors file before a loader sees it (a pickle can run code)."""
    with path.open("rb") as f:
        head = f.read(9)
    if head[:2] == b"PK" or head[:1] == b"\x80":
        raise PredictError(
            f"{path} is a pickled checkpoint (torch.save / pickle format), not safetensors; pamer never loads "
            "pickle because it can run arbitrary code. Save the weights with safetensors (`pamer train` does)."
        )
    if len(head) < 9:
        raise PredictError(f"{path} is not a safetensors file: only {len(head)} bytes long")
    (header_len,) = struct.unpack("<Q", head[:8])
    if head[8:9] != b"{" or header_len > path.stat().st_size:
        raise PredictError(f"{path} is not a safetensors file (no safetensors header at its start)")


def load_checkpoint(model_dir: str | Path, device: str = "cpu") -> tuple[Any, ModelCard]:
    """Build the network named in `model.json` and fill it with `model.safetensors`, in eval mode.

    Raises:
        PredictError: missing folder or file, a pickled or malformed weights file, an incomplete model.json,
            or tensors that do not match the named model (missing, unexpected or wrong-shaped keys, named).
    """
    import torch
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    from pamer.models import create_model

    try:
        target = torch.device(device)
    except RuntimeError:
        raise PredictError(f"device {device!r} is not a torch device (expected e.g. cpu, cuda, cuda:1)") from None
    if target.type == "cuda" and not torch.cuda.is_available():
        raise PredictError(f"device {device!r} asked for, but torch sees no CUDA device here")
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise PredictError(f"model directory {model_dir} does not exist (make one with `pamer train`)")
    missing = [name for name in MODEL_FILES if not (model_dir / name).is_file()]
    if missing:
        raise PredictError(
            f"model directory {model_dir} lacks {' and '.join(missing)}; expected {' + '.join(MODEL_FILES)}"
        )
    card = ModelCard.from_json(model_dir / "model.json")
    weights = model_dir / "model.safetensors"
    _check_safetensors(weights)
    try:
        state = load_file(str(weights), device="cpu")
        with safe_open(str(weights), framework="pt") as f:
            saved_digest = (f.metadata() or {}).get(CARD_DIGEST_KEY)
    except (SafetensorError, OSError) as err:
        raise PredictError(f"{weights} cannot be read as safetensors: {err}") from None
    # `pamer train` binds model.json to the weights; a hand-made checkpoint without the digest is checked by shape
    if saved_digest is not None and saved_digest != card_digest(json.loads((model_dir / "model.json").read_text())):
        raise PredictError(
            f"{model_dir / 'model.json'} does not describe {weights}: its classes, input_size, mean, std, model or "
            "preprocess differ from those the weights were saved with (edited by hand?); restore the model.json "
            "`pamer train` wrote, or train again"
        )
    try:
        model = create_model(card.model, num_classes=len(card.classes), **card.model_args)
    except ValueError as err:
        raise PredictError(f"{model_dir / 'model.json'}: {err}") from None
    expected = model.state_dict()
    absent = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k} {tuple(state[k].shape)} (model has {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if absent or unexpected or wrong:
        parts = [
            f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''} ({len(keys)})"
            for label, keys in (("missing", absent), ("unexpected", unexpected), ("wrong shape", wrong))
            if keys
        ]
        raise PredictError(
            f"{weights} does not match model {card.model!r} with {len(card.classes)} classes named in model.json: "
            + "; ".join(parts)
        )
    broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:
        raise PredictError(
            f"{weights}: {', '.join(broken[:3])}{' ...' if len(broken) > 3 else ''} hold NaN or infinite values "
            "(the training diverged); retrain it, e.g. with a smaller train.lr"
        )
    model.load_state_dict(state, strict=True)
    return model.to(target).eval(), card


# -------------------------------------------------------------------------------------------- prediction


@dataclass
class Prediction:
    """The answer for one clip.

    `onset`/`apex` are frame numbers of the clip (see `Clip`), `onset_source` says how the onset was chosen
    (`given`, `first`: the clip's first frame, `interval`: the strongest interval `pamer.spot` found in a long
    video, or `unused`: a model of the apex alone was given the apex, so `onset`, `onset_name` and `onset_crop` are
    None) and `apex_source` how the apex was (`given`, `interval`, `spotted`, or `only`: the clip's only frame).
    `attention` holds the four progressive-attention maps (float32, h_i x w_i, in 0..1); `onset_crop` and
    `apex_crop` are the aligned uint8 RGB faces, `motion` the network's input (float32 C x H x W, normalised).
    `face` describes the alignment (`{"face": "given"}` for a model trained on ready-made crops, whose frames are
    taken as crops) and, under `registration`, the apex's registration onto the onset (`residual_px`: motion left
    at the nose, in frame pixels; or why it was not registered). `timings` are
    seconds per stage: decode, (spot,) detect, align, model.
    """

    label: str
    probabilities: dict[str, float]
    onset: int | None
    apex: int
    onset_source: str
    apex_source: str
    onset_name: str | None
    apex_name: str
    source: str
    face: dict
    attention: list[np.ndarray]
    onset_crop: np.ndarray | None
    apex_crop: np.ndarray
    motion: np.ndarray
    timings: dict[str, float]

    def to_dict(self) -> dict:
        """A JSON-ready summary (everything but the image arrays)."""
        return {
            "source": self.source,
            "label": self.label,
            "probabilities": self.probabilities,
            "onset": {"frame": self.onset, "name": self.onset_name, "source": self.onset_source},
            "apex": {"frame": self.apex, "name": self.apex_name, "source": self.apex_source},
            "face": self.face,
            "attention_shapes": [list(a.shape) for a in self.attention],
            "timings_s": self.timings,
        }

    def picture(self, path: str | Path) -> Path:
        """Save a PNG of the aligned apex face, the motion image (apex - onset) and the attention maps over the face.

        Raises:
            PredictError: a path `check_picture_path` refuses, or a write that fails (e.g. a full disk).
        """
        from pamer.report.plots import plot_attention

        path = check_picture_path(path)
        if self.onset_crop is None:  # a model of the apex alone: its input is the picture's second panel
            motion = self.motion
        else:
            motion = self.apex_crop.astype(np.float32) - self.onset_crop.astype(np.float32)
        title = f"{Path(self.source).name}: {self.label} ({self.probabilities[self.label]:.2f}), apex {self.apex}"
        try:
            return plot_attention(self.apex_crop, motion, self.attention, path, title)
        except OSError as err:  # e.g. the disk filled up while writing
            raise PredictError(f"picture {path} cannot be written: {os_error_text(err)}") from None


def check_picture_path(path: str | Path) -> Path:
    """`path` as a Path if a PNG can be written there (checked before the work, not after it).

    Raises:
        PredictError: a name that does not end in .png, a folder in its place, or a folder that does not exist,
            is a file or cannot be written (read-only, full).
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise PredictError(f"picture {path}: expected a file name ending in .png")
    if path.is_dir():
        raise PredictError(f"picture {path} is a folder; give a file name ending in .png")
    problem = write_problem(path.parent)
    if problem is not None:
        raise PredictError(f"picture {path}: {problem}")
    return path


class Recognizer:
    """A trained network and its model card, ready to recognise users' clips.

    Example:
        >>> recognizer = Recognizer.from_dir("runs/casme2-model")  # doctest: +SKIP
        >>> result = recognizer.predict("clip.mp4")  # doctest: +SKIP
        >>> result.label, result.probabilities, result.apex, result.apex_source  # doctest: +SKIP
    """

    def __init__(self, model: Any, card: ModelCard, device: str = "cpu") -> None:
        from pamer.preprocess.face import FaceAligner

        self.model = model
        self.card = card
        self.device = device
        # trained on ready-made crops (`pamer prepare htnet|images`): a user's frames are taken as such crops, resized
        # as the cache resized them; pamer's face alignment would crop differently from the training images
        self.given_crops = card.preprocess.get("face") == "given"
        try:
            # the aligner the training cache was made with, so a user's clip is cropped as the training clips were
            self.aligner = FaceAligner.from_config(card.preprocess)
        except (TypeError, ValueError) as err:
            raise PredictError(f"model.json of {card.model!r}: its preprocess block is not usable: {err}") from None

    @classmethod
    def from_dir(cls, model_dir: str | Path, device: str = "cpu") -> Recognizer:
        """Load `model.safetensors` + `model.json` from `model_dir` (see `load_checkpoint`)."""
        model, card = load_checkpoint(model_dir, device)
        return cls(model, card, device)

    @property
    def classes(self) -> tuple[str, ...]:
        return self.card.classes

    def predict(
        self,
        clip: str | Path | Clip | Sequence[np.ndarray],
        onset: int | None = None,
        apex: int | None = None,
        register: bool = True,
    ) -> Prediction:
        """Recognise the micro-expression between `onset` and `apex` of a clip.

        A model of the apex frame alone (`representation: apex`) needs only the apex: given `apex` without
        `onset`, or a clip of one frame, no onset is used (the face is found in the apex frame); a given onset
        still anchors the alignment, as the training cache's crops were aligned on their onset. A model trained on
        ready-made crops takes each frame as a face crop (no face detection), resized to the training cache's side.

        Args:
            clip: a video file, a folder of frames, a `Clip`, or a sequence of uint8 RGB frames.
            onset: onset frame number (see `Clip`); default: the clip's first frame, or, in a video longer than
                `LONG_CLIP_S` with neither onset nor apex given, the onset of the strongest interval `pamer.spot`
                finds in it (its strongest micro-expression, else its strongest expression).
            apex: apex frame number, after the onset; default: that interval's apex, else spotted among the
                registered frames after the onset with `pamer.preprocess.motion.spot_apex`.

        The apex is registered onto the onset (`pamer.preprocess.register`: the head's rigid motion removed)
        before the motion image is made; `Prediction.face["registration"]` reports the motion left at the nose.
        `register=False` skips that (and registers no frame for spotting the apex): the crops are then exactly
        those `pamer prepare` makes of a dataset's clip, whose cache aligns each clip with one transform.

        Raises:
            PredictError: an unreadable clip, onset/apex out of range or in the wrong order, a clip too short
                to spot an apex in, or no face found.
        """
        from pamer.preprocess.face import to_gray
        from pamer.preprocess.images import to_square
        from pamer.preprocess.motion import spot_apex
        from pamer.preprocess.register import RegisterError, register_pair

        clip = read_clip(clip)
        timings = {"decode": clip.decode_s}
        from_interval = False
        if onset is None and apex is None and clip.fps is not None and len(clip) / clip.fps > LONG_CLIP_S:
            start = time.perf_counter()
            interval = self._strongest_interval(clip)
            timings["spot"] = time.perf_counter() - start
            if interval is not None:
                onset, apex, from_interval = interval.onset, interval.apex, True
        # a model of the apex alone needs no onset; a given onset still anchors the alignment, as in training
        apex_alone = self.card.representation == "apex" and onset is None and (apex is not None or len(clip) == 1)
        if apex_alone:
            onset_i, apex_i = None, 0 if apex is None else clip.index(apex, "apex")
        else:
            onset_i = 0 if onset is None else clip.index(onset, "onset")
        if apex is not None and onset_i is not None:
            apex_i = clip.index(apex, "apex")
            if apex_i <= onset_i:
                raise PredictError(
                    f"apex {clip.numbers[apex_i]} must come after onset {clip.numbers[onset_i]} in {clip.source}"
                )
        elif onset_i == len(clip) - 1:
            raise PredictError(
                f"{clip.source}: no frame after onset {clip.numbers[onset_i]} to spot the apex in "
                f"(the clip has {len(clip)} frame{'s' if len(clip) != 1 else ''}); give --apex or a longer clip"
            )

        start = time.perf_counter()
        transform, face = None, {"face": "given"}
        if not self.given_crops:
            first = apex_i if onset_i is None else onset_i
            known_apex = None if apex is None or onset_i is None else apex_i
            searched = _search_order(first, known_apex, len(clip), self.aligner.max_frames)
            transform = self.aligner.fit(clip.frames[i] for i in searched)
            if not transform.face:
                shown = ", ".join(clip.names[i] for i in searched[:4]) + (", ..." if len(searched) > 4 else "")
                raise PredictError(f"no face found in {clip.source}: searched {len(searched)} frames ({shown})")
            face = {**transform.describe(), "frame": clip.numbers[searched[transform.frame]]}
        timings["detect"] = time.perf_counter() - start

        def crop(i: int, grey: bool = False) -> np.ndarray:
            frame = to_gray(clip.frames[i]) if grey else clip.frames[i]
            return to_square(frame, self.aligner.size) if transform is None else transform.apply(frame)

        start = time.perf_counter()
        # one transform for every frame of the clip, after each frame is registered onto the onset
        if onset_i is not None and apex is None:
            # spotting compares grey levels, so grey frames are warped: a third of the work of warping RGB ones
            grey = None if transform is None or not register else _registered_grey(clip.frames[onset_i:])
            if grey is not None:  # registered face crops: the whole crop is face
                spotted = spot_apex(grey)
            else:
                grey = [crop(i, grey=True) for i in range(onset_i, len(clip))]
                spotted = spot_apex(grey, region=None if transform is None else transform.face_box)
            if spotted == 0:
                raise PredictError(
                    f"{clip.source}: no frame after onset {clip.numbers[onset_i]} differs from it inside the face, "
                    "so there is no apex to spot; give --apex"
                )
            apex_i = onset_i + spotted
            apex_source = "spotted"
        else:
            apex_source = "interval" if from_interval else "given" if apex is not None else "only"
        apex_frame = clip.frames[apex_i]
        if onset_i is not None and transform is not None and register:
            try:
                apex_frame, registration = register_pair(clip.frames[onset_i], apex_frame)
                face["registration"] = {
                    "residual_px": round(registration.residual_px, 3),
                    "shift_px": [round(v, 3) for v in registration.shift],
                }
            except RegisterError as err:
                face["registration"] = f"not registered: {err}"
        onset_crop = None if onset_i is None else crop(onset_i)
        apex_crop = transform.apply(apex_frame) if transform is not None else crop(apex_i)
        timings["align"] = time.perf_counter() - start
        if transform is None:
            face["frame"] = clip.numbers[apex_i]

        start = time.perf_counter()
        probabilities, maps, motion = self._infer(onset_crop, apex_crop)
        timings["model"] = time.perf_counter() - start

        best = int(np.argmax(probabilities))
        return Prediction(
            label=self.classes[best],
            probabilities={c: float(p) for c, p in zip(self.classes, probabilities, strict=True)},
            onset=None if onset_i is None else clip.numbers[onset_i],
            apex=clip.numbers[apex_i],
            onset_source="unused"
            if onset_i is None
            else "interval"
            if from_interval
            else "first"
            if onset is None
            else "given",
            apex_source=apex_source,
            onset_name=None if onset_i is None else clip.names[onset_i],
            apex_name=clip.names[apex_i],
            source=clip.source,
            face=face,
            attention=maps,
            onset_crop=onset_crop,
            apex_crop=apex_crop,
            motion=motion,
            timings=timings,
        )

    def _strongest_interval(self, clip: Clip) -> Any:
        """The strongest micro-expression `pamer.spot` finds in a long clip (else its strongest expression; None
        when it finds none)."""
        from pamer.spot.source import frames_source
        from pamer.spot.spotter import spot_video

        result = spot_video(frames_source(clip.frames, clip.numbers, clip.fps, clip.source))
        usable = [i for i in result.intervals if i.apex is not None and i.apex > i.onset]
        micro = [i for i in usable if i.type == "micro"]
        return max(micro or usable, key=lambda i: i.peak or 0.0, default=None)

    def _infer(
        self, onset_crop: np.ndarray | None, apex_crop: np.ndarray
    ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
        import torch

        from pamer.preprocess.network_input import model_input

        card = self.card
        x = model_input(
            None if onset_crop is None else onset_crop[None],
            apex_crop[None],
            input_size=card.input_size,
            mean=card.mean,
            std=card.std,
            representation=card.representation,
            device=self.device,
        )
        with torch.inference_mode():
            features, maps = self.model.forward_features(x)
            logits = self.model.forward_head(features)
        # softmax in float64 so the probabilities sum to 1 to double precision
        probabilities = torch.softmax(logits[0].double().cpu(), dim=0).numpy()
        if not np.isfinite(probabilities).all():
            raise PredictError(
                f"model {card.model!r} gave non-finite class scores for this clip; its weights or model.json "
                "normalisation (mean, std) are damaged: retrain it"
            )
        return probabilities, [m[0, 0].float().cpu().numpy() for m in maps], x[0].cpu().numpy()


def _registered_grey(frames: Sequence[np.ndarray]) -> list[np.ndarray] | None:
    """Grey face crops of `frames`, each registered onto the first (`pamer.preprocess.register`; the face followed
    with `pamer.preprocess.track`), or None when no face is found in the first. A frame where the face is lost is
    cropped unregistered."""
    import cv2

    from pamer.preprocess.face import to_gray
    from pamer.preprocess.register import CROP_SIZE, Reference, RegisterError, register
    from pamer.preprocess.track import FaceTracker

    tracker = FaceTracker()
    first = to_gray(frames[0])
    points = tracker.update(first)
    if points is None:
        return None
    try:
        reference = Reference.from_frame(first, points)
    except RegisterError:
        return None
    crops = [reference.crop]
    for frame in frames[1:]:
        gray = to_gray(frame)
        points = tracker.update(gray)
        if points is None:
            crops.append(cv2.warpAffine(gray, reference.matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR))
        else:
            crops.append(register(reference, gray, points, residual=False)[0])
    return crops


def _search_order(onset_i: int, apex_i: int | None, n: int, max_frames: int) -> list[int]:
    """The frames searched for a face, in `pamer prepare`'s order: the onset, the apex, then evenly spaced frames
    between them (with no apex given: evenly spaced frames after the onset), `max_frames` at most."""
    first = [onset_i] if apex_i is None else [onset_i, apex_i]
    between = list(range(onset_i + 1, n if apex_i is None else apex_i))
    wanted = max(max_frames - len(first), 0)
    if len(between) > wanted:
        between = [between[i] for i in np.linspace(0, len(between) - 1, wanted).round().astype(int)]
    return first + between
