"""The cross-dataset verdict: which strategy ranks best over all the matrix's datasets.

One score per (strategy variant, dataset): the mean of the dataset's ranking metric over every seed
and training dropout rate (no choice made on test data). Strategies are ranked within each dataset in
the metric's direction (ties share the average rank), so datasets with different metrics combine.
Then the Friedman test with Iman-Davenport's F, the Nemenyi critical difference and pairwise Wilcoxon
signed-rank tests with Holm's correction (Demsar 2006; Benavoli, Corani and Mangili 2016). The verdict
drawn from them is in reporting/verdicts.py, its words in reporting/summary.py, the section in
reporting/cross_section.py."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from benchmark.reporting.analysis import UNIMODAL, DatasetAnalysis, mark_text
from benchmark.reporting.stats import Friedman, friedman, holm, nemenyi_cd, wilcoxon_p


@dataclass
class PairTest:
    a: str
    b: str
    p: float  # two-sided Wilcoxon signed-rank over datasets
    p_holm: float = float("nan")


@dataclass
class CrossDataset:
    datasets: list[str]
    variants: list[str]  # compared: finished on every dataset, not unimodal; best average rank first
    scores: pd.DataFrame  # dataset x variant: mean ranking metric over seeds and dropout rates
    ranks: pd.DataFrame  # dataset x variant: rank within the dataset (1 = best)
    metrics: dict[str, str]  # dataset -> ranking metric key
    higher: dict[str, bool]  # dataset -> higher is better
    left_out: dict[str, str] = field(default_factory=dict)  # variant -> why it is not compared
    marked: dict[str, list[str]] = field(default_factory=dict)  # variant -> "dataset (dropout d: mark)"
    partial: dict[str, list[str]] = field(default_factory=dict)  # variant -> datasets where a dropout is missing
    friedman: Friedman | None = None
    cd: float = float("nan")
    pairs: list[PairTest] = field(default_factory=list)

    @property
    def mean_ranks(self) -> pd.Series:
        return self.ranks.mean(axis=0).reindex(self.variants)

    @property
    def n(self) -> int:
        return len(self.datasets)


def cross_dataset(analyses: list[DatasetAnalysis]) -> CrossDataset:
    """The scores, ranks and tests over the datasets that have finished runs."""
    usable = [a for a in analyses if not a.configs.empty and (a.configs["n"] > 0).any()]
    per_dataset: dict[str, dict[str, float]] = {}
    families: dict[str, str] = {}
    marked: dict[str, list[str]] = {}
    partial: dict[str, list[str]] = {}
    for a in usable:
        done = a.configs[(a.configs["n"] > 0) & a.configs[a.score].notna()]
        dropouts = set(done["dropout"])
        per_dataset[a.name] = {}
        for variant, group in done.groupby("variant"):
            families[variant] = str(group["family"].iloc[0])
            per_dataset[a.name][variant] = float(group[a.score].mean())  # equal weight per dropout rate
            if set(group["dropout"]) != dropouts:
                partial.setdefault(variant, []).append(a.name)
            for _, row in group[group["marked"]].iterrows():
                marked.setdefault(variant, []).append(f"{a.name} (dropout {row['dropout']}: {mark_text(row)})")
    names = [a.name for a in usable]
    every = set.intersection(*(set(v) for v in per_dataset.values())) if per_dataset else set()
    left_out = {}
    for variant in sorted(set(families)):
        if families[variant] == UNIMODAL:
            left_out[variant] = "unimodal baseline: its modality differs from dataset to dataset"
        elif variant not in every:
            missing = [d for d in names if variant not in per_dataset[d]]
            left_out[variant] = f"no finished run on {', '.join(f'`{d}`' for d in missing)}"
    compared = sorted(v for v in every if families[v] != UNIMODAL)
    scores = pd.DataFrame({v: [per_dataset[d][v] for d in names] for v in compared}, index=names, dtype=float)
    higher = {a.name: a.higher_is_better for a in usable}
    result = CrossDataset(names, compared, scores, pd.DataFrame(index=names, columns=compared, dtype=float),
                          {a.name: a.ranking for a in usable}, higher, left_out,
                          {v: marked[v] for v in compared if v in marked},
                          {v: partial[v] for v in compared if v in partial})
    if not compared or not names:
        return result
    table = scores.values.tolist()
    test = friedman(table, [higher[d] for d in names])
    from benchmark.reporting.stats import average_ranks

    result.ranks = pd.DataFrame(average_ranks(table, [higher[d] for d in names]), index=names, columns=compared)
    order = result.ranks.mean(axis=0).sort_values(kind="stable")
    result.variants = list(order.index)
    result.scores, result.ranks = scores[result.variants], result.ranks[result.variants]  # best first
    result.friedman = test
    result.cd = nemenyi_cd(len(compared), len(names)) if len(names) >= 2 else float("nan")
    pairs = []
    for i, a in enumerate(result.variants):
        for b in result.variants[i + 1:]:
            pairs.append(PairTest(a, b, wilcoxon_p(scores[a].where(pd.Series(higher), -scores[a]).tolist(),
                                                   scores[b].where(pd.Series(higher), -scores[b]).tolist())))
    for pair, adjusted in zip(pairs, holm([p.p for p in pairs])):
        pair.p_holm = adjusted
    result.pairs = pairs
    return result
