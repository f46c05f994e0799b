"""Time estimate for a matrix, used by `fusebench bench --dry-run`.

The estimate adds up what a bench run spends, part by part, on an otherwise idle CPU:
- start-up (stores, queue, imports, data preparation) and the report: FIXED_S;
- per dataset, features not cached yet: each pretrained encoder loaded (ENCODER_LOAD_S) and run over
  every row (ENCODE_S_PER_ROW by kind of encoder); cheap encoders (vectors, tabular, raw pixels) cost
  only the rows;
- per Optuna study (one per dataset and strategy variant under shared tuning, one per training
  dropout rate under per_rate, one per fold under k-fold; the Plan's studies):
  its trial slots x (TRIAL_S + TRIAL_EPOCHS epochs of training), most trials being pruned after 2 or 6 epochs;
- per cell: CELL_EPOCHS epochs at CELL_S_PER_ROW_EPOCH, which holds the tuned retrain, the default
  retrain where tuning chose other hyperparameters, the validation passes, the batched evaluation,
  throughput timing and MLflow logging.
Training costs are per training row and epoch, by input kind (pooled vectors or token sequences),
with the rows taken from the card's `size` note where it states them.

Calibration: the `default` profile run to the end on the 2-core CPU machine (2026-12-05, commit
6464cc5, 2 workers of one torch thread each, 621 cells, 690 trials; `fusebench perf fidelity`'s
docs/performance.md has the run): cells took 0.062-0.105 ms (pooled) and 0.47-0.71 ms (tokens, at most
16 tokens per modality) per training row and epoch, 19 epochs (pooled) and 18-43 epochs (tokens) on
average; trials ran 8.7 epochs on average, and tuning took about 1,500 of the 5,800 worker-seconds.
One worker uses every core for its torch threads, which measured 1.34x one thread on 2 cores;
N workers on N cores run one thread each. GPU_SPEEDUP is a guess, not a measurement.

Fine-tuned cells (the ``finetune`` axis, benchmark/features/finetune.py) add the trained encoder
parts' forward and backward pass per training row and epoch (FINETUNE_S_PER_ROW_EPOCH: one CPU thread,
the fastest of repeated batches on the shared 2-core machine, 2026-12; docs/performance.md, "Fine-tuning
on CPU"), times TRIAL_PASSES for a trial (its validation passes) and CELL_PASSES for a cell (the default
retrain, validation and evaluation); on a GPU that part is divided by FINETUNE_GPU_SPEEDUP, a guess (the
encoders are compute-bound where the frozen models are overhead-bound). Each fine-tuned mode of a
dataset also encodes its fine-tunable modalities once more (``last_block``: the frozen blocks below the
trained one, as dear as the frozen encoding; ``full``: decoding only).
"""

from __future__ import annotations

import os
import re

from benchmark.vocabulary import FINETUNE_FROZEN, FINETUNE_FULL, FINETUNE_LAST_BLOCK, finetune_of
from strategies import get_strategy

GPU_SPEEDUP = 8.0  # applies to training only; the overheads stay
TRAIN_ROWS_GUESS = 2000  # a card that states no size
TRAIN_SHARE_GUESS = 0.7  # share of the rows in the training split when the card does not say
ONE_WORKER_THREAD_SPEEDUP = 1.34  # one worker's torch threads on 2 cores against one thread (measured)

FIXED_S = 30.0  # measured: data 5.8 s, report 13.8 s, start-up and imports about 10 s
ENCODER_LOAD_S = 7.0  # per pretrained encoder and dataset (measured: 16.5 s for 2 encoders on 60 rows)
ENCODE_S_PER_ROW = {"image": 0.03, "text": 0.005, "other": 0.0002}  # DESIGN.md: EfficientNet-Lite0 20-35 ms/image
TRIAL_S = 0.5  # per trial: model build, Optuna and its storage
TRIAL_EPOCHS = 8.7  # mean epochs a trial trains (successive halving prunes most after 2 or 6)
TRIAL_S_PER_ROW_EPOCH = {"pooled": 0.05e-3, "tokens": 0.4e-3}  # one training's epoch, one thread
CELL_EPOCHS = {"pooled": 19.0, "tokens": 26.0}  # mean epochs of a cell's runs (early stopping)
CELL_S_PER_ROW_EPOCH = {"pooled": 0.077e-3, "tokens": 0.6e-3}  # everything a cell does, per row and epoch
# Forward + backward of the trained encoder parts per training row, one CPU thread (measured: last_block
# EfficientNet-Lite0 15.1 ms + MiniLM 3.6 ms at 12 tokens; full 198.0 + 15.6 ms).
FINETUNE_S_PER_ROW_EPOCH = {FINETUNE_FROZEN: 0.0, FINETUNE_LAST_BLOCK: 0.0187, FINETUNE_FULL: 0.2136}
TRIAL_PASSES, CELL_PASSES = 1.2, 1.8
FINETUNE_GPU_SPEEDUP = 100.0  # a guess, not a measurement: no GPU was lent when this was written
FINETUNE_ENCODE_S_PER_ROW = {FINETUNE_LAST_BLOCK: ENCODE_S_PER_ROW, FINETUNE_FULL: {"image": 0.002, "text": 0.0002}}
_FINETUNABLE = re.compile(r"efficientnet_lite0$|minilm$|hf-text:")  # benchmark/features/finetune.py, FINETUNABLE
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


