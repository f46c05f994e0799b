"""The training device: resolving ``auto`` where the work runs, and CUDA clock and memory
calls that always name the device (``cuda:1`` must not read GPU 0)."""

from __future__ import annotations

import torch


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
