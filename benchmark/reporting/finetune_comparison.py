"""The report's "fine-tuning" table: each strategy with frozen pretrained encoders (variant ``X``) next
to the same strategy with fine-tuned ones (``X@last_block``, ``X@full``; the matrix axis ``finetune``)
at the same training dropout: the mean score of each, the difference fine-tuned − frozen with a
two-sided paired t-test over matched replicates (seeds, or (fold, seed) pairs), the same for
robustness, and what fine-tuning costs: the ratios fine-tuned / frozen of the wall time per cell,
of the training throughput and of the memory measure the dataset reports. Matrices without
fine-tuned variants get no table."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from benchmark.reporting.analysis import MEMORY_METRICS, DatasetAnalysis, mark_text, metric_spec
from benchmark.reporting.missing_technique import _delta, _p, _p_holm
from benchmark.reporting.numbers import num
from benchmark.reporting.replicates import replicate_keys
from benchmark.reporting.section_context import SectionContext
from benchmark.reporting.stats import PairedTest, holm_tests, paired_ttest
from benchmark.vocabulary import FINETUNE_FROZEN, FINETUNE_MODES, finetune_suffix

COST_COLUMNS = (("wall_seconds", "wall time"), ("train_samples_per_s", "training samples/s"))


@dataclass
class FinetunePair:
    frozen_variant: str  # e.g. "concat" (or "concat@learned")
    mode: str  # "last_block" or "full"
    dropout: str  # the training-dropout label
    frozen: pd.Series  # its configs row
    tuned: pd.Series  # the fine-tuned variant's configs row
    score: PairedTest  # fine-tuned − frozen on the ranking metric, paired by replicate
    robustness: PairedTest  # fine-tuned − frozen on robustness
    cost: dict[str, float]  # run column -> mean fine-tuned / mean frozen


def _values(runs: pd.DataFrame, variant: str, dropout: str, column: str) -> pd.Series:
    """One value per replicate of ``variant`` at ``dropout`` (the mean where a cell was logged twice)."""
    here = runs[(runs["variant"] == variant) & (runs["dropout"] == dropout)]
    return here.groupby(replicate_keys(runs), dropna=False)[column].mean()


def _paired(runs: pd.DataFrame, frozen: str, tuned: str, dropout: str, column: str) -> PairedTest:
    if column not in runs:
        return paired_ttest([], [])
    a, b = _values(runs, tuned, dropout, column), _values(runs, frozen, dropout, column)
    common = [k for k in a.index if k in set(b.index)]
    return paired_ttest([a[k] for k in common], [b[k] for k in common])


def _ratio(runs: pd.DataFrame, frozen: str, tuned: str, dropout: str, column: str) -> float:
    """Mean of ``column`` over the fine-tuned runs / its mean over the frozen ones (nan when unlogged)."""
    if column not in runs:
        return float("nan")
    top, bottom = _values(runs, tuned, dropout, column).mean(), _values(runs, frozen, dropout, column).mean()
    return float(top / bottom) if bottom == bottom and bottom > 0 else float("nan")


def frozen_variant(variant: str) -> tuple[str, str] | None:
    """(frozen partner, mode) of a fine-tuned variant ("concat@last_block@learned" -> ("concat@learned",
    "last_block")), or None for a frozen one."""
    for mode in FINETUNE_MODES:
        suffix = finetune_suffix(mode)
        if mode != FINETUNE_FROZEN and (variant.endswith(suffix) or suffix + "@" in variant):
            return variant.replace(suffix, "", 1), mode
    return None


def finetune_pairs(a: DatasetAnalysis) -> list[FinetunePair]:
    """Every (X, X@mode) pair with finished runs on both sides, at the same training dropout."""
    if a.configs.empty:
        return []
    done = a.configs[a.configs["n"] > 0]
    by_key = {(r["variant"], r["dropout"]): r for _, r in done.iterrows()}
    score_column = metric_spec(a.ranking)[0]
    memory = [a.memory_key] if a.memory_key else []
    pairs = []
    for (variant, dropout), tuned in sorted(by_key.items()):
        partner = frozen_variant(variant)
        if partner is None or (partner[0], dropout) not in by_key:
            continue
        frozen, mode = partner
        cost = {column: _ratio(a.runs, frozen, variant, dropout, column)
                for column in [c for c, _ in COST_COLUMNS] + memory}
        pairs.append(FinetunePair(frozen, mode, dropout, by_key[frozen, dropout], tuned,
                                  _paired(a.runs, frozen, variant, dropout, score_column),
                                  _paired(a.runs, frozen, variant, dropout, "robustness"), cost))
    holm_tests({k: pair.score for k, pair in enumerate(pairs)})  # Holm over the table, per measure
    holm_tests({k: pair.robustness for k, pair in enumerate(pairs)})
    return pairs


def _times(value: float) -> str:
    return "n/a" if value != value else f"{value:.2f}x"


def finetune_table(a: DatasetAnalysis) -> tuple[str, list[str], list[list[str]], str] | None:
    """(caption, header, rows, align) of the dataset's fine-tuning table, or None when the matrix
    trained no fine-tuned variant that has a frozen partner."""
    pairs = finetune_pairs(a)
    if not pairs:
        return None
    memory_label = MEMORY_METRICS[a.memory_key].title if a.memory_key else None
    rows = []
    for pair in pairs:
        marks = "; ".join(f"{which}: {text}" for which, row in (("frozen", pair.frozen), (pair.mode, pair.tuned))
                          if (text := mark_text(row)))
        cost = [_times(pair.cost.get(c, float("nan"))) for c, _ in COST_COLUMNS]
        cost += [_times(pair.cost.get(a.memory_key, float("nan")))] if memory_label else []
        rows.append([f"`{pair.frozen_variant}`", pair.mode, pair.dropout, num(pair.frozen[a.score]),
                     num(pair.tuned[a.score]), _delta(pair.score), _p(pair.score), _p_holm(pair.score),
                     _delta(pair.robustness), _p(pair.robustness), *cost, str(pair.score.n), marks])
    replicates = "(fold, seed) pairs" if replicate_keys(a.runs) != ["seed"] else "seeds"
    caption = (f"`{a.name}`: fine-tuning the pretrained encoders. Each strategy with frozen encoders (cached "
               f"features, variant `X`) and with fine-tuned ones (`X@last_block`: the last block of each encoder "
               f"trains, on cached activations of the frozen blocks below; `X@full`: the whole encoder trains on "
               f"raw inputs), at the same training dropout. Mean {a.score_label} with all modalities present, "
               f"Δ = fine-tuned − frozen with its 95% CI and a two-sided paired t-test over matched {replicates} (n), "
               f"the same for robustness"
               + (f"; {a.direction}, so a negative Δ score is an improvement" if not a.higher_is_better else "")
               + ". p (Holm): Holm's step-down adjustment over the table's comparisons. Cost: fine-tuned / frozen "
               "means of the wall time per cell, of the training throughput (samples/s; below 1x is slower)"
               + (f" and of the {memory_label}" if memory_label else "") + ".")
    header = ["strategy", "fine-tuning", "train dropout", f"frozen {a.score_label}", f"fine-tuned {a.score_label}",
              "Δ score [95% CI]", "p (score)", "p (score, Holm)", "Δ robustness [95% CI]", "p (robustness)",
              *[f"{label} ratio" for _, label in COST_COLUMNS], *([f"{memory_label} ratio"] if memory_label else []),
              "n", "mark"]
    align = "lll" + "rrlrr" + "lr" + "r" * (len(COST_COLUMNS) + (1 if memory_label else 0)) + "rl"
    return caption, header, rows, align


def write_finetune(section: SectionContext) -> None:
    """Frozen against fine-tuned encoders (only when the matrix trained both)."""
    table = finetune_table(section.a)
    if table is not None:
        section.doc.heading("Fine-tuning: frozen vs fine-tuned encoders", 3)
        section.cite["finetune"] = section.doc.table(*table)
