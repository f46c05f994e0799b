"""Rough time estimate for a matrix, used by `fusebench bench --dry-run`."""

from __future__ import annotations

import os

from strategies import get_strategy

# Calibrated on a 2-core CPU: the `default` profile (621 cells, batch 128) ran in 1,331 s with
# 1 worker and 993 s with 2 (`fusebench perf workers`, 1.34x); these per-training throughputs
# (evaluation and tracking overhead folded in) reproduce that. GPU_SPEEDUP is a guess, not a
# measurement.
CPU_TRAIN_SAMPLES_PER_S = {"pooled": 27400.0, "tokens": 5900.0}
GPU_SPEEDUP = 8.0
TRAIN_ROWS_GUESS = 2000
PRUNED_TRIAL_SHARE = 0.4
WORKER_SPEEDUP_PER_CORE = 0.34  # measured: 2 workers on 2 cores = 1.34x


def estimate_seconds(config, cells, workers: int = 1) -> float:
    # Early stopping: a run lasts about its best epoch plus the patience, rarely the whole cap.
    expected_epochs = min(config.epochs, 4 * config.patience)

    def per_training(cell) -> float:
        kind = "tokens" if get_strategy(cell.strategy).consumes_tokens else "pooled"
        return expected_epochs * TRAIN_ROWS_GUESS / CPU_TRAIN_SAMPLES_PER_S[kind]

    studies = {(c.dataset, c.variant, c.dropout): c for c in cells}
    # Successive halving stops most trials after 2 or 6 epochs: about 40% of full trainings.
    tuning = sum(PRUNED_TRIAL_SHARE * config.trials * per_training(c) for c in studies.values())
    final = sum(2 * per_training(c) for c in cells)  # tuned + defaults retrained per seed
    total = tuning + final
    if config.device.startswith("cuda"):
        total /= GPU_SPEEDUP
    parallel = min(workers, os.cpu_count() or 1)
    return total / (1 + WORKER_SPEEDUP_PER_CORE * (parallel - 1))
