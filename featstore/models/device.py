"""``resolve_device``: the one rule turning a device name (``auto``, ``cpu``, ``cuda:1``)
into a torch device, used by extraction, fine-tuning and model loading alike."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from featstore.errors import CrosslingError

if TYPE_CHECKING:  # pragma: no cover
    import torch


class DeviceError(CrosslingError, ValueError):
    """A device name torch does not know, or a CUDA device this machine does not have."""


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA (``cuda:$LOCAL_RANK`` under torchrun) when present, else CPU;
    any other name as torch reads it, checked against the devices of this machine.

    Raises
    ------
    DeviceError
        A name torch does not know, or a CUDA device that is not on this machine.
    """
    import torch

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise DeviceError(f"device {device!r}: not a torch device name (auto, cpu, cuda, cuda:1 ...)") from err
    if dev.type == "cuda" and (dev.index or 0) >= torch.cuda.device_count():
        raise DeviceError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                          "use cpu or auto")
    return dev
