"""Cost figures: parameter count and peak memory, labelled by what they measure."""

from __future__ import annotations

import resource
import sys
import threading

import torch

from benchmark.train.batching import model_inputs
from benchmark.train.device import is_cuda, peak_memory_mb, reset_peak_memory, synchronize


def parameter_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def current_rss_mb() -> float:
    """Resident memory of this process now (Linux /proc), or its lifetime peak elsewhere."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """The peak resident memory of this process so far, in MiB; it counts memory-mapped feature
    pages once they are read. Linux: ``VmHWM`` of /proc/self/status, the high-water mark of this
    program's own address space (``ru_maxrss`` is no use there: a process started by fork and
    exec inherits its parent's peak in it, so every worker would report the coordinator's).
    Elsewhere ``ru_maxrss`` (bytes on macOS)."""
    return _status_mb("VmHWM")


def _status_mb(field: str) -> float:
    """``field`` of /proc/self/status in MiB; without /proc, the lifetime peak (the best there is)."""
    try:
        with open("/proc/self/status") as handle:
            for line in handle:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10)


class PeakMemory:
    """Peak memory while the ``with`` body runs.

    CUDA: peak allocated GPU memory of this device (``torch.cuda.max_memory_allocated(device)`` after a reset), metric
    ``peak_gpu_mem_mb``. CPU: the process's resident memory sampled every 5 ms, metric
    ``peak_cpu_rss_mb`` (includes the features and libraries the process holds), plus
    ``cpu_rss_growth_mb``, the peak minus the resident memory at entry (what the cell added)."""

    def __init__(self, device: str, interval_s: float = 0.005) -> None:
        self.device = device
        self.cuda = is_cuda(device)
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self.start_mb = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakMemory":
        if self.cuda:
            synchronize(self.device)
            reset_peak_memory(self.device)
        else:
            self.start_mb = self.peak_mb = current_rss_mb()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_mb = max(self.peak_mb, current_rss_mb())

    def __exit__(self, *exc) -> None:
        if self.cuda:
            synchronize(self.device)
            self.peak_mb = peak_memory_mb(self.device)
        else:
            self._stop.set()
            self._thread.join()
            self.peak_mb = max(self.peak_mb, current_rss_mb())

    def metrics(self) -> dict[str, float]:
        if self.cuda:
            return {"peak_gpu_mem_mb": self.peak_mb}
        return {"peak_cpu_rss_mb": self.peak_mb, "cpu_rss_growth_mb": self.peak_mb - self.start_mb}


def training_step_tensor_mb(model: torch.nn.Module, split, modalities: list[str], batch_size: int) -> dict[str, float]:
    """Memory one training step needs, by tensor accounting, the same on every device.

    weights + their gradients + AdamW's two moment buffers (trainable weights count 4x, frozen
    ones 1x) + the activations autograd saves for backward in one forward pass over a full
    batch with every modality present (counted once per storage, weights excluded). This is
    what the strategy itself needs, free of allocator caching and of what else the process
    holds, so it separates strategies where a CPU RSS reading cannot. Metrics
    ``train_step_tensor_mb`` and ``activation_mb`` (MiB)."""
    def nbytes(t: torch.Tensor) -> int:
        return t.untyped_storage().nbytes()

    params = list(model.parameters())
    weight_ptrs = {p.untyped_storage().data_ptr() for p in params}
    trainable = sum(nbytes(p) for p in params if p.requires_grad)
    frozen = sum(nbytes(p) for p in params if not p.requires_grad)
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in weight_ptrs:
            saved[ptr] = nbytes(t)
        return t

    was_training = model.training
    model.train()
    device = next((p.device for p in params), torch.device("cpu"))
    index = torch.arange(min(batch_size, len(split)), device=device)
    inputs, token_mask = model_inputs(split, modalities, index, model.consumes_tokens, device=device)
    present = torch.ones(len(index), len(modalities), dtype=torch.bool, device=device)
    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        output = model(inputs, present, token_mask)
    del output
    model.train(was_training)
    activations = sum(saved.values())
    return {"train_step_tensor_mb": (4 * trainable + frozen + activations) / 2**20, "activation_mb": activations / 2**20}
