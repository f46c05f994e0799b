"""Rough time estimate for a matrix, used by `fusebench bench --dry-run`."""

from __future__ import annotations

# Measured on a 2-core CPU with the emoji suite (train split ~1,330 rows): samples/s of the
# shared training loop for pooled strategies and for token strategies.
CPU_TRAIN_SAMPLES_PER_S = {"pooled": 12000.0, "tokens": 2500.0}
GPU_SPEEDUP = 8.0
TRAIN_ROWS_GUESS = 1400


def estimate_seconds(config, cells) -> float:
    from strategies import get_strategy

    def per_training(cell) -> float:
        kind = "tokens" if get_strategy(cell.strategy).consumes_tokens else "pooled"
        return config.epochs * TRAIN_ROWS_GUESS / CPU_TRAIN_SAMPLES_PER_S[kind]

    studies = {(c.dataset, c.variant, c.dropout): c for c in cells}
    tuning = sum(config.trials * per_training(c) for c in studies.values())
    final = sum(2 * per_training(c) for c in cells)  # tuned + defaults retrained per seed
    total = tuning + final
    if config.device.startswith("cuda"):
        total /= GPU_SPEEDUP
    return total
