"""The training device: resolving ``auto`` where the work runs, and CUDA clock and memory
calls that always name the device (``cuda:1`` must not read GPU 0)."""

from __future__ import annotations

import torch


def parse_device(text: str) -> str:
    """``--device``: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` (or ``mps`` where this torch has it),
    checked to exist on this machine. Returns it as torch spells it; raises ValueError naming the
    choices, so a bad device stops the command before anything is registered or written."""
    text = text.strip()
    if text == "auto":
        return text
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ValueError(f"expected one of {_device_choices()}; got {text!r}") from None
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"{text!r}: this machine has no CUDA GPU (torch sees none); use cpu or auto")
        if device.index is not None and device.index >= count:
            raise ValueError(f"{text!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}")
    elif device.type == "mps":
        if not _has_mps():
            raise ValueError(f"{text!r}: this machine has no MPS (Apple GPU) device; use cpu or auto")
    elif device.type != "cpu":
        raise ValueError(f"expected one of {_device_choices()}; got {text!r}")
    return str(device)


def _device_choices() -> str:
    """The device names ``--device`` takes on this machine's torch."""
    return "auto, cpu, cuda, cuda:N" + (", mps" if _has_mps() else "")


def _has_mps() -> bool:
    return hasattr(torch.backends, "mps") and torch.backends.mps.is_available()


def resolve_device(requested: str | None) -> str:
    """``auto`` (or nothing) -> ``cuda`` when this machine has a GPU, else ``cpu``; any other
    value is returned unchanged."""
    if requested and requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def is_cuda(device: torch.device | str) -> bool:
    return torch.device(device).type == "cuda"


def synchronize(device: torch.device | str) -> None:
    """Wait for the work queued on ``device`` (a no-op off CUDA)."""
    if is_cuda(device):
        torch.cuda.synchronize(torch.device(device))


def reset_peak_memory(device: torch.device | str) -> None:
    if is_cuda(device):
        torch.cuda.reset_peak_memory_stats(torch.device(device))


def peak_memory_mb(device: torch.device | str) -> float:
    """Peak allocated memory on ``device`` since the last reset, in MiB."""
    return torch.cuda.max_memory_allocated(torch.device(device)) / 2**20
