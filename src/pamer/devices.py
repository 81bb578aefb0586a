"""The one check of a torch device a user names (`train.device`, `pamer predict --device`): one torch knows, of a
kind pamer runs on, and present on this machine. Torch itself fails late and as a traceback: when the network
moves there (`mps` on Linux, `cuda:3` on a machine of one GPU), or inside numpy (`meta`)."""

from __future__ import annotations

import torch

from pamer.errors import PamerError

__all__ = ["DEVICE_TYPES", "DeviceError", "torch_device"]

DEVICE_TYPES = ("cpu", "cuda", "mps")


class DeviceError(PamerError):
    """Why a named device cannot be used here; callers add which setting named it."""


def torch_device(name: str) -> torch.device:
    """The torch device `name` (cpu, cuda, cuda:N, mps).

    Raises:
        DeviceError: a name torch does not know, a kind pamer does not run on, or a device this machine lacks.
    """
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError("not a torch device (expected cpu, cuda or cuda:N)") from None
    if device.type not in DEVICE_TYPES:
        raise DeviceError(f"not a device pamer runs on (expected {', '.join(DEVICE_TYPES[:-1])} or cuda:N)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError("torch sees no MPS (Apple GPU) device here")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("torch sees no CUDA device here")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"this machine has {count} CUDA device(s): cuda:0 to cuda:{count - 1}")
    return device
