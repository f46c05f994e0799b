"""Mixed precision on CUDA (the profile's ``amp``): bf16 autocast, or fp16 autocast with a
gradient scaler. Off CUDA, training is always float32. Importing this module needs no torch, so
configuration code can validate the field."""

from __future__ import annotations

import contextlib

AMP_MODES = ("off", "bf16", "fp16")


def autocast(amp: str, device) -> contextlib.AbstractContextManager:
    """The autocast context of ``amp`` on a CUDA ``device``; a no-op elsewhere or when off."""
    import torch

    if amp == "off" or torch.device(device).type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16 if amp == "bf16" else torch.float16)
