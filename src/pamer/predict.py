"""Recognise the micro-expression in a user's clip: `Recognizer.from_dir(MODEL_DIR).predict(video_or_frames)`.

The clip (`pamer.clip`) goes through the same steps as training data: one face transform per clip fitted on the
onset frame (`pamer.preprocess.face`), the apex spotted when not given (`pamer.preprocess.motion.spot_apex`), and
the network input computed as the engine computes it, without augmentation (`pamer.preprocess.network_input`),
so training and prediction cannot drift apart. The model directory is read by `pamer.checkpoint`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pamer.checkpoint import ModelCard, load_checkpoint
from pamer.clip import Clip, read_clip
from pamer.errors import PamerError
from pamer.outputs import os_error_text, write_problem
from pamer.preprocess.face import FaceAligner, to_gray
from pamer.preprocess.images import to_square
from pamer.preprocess.motion import spot_apex
from pamer.preprocess.network_input import model_input
from pamer.preprocess.register import CROP_SIZE, Reference, RegisterError, register, register_pair
from pamer.preprocess.track import FaceTracker
from pamer.report.plots import plot_attention
from pamer.spot.source import frames_source
from pamer.spot.spotter import spot_video

__all__ = ["Prediction", "PredictError", "Recognizer", "check_picture_path"]

# a video longer than this (seconds) with no onset or apex given is spotted (`pamer.spot`) for its strongest
# expression: a micro-expression with its onset and offset spans under a second
LONG_CLIP_S = 2.0


class PredictError(PamerError):
    """A model, clip or onset/apex that prediction cannot use (the message names it); reading the clip and the
    model directory refuse with `pamer.clip.ClipError` and `pamer.checkpoint.CheckpointError`."""


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
    seconds per stage: decode, (spot,) detect, align, model. `warnings` are the clip's (`Clip.warnings`).
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
    warnings: list[str] = field(default_factory=list)

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
            "warnings": self.warnings,
        }

    def picture(self, path: str | Path) -> Path:
        """Save a PNG of the aligned apex face, the motion image (apex - onset) and the attention maps over the face.

        Raises:
            PredictError: a path `check_picture_path` refuses, or a write that fails (e.g. a full disk).
        """
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
        """Load `model.safetensors` + `model.json` from `model_dir` (see `pamer.checkpoint.load_checkpoint`)."""
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
            ClipError: an unreadable clip, or an onset/apex that is not one of its frame numbers.
            PredictError: onset/apex in the wrong order, a clip too short to spot an apex in, or no face found.
        """
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
            # an apex comes after the onset, so no --apex can help here
            if len(clip) > 1:
                why = f"it is the clip's last of {len(clip)} frames; give an earlier --onset"
            elif self.card.representation == "apex":  # the given onset only anchors the alignment
                why = f"the clip holds one frame; leave out --onset, and model {self.card.model!r} reads it as the apex"
            else:
                why = (
                    f"the clip holds one frame, and model {self.card.model!r} reads the motion from an onset to a "
                    "later apex; give a clip of two frames or more"
                )
            raise PredictError(
                f"{clip.source}: no frame after onset {clip.numbers[onset_i]} to spot the apex in: {why}"
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
            warnings=list(clip.warnings),
        )

    def _strongest_interval(self, clip: Clip) -> Any:
        """The strongest micro-expression `pamer.spot` finds in a long clip (else its strongest expression; None
        when it finds none)."""
        result = spot_video(frames_source(clip.frames, clip.numbers, clip.fps, clip.source))
        usable = [i for i in result.intervals if i.apex is not None and i.apex > i.onset]
        micro = [i for i in usable if i.type == "micro"]
        return max(micro or usable, key=lambda i: i.peak or 0.0, default=None)

    def _infer(
        self, onset_crop: np.ndarray | None, apex_crop: np.ndarray
    ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
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
