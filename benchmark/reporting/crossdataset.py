"""The cross-dataset verdict: which strategy ranks best over all the matrix's datasets.

One score per (strategy variant, dataset): the mean of the dataset's ranking metric over every seed
and training dropout rate (no choice made on test data). Strategies are ranked within each dataset in
the metric's direction (ties share the average rank), so datasets with different metrics combine.
Then the Friedman test with Iman-Davenport's F, the Nemenyi critical difference and pairwise Wilcoxon
signed-rank tests with Holm's correction (Demsar 2006; Benavoli, Corani and Mangili 2016)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmark.reporting.analysis import UNIMODAL, DatasetAnalysis, mark_text, metric_label
from benchmark.reporting.numbers import p_value
from benchmark.reporting.stats import (Friedman, friedman, holm, nemenyi_cd, smallest_wilcoxon_p,
                                       wilcoxon_p)

ALPHA = 0.05


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


# ------------------------------------------------------------------ report section
def verdict_items(x: CrossDataset, figure: str | None, table: str | None) -> list[str]:
    """The cross-dataset claims, in words, for the report's opening section."""
    cite = ", ".join(c for c in (table, figure) if c)
    cite = f" ({cite})" if cite else ""
    if x.n < 2:
        return [f"**Across datasets:** no cross-dataset verdict: the matrix has {x.n} dataset(s) with finished runs, "
                "and ranks over datasets need at least two."]
    if len(x.variants) < 2:
        return [f"**Across datasets:** no verdict: {len(x.variants)} fused strategy finished on every dataset."]
    ranks = x.mean_ranks
    best = ranks.index[0]
    tied = [v for v in ranks.index if ranks[v] == ranks[best]]
    lead = " and ".join(f"`{v}`" for v in tied)
    text = (f"**Across datasets:** best average rank {ranks[best]:.2f} of {len(x.variants)} strategies: {lead}, "
            f"ranked on each dataset's own ranking metric (mean over seeds and training dropout rates) over "
            f"N = {x.n} datasets{cite}.")
    f = x.friedman
    if f is None or f.note:
        text += f" Friedman test: {f.note if f else 'not run'}."
    else:
        rejected = f.p < ALPHA
        text += (f" Friedman χ²({f.k - 1}) = {f.chi2:.2f}, p = {p_value(f.p)}; Iman-Davenport F({f.k - 1}, "
                 f"{(f.k - 1) * (f.n - 1)}) = {f.iman_davenport:.2f}, p = {p_value(f.p_iman_davenport)}: the strategies' "
                 + ("ranks differ significantly" if rejected else "ranks do not differ significantly")
                 + f" at {ALPHA} (Friedman).")
        within = [v for v in x.variants if ranks[v] - ranks[best] < x.cd]
        text += (f" Nemenyi critical difference CD = {x.cd:.2f} ranks (the largest possible gap is "
                 f"{len(x.variants) - 1}): {len(within)} of {len(x.variants)} strategies are within CD of the best"
                 + ("" if rejected else ", and without a significant Friedman test the post-hoc test is not "
                    "interpreted") + ".")
    valid = [p for p in x.pairs if p.p_holm == p.p_holm]
    significant = [p for p in valid if p.p_holm < ALPHA]
    smallest = smallest_wilcoxon_p(x.n)
    if valid:
        low = min(valid, key=lambda p: p.p_holm)
        text += (f" Pairwise Wilcoxon signed-rank tests over datasets, Holm-corrected for {len(valid)} comparisons: "
                 f"{len(significant)} significant at {ALPHA}; the smallest adjusted p is {p_value(low.p_holm)} "
                 f"(`{low.a}` vs `{low.b}`, raw p {p_value(low.p)}).")
    items = [text]
    if x.n < 6:
        items.append(f"**Power:** with only N = {x.n} datasets these tests have very little power: the smallest "
                     f"two-sided Wilcoxon p-value N = {x.n} pairs can give is {smallest:.3f}"
                     + (" (no pair can reach 0.05 even before correction)" if smallest >= ALPHA else "")
                     + f", and the critical difference ({x.cd:.2f} ranks) is wide. Read the average ranks as a "
                     "description of these datasets, not as evidence that holds on others; Demsar (2006) suggests "
                     "at least 10 datasets.")
    if x.marked:
        names = "; ".join(f"`{v}` on {', '.join(where)}" for v, where in x.marked.items())
        items.append(f"**Marked configurations stay in the ranks:** {names}. Their scores are averaged like the "
                     "others (leaving them out would reward a strategy for failing); see each dataset's marks.")
    return items


def write_section(doc, analyses: list[DatasetAnalysis], folder: Path, into: list) -> CrossDataset:
    """The "Across datasets" part of the opening section: the verdict, the ranks table and the
    critical-difference diagram (written into `into`, the opening section's blocks)."""
    from benchmark.reporting.cd_diagram import cd_diagram

    x = cross_dataset(analyses)
    if len(analyses) < 2:  # a one-dataset matrix: nothing across datasets to rank
        doc.para(verdict_items(x, None, None)[0], into=into)
        return x
    doc.heading("Across datasets", 3, into=into)
    table = figure = None
    if x.n >= 2 and len(x.variants) >= 2:
        ranks = x.mean_ranks
        header = ["strategy", "average rank"] + [f"`{d}` ({metric_label(x.metrics[d])}"
                                                 + ("" if x.higher[d] else ", lower is better") + ")"
                                                 for d in x.datasets]
        rows = [[f"`{v}`" + (" [marked]" if v in x.marked else ""), f"{ranks[v]:.2f}"]
                + [f"{x.scores.loc[d, v]:.3f} (rank {x.ranks.loc[d, v]:g})" for d in x.datasets]
                for v in x.variants]
        table = doc.table(
            "Average rank of each fused strategy over the datasets (1 = best): per dataset, the mean of its ranking "
            "metric over every seed and training dropout rate (no per-strategy choice of dropout, so no selection on "
            "test data), ranked within the dataset in the metric's direction; ties share the average rank.",
            header, rows, "lr" + "r" * len(x.datasets), label="Table A", into=into)
        png = cd_diagram(x.variants, [float(ranks[v]) for v in x.variants], x.cd, x.n,
                         folder / "cross_dataset_cd.png",
                         title=f"Critical-difference diagram over {x.n} datasets (Friedman / Nemenyi)")
        figure = doc.figure(
            f"Critical-difference diagram (Demsar 2006): average rank over the {x.n} datasets (1 = best, left); "
            f"thick bars join strategies whose average ranks differ by less than the Nemenyi critical difference "
            f"(CD = {x.cd:.2f}, alpha 0.05), i.e. not significantly different.", png, label="Figure A", into=into)
    doc.bullets(verdict_items(x, figure, table), into=into)
    notes = [f"`{v}`: {why}" for v, why in x.left_out.items()]
    notes += [f"`{v}`: finished at only some training dropout rates on {', '.join(f'`{d}`' for d in where)}; its "
              "score there is the mean over the rates it has" for v, where in x.partial.items()]
    if notes:
        doc.para("Left out of the cross-dataset ranks, or compared with a caveat: " + "; ".join(notes) + ".",
                 into=into)
    return x