def estimate_parts(plan) -> dict[str, float]:
    """Seconds per part (fixed, encoding, tuning, cells) of one worker with one torch thread on an idle
    machine, for the matrix of ``plan`` (benchmark/run/plan.py; its cards give the rows and encoders)."""
    config, cells, cards = plan.config, plan.cells, plan.cards
    speedup = GPU_SPEEDUP if config.device.startswith("cuda") else 1.0
    rows = {name: card_rows(card) for name, card in cards.items()}
    train_rows = {name: (rows[name] * _train_share(cards[name]) if rows.get(name) else TRAIN_ROWS_GUESS)
                  for name in cards}
    epoch_ratio = min(1.0, config.epochs / 60.0)  # a lower cap than the calibrated profile's 60 cuts epochs

    def kind(cell) -> str:
        return "tokens" if get_strategy(cell.strategy).consumes_tokens else "pooled"

    def rows_of(cell) -> float:
        return train_rows.get(cell.dataset, TRAIN_ROWS_GUESS)

    def encoder_s(cell) -> float:
        """The trained encoder parts' seconds per row and epoch (0 for a frozen cell)."""
        seconds = FINETUNE_S_PER_ROW_EPOCH[finetune_of(cell.fixed_hparams)]
        return seconds / (FINETUNE_GPU_SPEEDUP if config.device.startswith("cuda") else 1.0)

    encoding = 0.0
    for dataset in sorted({c.dataset for c in cells}):
        card = cards.get(dataset)
        modalities = getattr(card, "modalities", ()) if card is not None else ()
        n = rows.get(dataset) or int(TRAIN_ROWS_GUESS / TRAIN_SHARE_GUESS)
        for spec in modalities:
            encoder = str(getattr(spec, "encoder", ""))
            load = ENCODER_LOAD_S if _pretrained(encoder) else 0.0
            encoding += load + n * ENCODE_S_PER_ROW[_encoder_kind(encoder)]
        for mode in sorted({finetune_of(c.fixed_hparams) for c in cells if c.dataset == dataset} - {FINETUNE_FROZEN}):
            tunable = [e for e in (str(getattr(spec, "encoder", "")) for spec in modalities) if _FINETUNABLE.match(e)]
            encoding += sum(n * FINETUNE_ENCODE_S_PER_ROW[mode][_encoder_kind(e)] for e in tunable)
    tuning = sum(plan.trial_slots_per_study * (TRIAL_S + min(TRIAL_EPOCHS, config.epochs) * rows_of(s.tuning_cell)
                                               * (TRIAL_S_PER_ROW_EPOCH[kind(s.tuning_cell)] / speedup
                                                  + TRIAL_PASSES * encoder_s(s.tuning_cell)))
                 for s in plan.studies)
    final = sum(CELL_EPOCHS[kind(c)] * epoch_ratio * rows_of(c)
                * (CELL_S_PER_ROW_EPOCH[kind(c)] / speedup + CELL_PASSES * encoder_s(c)) for c in cells)
    return {"fixed": FIXED_S, "encoding": encoding, "tuning": tuning, "cells": final}


def estimate_seconds(plan, workers: int = 1) -> float:
    """Estimated wall seconds of `fusebench bench` for the matrix of ``plan`` (features not cached yet)."""
    parts = estimate_parts(plan)
    cores = os.cpu_count() or 1
    parallel = min(workers, cores) if workers > 1 else min(ONE_WORKER_THREAD_SPEEDUP, float(cores))
    spread = parts["tuning"] + parts["cells"]  # what several workers share; encoding is once per dataset
    return parts["fixed"] + parts["encoding"] + spread / parallel
