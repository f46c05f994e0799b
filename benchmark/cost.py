"""Cost figures: parameter count and peak memory, labelled by what they measure."""

from __future__ import annotations

import resource
import sys

import torch


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def reset_peak_memory(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_memory(device: str) -> tuple[str, float]:
    """(metric name, MiB). On CUDA: peak allocated GPU memory since the last reset. On CPU:
    the process's peak resident set size (it includes everything the process has held)."""
    if torch.device(device).type == "cuda":
        return "peak_gpu_mem_mb", torch.cuda.max_memory_allocated() / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return "peak_cpu_rss_mb", rss / (2**20 if sys.platform == "darwin" else 2**10)
