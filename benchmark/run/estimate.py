"""Time estimate for a matrix, used by `fusebench bench --dry-run`.

The estimate adds up what a bench run spends, part by part, on an otherwise idle CPU with one worker:
- start-up (stores, queue, imports) and the report: FIXED_S;
- per dataset, features not cached yet: each pretrained encoder loaded (ENCODER_LOAD_S) and run over
  every row (ENCODE_S_PER_ROW by kind of encoder); cheap encoders (vectors, tabular, raw pixels) cost
  only the rows;
- per tuning trial: TRIAL_S (model build, Optuna and its storage, validation every epoch) plus the
  training itself, cut short by the pruner for most trials (PRUNED_TRIAL_SHARE);
- per cell: CELL_S (the default-hyperparameter retrain's set-up, evaluation on every subset of modalities
  and on the missing-rate curves, throughput timing, MLflow logging) plus two trainings (tuned and
  default hyperparameters).
Training = expected epochs x training rows / samples per second, with the rows taken from the card's
`size` note where it states them.

Calibration (see tests/test_estimate.py, which re-measures a tiny real run): the overheads are CPU
seconds measured with `time.process_time()` per phase of `fusebench bench` on the 60-row test dataset
(2 pretrained encoders, concat / late_weighted, 2 trials, epoch cap 10), a machine whose 2 cores were
shared with other work, so CPU time stood in for the wall time of an idle machine. The training
throughputs are the earlier calibration on the `default` profile. GPU_SPEEDUP is a guess, not a measurement.
"""

from __future__ import annotations

import os
import re

from strategies import get_strategy

CPU_TRAIN_SAMPLES_PER_S = {"pooled": 27400.0, "tokens": 5900.0}
GPU_SPEEDUP = 8.0  # applies to training only; the overheads stay
TRAIN_ROWS_GUESS = 2000  # a card that states no size
TRAIN_SHARE_GUESS = 0.7  # share of the rows in the training split when the card does not say
PRUNED_TRIAL_SHARE = 0.4  # successive halving stops most trials after 2 or 6 epochs
WORKER_SPEEDUP_PER_CORE = 0.34  # measured: 2 workers on 2 cores = 1.34x

FIXED_S = 10.0  # measured 3.3 s in the bench plus about 7 s of imports and the report
ENCODER_LOAD_S = 7.0  # per pretrained encoder and dataset (measured: 16.5 s for 2 encoders on 60 rows)
ENCODE_S_PER_ROW = {"image": 0.03, "text": 0.005, "other": 0.0002}  # DESIGN.md: EfficientNet-Lite0 20-35 ms/image
TRIAL_S = 1.8  # measured: 14.2 s for 8 trials of 30 training rows
CELL_S = 4.2  # measured: 16.8 s for 4 cells
_IMAGE = re.compile(r"efficientnet|resnet|vit|convnext|mobilenet|clip|torchvision|cnn", re.I)
_TEXT = re.compile(r"minilm|bert|roberta|mpnet|t5|gpt|text|sentence", re.I)


def _encoder_kind(encoder: str) -> str:
    return "image" if _IMAGE.search(encoder) else "text" if _TEXT.search(encoder) else "other"


def _pretrained(encoder: str) -> bool:
    return _encoder_kind(encoder) != "other"


def card_rows(card) -> int | None:
    """The rows a card says it has: the first number of its `size` note ("3,000 of 22,628 reviews" -> 3000)."""
    size = str((getattr(card, "info", None) or {}).get("size", ""))
    match = re.search(r"\d[\d,]*", size)
    return int(match.group().replace(",", "")) if match else None


def _train_share(card) -> float:
    split = getattr(card, "split", None) or {}
    held = [v for k, v in split.items() if k in ("validation", "test") and isinstance(v, float) and 0 < v < 1]
    return 1.0 - sum(held) if len(held) == 2 else TRAIN_SHARE_GUESS


def estimate_parts(config, cells, cards: dict | None = None) -> dict[str, float]:
    """Seconds per part (fixed, encoding, tuning, cells) for one worker on an idle machine."""
    expected_epochs = min(config.epochs, 4 * config.patience)  # early stopping: best epoch + patience
    speedup = GPU_SPEEDUP if config.device.startswith("cuda") else 1.0
    cards = cards or {}
    rows = {name: card_rows(card) for name, card in cards.items()}
    train_rows = {name: (rows[name] * _train_share(cards[name]) if rows.get(name) else TRAIN_ROWS_GUESS)
                  for name in cards}

    def training(cell) -> float:
        kind = "tokens" if get_strategy(cell.strategy).consumes_tokens else "pooled"
        n_train = train_rows.get(cell.dataset, TRAIN_ROWS_GUESS)
        return expected_epochs * n_train / CPU_TRAIN_SAMPLES_PER_S[kind] / speedup

    encoding = 0.0
    for dataset in sorted({c.dataset for c in cells}):
        card = cards.get(dataset)
        modalities = getattr(card, "modalities", ()) if card is not None else ()
        n = rows.get(dataset) or int(TRAIN_ROWS_GUESS / TRAIN_SHARE_GUESS)
        for spec in modalities:
            encoder = str(getattr(spec, "encoder", ""))
            load = ENCODER_LOAD_S if _pretrained(encoder) else 0.0
            encoding += load + n * ENCODE_S_PER_ROW[_encoder_kind(encoder)]
    studies = {(c.dataset, c.variant, c.dropout, getattr(c, "fold", None)): c for c in cells}
    tuning = sum(config.trials * (TRIAL_S + PRUNED_TRIAL_SHARE * training(c)) for c in studies.values())
    final = sum(CELL_S + 2 * training(c) for c in cells)  # tuned + default retrained per seed
    return {"fixed": FIXED_S, "encoding": encoding, "tuning": tuning, "cells": final}


def estimate_seconds(config, cells, workers: int = 1, cards: dict | None = None) -> float:
    """Estimated wall seconds of `fusebench bench` for these cells (features not cached yet). `cards`
    (dataset -> card) gives the rows and encoders; by default they are read from the configuration."""
    if cards is None:
        try:
            cards = config.cards()
        except Exception:  # noqa: BLE001 - an estimate without the cards falls back to guesses
            cards = {}
    parts = estimate_parts(config, cells, cards)
    parallel = min(workers, os.cpu_count() or 1)
    spread = parts["tuning"] + parts["cells"]  # what several workers share; encoding is once per dataset
    return parts["fixed"] + parts["encoding"] + spread / (1 + WORKER_SPEEDUP_PER_CORE * (parallel - 1))
