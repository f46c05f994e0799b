"""The report's "missing-input technique" table: each fusion strategy trained with zero-filling
(variant ``X``) next to the same strategy with a learned missing-modality embedding (``X@learned``)
at the same training dropout: mean score and robustness of each, and the difference learned − zero
with a two-sided paired t-test over matched replicates (seeds, or (fold, seed) pairs with k-fold).
Matrices without ``@learned`` variants get no table."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from benchmark.reporting.analysis import DatasetAnalysis, mark_text, metric_spec
from benchmark.reporting.numbers import num, p_value
from benchmark.reporting.replicates import replicate_keys
from benchmark.reporting.stats import PairedTest, holm_tests, paired_ttest
from benchmark.vocabulary import LEARNED_SUFFIX


@dataclass
class TechniquePair:
    strategy: str  # the zero-filling variant, e.g. "concat"
    dropout: str  # the training-dropout label
    zero: pd.Series  # its configs row
    learned: pd.Series  # the "@learned" configs row
    score: PairedTest  # learned − zero on the ranking metric, paired by replicate
    robustness: PairedTest  # learned − zero on robustness


def _paired(runs: pd.DataFrame, zero: str, learned: str, dropout: str, column: str) -> PairedTest:
    """learned − zero on ``column``, one value per replicate (mean if a cell was logged twice)."""
    if column not in runs:
        return paired_ttest([], [])
    keys = replicate_keys(runs)
    here = runs[runs["dropout"] == dropout]

    def values(variant: str) -> pd.Series:
        rows = here[here["variant"] == variant]
        return rows.groupby(keys, dropna=False)[column].mean()

    a, b = values(learned), values(zero)
    common = [k for k in a.index if k in set(b.index)]
    return paired_ttest([a[k] for k in common], [b[k] for k in common])


def technique_pairs(a: DatasetAnalysis) -> list[TechniquePair]:
    """Every (X, X@learned) pair with finished runs on both sides, at the same training dropout."""
    configs = a.configs
    if configs.empty:
        return []
    done = configs[configs["n"] > 0]
    by_key = {(r["variant"], r["dropout"]): r for _, r in done.iterrows()}
    score_column = metric_spec(a.ranking)[0]
    pairs = []
    for (variant, dropout), learned in sorted(by_key.items()):
        if not variant.endswith(LEARNED_SUFFIX):
            continue
        zero_variant = variant[: -len(LEARNED_SUFFIX)]
        zero = by_key.get((zero_variant, dropout))
        if zero is None:
            continue
        pairs.append(TechniquePair(
            zero_variant, dropout, zero, learned,
            _paired(a.runs, zero_variant, variant, dropout, score_column),
            _paired(a.runs, zero_variant, variant, dropout, "robustness")))
    # Holm over the dataset's comparisons, one family per measure (score, robustness)
    holm_tests({k: pair.score for k, pair in enumerate(pairs)})
    holm_tests({k: pair.robustness for k, pair in enumerate(pairs)})
    return pairs


def _delta(test: PairedTest) -> str:
    if test.n == 0:
        return "n/a"
    if test.note or test.ci_half != test.ci_half:
        return f"{test.mean_diff:+.3f}"
    return f"{test.mean_diff:+.3f} [{test.mean_diff - test.ci_half:+.3f}, {test.mean_diff + test.ci_half:+.3f}]"


def _p(test: PairedTest) -> str:
    return test.note or p_value(test.p)


def _p_holm(test: PairedTest) -> str:
    return "n/a" if test.note else p_value(test.p_holm)


def technique_table(a: DatasetAnalysis) -> tuple[str, list[str], list[list[str]], str] | None:
    """(caption, header, rows, align) of the dataset's missing-input technique table, or None when
    the matrix trained no ``@learned`` variant that has a zero-filling partner."""
    pairs = technique_pairs(a)
    if not pairs:
        return None
    rows = []
    for pair in pairs:
        marks = "; ".join(f"{which}: {text}" for which, row in (("zero", pair.zero), ("learned", pair.learned))
                          if (text := mark_text(row)))
        rows.append([f"`{pair.strategy}`", f"{pair.dropout}", num(pair.zero[a.score]), num(pair.learned[a.score]),
                     _delta(pair.score), _p(pair.score), _p_holm(pair.score), num(pair.zero["robustness"]),
                     num(pair.learned["robustness"]), _delta(pair.robustness), _p(pair.robustness),
                     _p_holm(pair.robustness),
                     str(pair.score.n), marks])
    replicates = "(fold, seed) pairs" if replicate_keys(a.runs) != ["seed"] else "seeds"
    caption = (f"`{a.name}`: missing-input technique. Each fusion strategy trained with zero-filling and a presence "
               f"mask (zero, variant `X`) and with a learned missing-modality embedding (learned, variant "
               f"`X{LEARNED_SUFFIX}`: a trained vector per modality stands in for an absent one), at the same "
               f"training dropout. Mean {a.score_label} with all modalities present, robustness, and Δ = learned − "
               f"zero with its 95% CI and a two-sided paired t-test over matched {replicates} (n)"
               + (f"; {a.direction}, so a negative Δ score is an improvement" if not a.higher_is_better else "")
               + ". p (Holm): Holm's step-down adjustment over the table's comparisons, separately for score and "
               "robustness.")
    header = ["strategy", "train dropout", f"zero {a.score_label}", f"learned {a.score_label}", "Δ score [95% CI]",
              "p (score)", "p (score, Holm)", "zero robustness", "learned robustness", "Δ robustness [95% CI]",
              "p (robustness)", "p (robustness, Holm)", "n", "mark"]
    return caption, header, rows, "llrrlrrrrlrrrl"
