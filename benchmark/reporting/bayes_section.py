"""The Bayesian comparisons with `concat` as tables (the numbers from reporting/bayesian.py, the
sentences from reporting/summary.py): one in "Across datasets" (Table B), and one per dataset next
to its paired t-tests, labelled after the significance table ("Table 2b") so that adding it leaves
every other table's number unchanged."""

from __future__ import annotations

from benchmark.reporting.analysis import BASELINE, metric_label
from benchmark.reporting.bayesian import BayesComparison, BayesComparisons, NoComparison, RopeBasis, Unit
from benchmark.reporting.document import Document
from benchmark.reporting.numbers import num, signed
from benchmark.reporting.section_context import SectionContext
from benchmark.reporting.summary import bayes_none, bayes_reading, bayes_unit, rope_text

PROBABILITIES = ["P(worse)", "P(equivalent)", "P(better)"]
SAMPLING = ("Bayesian signed-rank test (Benavoli et al. 2014, baycomp's model: prior weight 0.5 at a difference "
            "of 0, {nsamples:,} posterior samples from seed {seed}); each probability is the share of posterior "
            "samples in which that outcome is the most probable.")


def _cells(c: BayesComparison) -> list[str]:
    if c.why_none is NoComparison.NO_BASELINE:
        return [f"no `{BASELINE}` run at this dropout"] + ["n/a"] * 2
    if c.why_none is not None:
        return [f"n = {c.n}: too few pairs"] + ["n/a"] * 2
    return [num(c.p_worse), num(c.p_equivalent), num(c.p_better)]


def write_bayes_across(doc: Document, v: BayesComparisons | None, marked: dict, into: list) -> None:
    """The cross-dataset table (Table B) with its reading guide, or why there is none."""
    if v is None:
        return
    if v.why_none is not None or not v.comparisons:
        doc.para(bayes_none(v), into=into)
        return
    doc.para(bayes_reading(v), into=into)
    points = all(r.basis is RopeBasis.POINT for r in v.ropes)
    ropes = ("0.01 of every dataset's ranking metric (1 point)" if points
             else "; ".join(f"`{r.dataset}`: {rope_text(r)}" for r in v.ropes))
    rows = [[f"`{c.variant}`" + (" [marked]" if c.variant in marked else ""), str(c.n), signed(c.mean_diff, 2)]
            + _cells(c) for c in v.comparisons]
    doc.table(
        f"Each fused strategy against `{BASELINE}` over the {v.n} datasets: " + SAMPLING.format(
            nsamples=v.nsamples, seed=v.seed)
        + " One paired value per dataset: the strategy's Table A score minus `concat`'s, positive = better, "
        f"divided by the dataset's region of practical equivalence (ROPE: {ropes}), so the ROPE is 1 and the "
        "mean Δ is in ROPEs (points); n counts datasets. The seeds within each dataset enter only through its "
        "mean: baycomp's hierarchical test, which would model them, is not used because its sampler cannot be "
        "seeded (the report would not rebuild identically) and needs pystan.",
        ["strategy", "n (datasets)", f"mean Δ vs `{BASELINE}` (ROPEs)"] + PROBABILITIES, rows, "lrr" + "rrr",
        label="Table B", into=into)


def write_bayes_dataset(section: SectionContext) -> None:
    """The dataset's table, after its significance table (labelled "<that label>b"), or why there is none."""
    v, doc, a = section.bayes, section.doc, section.a
    if v is None:
        return
    if v.why_none is not None:
        doc.para(bayes_none(v))
        return
    rope = v.ropes[0]
    score = f"test {metric_label(a.ranking)}"
    folds = v.unit is Unit.FOLDS
    rows = [[c.variant, f"{c.dropout}", str(c.n), signed(c.mean_diff)] + _cells(c) for c in v.comparisons]
    ranked = a.ranked
    header, rows, align = section.marks(  # the comparisons are the ranked rows less concat, in that order
        ["strategy", "train dropout", f"n ({'folds' if folds else 'seeds'})", f"mean Δ vs {BASELINE}"]
        + PROBABILITIES, "lrrr" + "rrr", rows, ranked[ranked["variant"] != BASELINE])
    after = section.cite.get("significance")
    label = f"{after}b" if after else None
    section.cite["bayes"] = doc.table(
        f"`{a.name}`: each configuration against `{BASELINE}` at the same training dropout on {score}, "
        + SAMPLING.format(nsamples=v.nsamples, seed=v.seed)
        + f" ROPE: {rope_text(rope)}; mean Δ = strategy − `{BASELINE}`"
        + ("" if a.higher_is_better else f" turned so that positive is better ({a.direction})")
        + f"; n counts {bayes_unit(v)}. "
        + ("Under k-fold the seeds of one fold share its test rows, so they are averaged within the fold and the "
           "test runs over the folds. " if folds else "")
        + "These probabilities count " + ("fold-to-fold" if folds else "seed-to-seed")
        + " variation only, not the sampling of the test rows, and with few "
        + ("folds" if folds else "seeds") + " the prior still weighs.",
        header, rows, align, label=label)
