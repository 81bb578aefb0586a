"""The model directory `pamer train` writes and `pamer predict` reads: `model.safetensors` + `model.json`.

The weights file carries, in its safetensors metadata, a digest of the fields of `model.json` that say what the
weights mean (`card_digest`: network, options, classes in order, input size, normalisation, representation,
preprocessing). `pamer predict` recomputes it, so a model.json with renamed or reordered classes or another
input size is refused instead of predicting with it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from pamer.errors import PamerError
from pamer.outputs import write_atomic

__all__ = ["CARD_DIGEST_KEY", "CARD_KEYS", "MODEL_FILES", "CheckpointError", "card_digest", "write_checkpoint"]

MODEL_FILES = ("model.safetensors", "model.json")
# what `pamer train` writes into model.json and predict needs: together they say what the weights compute
CARD_KEYS = ("model", "num_classes", "classes", "input_size", "mean", "std", "representation", "preprocess")
CARD_DIGEST_KEY = "pamer_card"  # the safetensors metadata key of `card_digest`


class CheckpointError(PamerError):
    """A model directory that cannot be written (the message names the file and why)."""


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
    import torch
    from safetensors.torch import save

    out_dir = Path(out_dir)
    broken = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
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


def _plain(value: object) -> object:
    # numpy scalars in a card (e.g. a class count) become plain numbers, anything else its text
    return value.item() if isinstance(value, np.generic) else str(value)
