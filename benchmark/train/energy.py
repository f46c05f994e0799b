"""Energy of a stretch of work (training a group of models, a run of inferences), from codecarbon's
offline tracker, labelled by where it comes from.

codecarbon reads hardware energy counters where the machine exposes them (RAPL on Linux CPUs, NVML on
NVIDIA GPUs) and otherwise estimates the CPU's power from its rated power (TDP, from codecarbon's table of
CPU models) times the load of this process; memory is always estimated from its size. So every figure
carries a source, ``vocabulary.ENERGY_SOURCE``: "measured: RAPL", "measured: RAPL + NVML",
"estimate: rated power", or "estimate: CPU at rated power; GPU measured: NVML". It runs in codecarbon's
"process" mode (the estimate counts this process's CPU time, not the neighbours'; counters are read for
the whole package or device, so a measurement on a shared machine includes whatever else ran there),
writes no file, calls no network service and logs nothing below errors. Where the tracker cannot run
(not installed, or it fails), the meter gives no reading and the cell logs no energy."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from benchmark import vocabulary
from benchmark.train.device import is_cuda, synchronize

# codecarbon's CPU modes that read an energy counter, and what to call them; every other mode
# ("cpu_load", "constant") is the rated-power estimate.
MEASURED_CPU_MODES = {"intel_rapl": "RAPL", "windows_emi": "RAPL (Windows EMI)", "intel_power_gadget": "Power Gadget",
                      "apple_powermetrics": "powermetrics"}
# A tracker samples power this often during long work; counters and the process's CPU time are read
# again at the end, so short work is covered by one reading.
SAMPLE_SECONDS = 10.0
# The inference measurement runs forward passes for at least this long, so that the counters (or the
# process's CPU time, 10 ms ticks) move by much more than their resolution.
INFERENCE_SECONDS = 0.5
COUNTRY = "USA"  # needed by the offline tracker for its carbon figure, which fusebench does not use


@dataclass(frozen=True)
class EnergyReading:
    """Energy used while a meter ran: joules in all and per part (CPU, GPU, memory), over ``seconds``."""

    joules: float
    seconds: float
    source: str
    cpu_joules: float = 0.0
    gpu_joules: float = 0.0
    ram_joules: float = 0.0


def _tracker(device: str):
    """A quiet offline tracker of this process (and of the GPU the cell runs on, only), or None."""
    try:
        from codecarbon import OfflineEmissionsTracker
    except ImportError:
        return None
    logging.getLogger("codecarbon").setLevel(logging.ERROR)  # its INFO lines come before log_level applies
    try:
        return OfflineEmissionsTracker(
            country_iso_code=COUNTRY, output_methods=[], emissions_endpoint=None, log_level="error",
            measure_power_secs=SAMPLE_SECONDS, tracking_mode="process", gpu_ids=_gpu_ids(device),
            allow_multiple_runs=True)
    except Exception:  # noqa: BLE001 - no tracker means no energy figure, never a failed cell
        return None


def _gpu_ids(device: str) -> list[int]:
    """The GPU a cell runs on, as codecarbon counts GPUs (NVML's index, which CUDA_VISIBLE_DEVICES and
    CUDA's own ordering do not change: found by the device's UUID), or none for a CPU cell (so that the
    machine's idle GPUs are not counted). Not the UUID itself: codecarbon 3.3.2 strips the characters
    "MIG-" from the front of an id, which turns "GPU-..." into "PU-..." that matches nothing."""
    if not is_cuda(device):
        return []
    index = torch.device(device).index
    index = torch.cuda.current_device() if index is None else index
    uuid = str(getattr(torch.cuda.get_device_properties(index), "uuid", "") or "")
    try:
        import pynvml  # nvidia-ml-py, which codecarbon installs

        pynvml.nvmlInit()
        for nvml_index in range(pynvml.nvmlDeviceGetCount()):
            name = pynvml.nvmlDeviceGetUUID(pynvml.nvmlDeviceGetHandleByIndex(nvml_index))
            name = name.decode() if isinstance(name, bytes) else str(name)
            if uuid and name.endswith(uuid):  # NVML: "GPU-<uuid>"; torch: "<uuid>"
                return [nvml_index]
    except Exception:  # noqa: BLE001 - no NVML: CUDA's index, right unless the visible devices are renumbered
        pass
    return [index]


def _source(tracker) -> str:
    """Where the tracker's figures come from: measured by counters, or (in part) estimated."""
    cpu, gpu = None, None
    for part in getattr(tracker, "_hardware", []):  # codecarbon keeps no public record of its modes
        kind = type(part).__name__
        if kind == "CPU":
            cpu = MEASURED_CPU_MODES.get(getattr(part, "_mode", ""))
        elif kind == "AppleSiliconChip":
            cpu = "powermetrics"
        elif kind == "GPU" and getattr(part, "gpu_ids", None):
            gpu = "AMD SMI" if torch.version.hip else "NVML"
    if cpu:
        return f"{vocabulary.ENERGY_MEASURED}: {cpu}" + (f" + {gpu}" if gpu else "")
    if gpu:
        return f"{vocabulary.ENERGY_ESTIMATE}: CPU at rated power; GPU measured: {gpu}"
    return f"{vocabulary.ENERGY_ESTIMATE}: rated power"


class EnergyMeter:
    """Energy used while the ``with`` body runs on ``device``; ``reading`` afterwards (None where no
    tracker could run). Synchronises CUDA at both ends, so queued GPU work is counted where it ran."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.reading: EnergyReading | None = None
        self._tracker = None

    def __enter__(self) -> "EnergyMeter":
        synchronize(self.device)
        self._tracker = _tracker(self.device)
        if self._tracker is not None:
            self._tracker.start()  # codecarbon swallows its own errors here; stop() then has no data
        return self

    def __exit__(self, *exc) -> None:
        if self._tracker is None:
            return
        synchronize(self.device)
        try:
            self._tracker.stop()
            data = self._tracker.final_emissions_data
        except Exception:  # noqa: BLE001 - see _tracker
            return
        kwh_to_j = 3.6e6
        joules = float(data.energy_consumed) * kwh_to_j
        if not math.isfinite(joules) or joules < 0:
            return
        self.reading = EnergyReading(joules, float(data.duration), _source(self._tracker),
                                     float(data.cpu_energy) * kwh_to_j, float(data.gpu_energy) * kwh_to_j,
                                     float(data.ram_energy) * kwh_to_j)


def shares(total_joules: float, epochs: list[int]) -> list[float]:
    """A group's training energy split between the models trained in it, in proportion to the epochs
    each ran: stacked models share every step while they all train, and a model that stops early
    leaves the stack (benchmark/train/stacked.py), so its share ends there. Models trained one by
    one in a group share one shape and batch size, so an epoch costs each about the same."""
    total = sum(epochs)
    if total <= 0:
        return [total_joules / len(epochs)] * len(epochs)
    return [total_joules * e / total for e in epochs]


def inference_energy(model, split, modalities: list[str], samples_per_s: float, device: str,
                     seconds: float = INFERENCE_SECONDS) -> tuple[float, str] | None:
    """(joules per 1,000 inferences, source) of ``model`` on full-input batches of ``split``, or None
    where no tracker could run. The same forward passes as the throughput measurement
    (evaluation.inference_speed, 256-row batches after warm-up), repeated under a meter for at least
    ``seconds`` (the repeats sized from ``samples_per_s``, the throughput measured before): energy /
    rows run x 1,000."""
    from benchmark.train.evaluation import EVAL_BATCH, inference_speed

    rows = min(EVAL_BATCH, len(split))
    if rows == 0 or not samples_per_s > 0:
        return None
    repeats = max(1, math.ceil(seconds * samples_per_s / rows))
    with EnergyMeter(device) as meter:
        inference_speed(model, split, modalities, warmup=0, repeats=repeats)
    if meter.reading is None:
        return None
    return meter.reading.joules * 1000.0 / (repeats * rows), meter.reading.source
