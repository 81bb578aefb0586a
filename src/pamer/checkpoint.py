"""The model directory `pamer train` writes and `pamer predict` reads: `model.safetensors` + `model.json`.

`write_checkpoint` writes it; `load_checkpoint` checks it and builds the network from it, and `ModelCard` is what
`model.json` says about the weights. The weights file carries, in its safetensors metadata, a digest of the
fields of `model.json` that say what the weights mean (`card_digest`: network, options, classes in order, input
size, normalisation, representation, preprocessing). `load_checkpoint` recomputes it, so a model.json with
renamed or reordered classes or another input size is refused instead of predicting with it.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from pamer.config import MAX_SIZE, MIN_INPUT_SIZE
from pamer.devices import DeviceError, torch_device
from pamer.errors import PamerError
from pamer.models import create_model
from pamer.outputs import write_atomic

__all__ = [
    "CARD_DIGEST_KEY",
    "CARD_KEYS",
    "MODEL_FILES",
    "CheckpointError",
    "ModelCard",
    "card_digest",
    "load_checkpoint",
    "write_checkpoint",
]

MODEL_FILES = ("model.safetensors", "model.json")
# what `pamer train` writes into model.json and predict needs: together they say what the weights compute
CARD_KEYS = ("model", "num_classes", "classes", "input_size", "mean", "std", "representation", "preprocess")
CARD_DIGEST_KEY = "pamer_card"  # the safetensors metadata key of `card_digest`
# what predict computes from a clip: apex - onset, or the apex crop alone
PREDICT_REPRESENTATIONS = ("diff", "apex")


class CheckpointError(PamerError):
    """A model directory that cannot be written, or read and used (the message names the file and why)."""


def card_digest(card: dict) -> str:
    """A digest of the fields of a model card that say what the weights mean (`CARD_KEYS` and `model_args`)."""
    fields = {k: card.get(k) for k in (*CARD_KEYS, "model_args")}
    fields["model_args"] = fields["model_args"] or {}
    # through JSON first: the digest of a card and of the same card read back from model.json are equal
    text = json.dumps(json.loads(json.dumps(fields, default=_plain)), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def write_checkpoint(out_dir: str | Path, state: dict, card: dict) -> Path:
    """Write `state` (tensors) as `model.safetensors` and `card` as `model.json` into `out_dir`.

    Each file is written beside its name and renamed into place (a reader never sees half a file), with the
    permissions of any file the user makes (0666 less the umask; safetensors' own writer leaves 0600).

    Raises:
        CheckpointError: a tensor that is NaN or infinite, or a write that fails (read-only, full disk), naming it.
    """
    out_dir = Path(out_dir)
    broken = _non_finite(state)
    if broken:
        raise CheckpointError(
            f"the trained weights {', '.join(broken[:3])} hold NaN or infinite values; no model written to {out_dir}"
        )
    # one metadata key: safetensors writes several in hash order, and the same training must give the same bytes
    weights = save(state, metadata={CARD_DIGEST_KEY: card_digest(card)})
    text = json.dumps(card, indent=2, default=_plain) + "\n"
    write_atomic(out_dir / "model.safetensors", weights, CheckpointError)
    write_atomic(out_dir / "model.json", text, CheckpointError)
    return out_dir


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
            raise CheckpointError(f"{path} is not readable JSON: {err}") from None
        if not isinstance(meta, dict):
            raise CheckpointError(f"{path}: expected a JSON object, got {type(meta).__name__}")
        missing = [k for k in CARD_KEYS if k not in meta]
        if missing:
            raise CheckpointError(f"{path} lacks the keys {missing}; expected at least {list(CARD_KEYS)}")
        try:
            return cls._checked(meta, path)
        except CheckpointError:
            raise
        except (TypeError, ValueError) as err:  # e.g. a number where a list belongs
            raise CheckpointError(
                f"{path}: a value has the wrong type ({err}); expected what `pamer train` writes"
            ) from None

    @classmethod
    def _checked(cls, meta: dict, path: Path) -> ModelCard:
        classes = meta["classes"]
        if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
            raise CheckpointError(f"{path}: classes must be a list of class names, got {classes!r}")
        duplicated = sorted({c for c in classes if classes.count(c) > 1})
        if duplicated:
            raise CheckpointError(f"{path}: classes names {', '.join(duplicated)} more than once; each class once")
        num_classes = meta["num_classes"]
        if isinstance(num_classes, bool) or num_classes != len(classes) or not classes:
            raise CheckpointError(f"{path}: num_classes is {num_classes!r} but classes lists {len(classes)} names")
        size = meta["input_size"]
        if isinstance(size, bool) or not isinstance(size, int) or not MIN_INPUT_SIZE <= size <= MAX_SIZE:
            raise CheckpointError(
                f"{path}: input_size is {size!r}; expected an integer from {MIN_INPUT_SIZE} to {MAX_SIZE} (the "
                "network's input side in pixels, as `pamer train` writes it)"
            )
        if meta["representation"] not in PREDICT_REPRESENTATIONS:
            raise CheckpointError(
                f"{path}: representation {meta['representation']!r} is not supported by predict (expected "
                f"{' or '.join(map(repr, PREDICT_REPRESENTATIONS))}: predict computes no flow field from a clip)"
            )
        model_args = meta.get("model_args") or {}
        if not isinstance(model_args, dict):
            raise CheckpointError(f"{path}: model_args must be an object of model options, got {model_args!r}")
        mean, std = [float(m) for m in meta["mean"]], [float(s) for s in meta["std"]]
        if not (len(mean) == len(std) == 3 and all(math.isfinite(v) for v in mean + std) and min(std) > 0):
            raise CheckpointError(
                f"{path}: mean and std must be 3 finite numbers each, std positive; got {meta['mean']}, {meta['std']}"
            )
        preprocess = meta["preprocess"]
        if not isinstance(preprocess, dict):
            raise CheckpointError(f"{path}: preprocess must be the training cache's settings, got {preprocess!r}")
        # `pamer train` copies the cache's settings, class list included: a renamed or reordered class shows here
        trained = preprocess.get("classes")
        if trained is not None and list(trained) != classes:
            raise CheckpointError(
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
        raise CheckpointError(
            f"{path} is a pickled checkpoint (torch.save / pickle format), not safetensors; pamer never loads "
            "pickle because it can run arbitrary code. Save the weights with safetensors (`pamer train` does)."
        )
    if len(head) < 9:
        raise CheckpointError(f"{path} is not a safetensors file: only {len(head)} bytes long")
    (header_len,) = struct.unpack("<Q", head[:8])
    if head[8:9] != b"{" or header_len > path.stat().st_size:
        raise CheckpointError(f"{path} is not a safetensors file (no safetensors header at its start)")


def load_checkpoint(model_dir: str | Path, device: str = "cpu") -> tuple[Any, ModelCard]:
    """Build the network named in `model.json` and fill it with `model.safetensors`, in eval mode.

    Raises:
        CheckpointError: a device torch does not know or does not have, missing folder or file, a pickled or
            malformed weights file, an incomplete model.json, weights saved with another model.json, or tensors
            that do not match the named model (missing, unexpected or wrong-shaped keys, named) or hold NaN.
    """
    try:
        target = torch_device(device)
    except DeviceError as err:
        raise CheckpointError(f"device {device!r}: {err}") from None
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise CheckpointError(f"model directory {model_dir} does not exist (make one with `pamer train`)")
    missing = [name for name in MODEL_FILES if not (model_dir / name).is_file()]
    if missing:
        raise CheckpointError(
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
        raise CheckpointError(f"{weights} cannot be read as safetensors: {err}") from None
    # `pamer train` binds model.json to the weights; a hand-made checkpoint without the digest is checked by shape
    if saved_digest is not None and saved_digest != card_digest(json.loads((model_dir / "model.json").read_text())):
        raise CheckpointError(
            f"{model_dir / 'model.json'} does not describe {weights}: its classes, input_size, mean, std, model or "
            "preprocess differ from those the weights were saved with (edited by hand?); restore the model.json "
            "`pamer train` wrote, or train again"
        )
    try:
        model = create_model(card.model, num_classes=len(card.classes), **card.model_args)
    except ValueError as err:
        raise CheckpointError(f"{model_dir / 'model.json'}: {err}") from None
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
        raise CheckpointError(
            f"{weights} does not match model {card.model!r} with {len(card.classes)} classes named in model.json: "
            + "; ".join(parts)
        )
    broken = _non_finite(state)
    if broken:
        raise CheckpointError(
            f"{weights}: {', '.join(broken[:3])}{' ...' if len(broken) > 3 else ''} hold NaN or infinite values "
            "(the training diverged); retrain it, e.g. with a smaller train.lr"
        )
    model.load_state_dict(state, strict=True)
    return model.to(target).eval(), card


def _non_finite(state: dict) -> list[str]:
    """The names of the floating-point tensors of `state` that hold NaN or infinite values."""
    return [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]


def _plain(value: object) -> object:
    # numpy scalars in a card (e.g. a class count) become plain numbers, anything else its text
    return value.item() if isinstance(value, np.generic) else str(value)
