"""The verdicts in words: each claim of the "Which strategy to use" section, one sentence (or a
few) per verdict object of reporting/verdicts.py, citing the table or figure it rests on. The
numbers come from the verdicts; this module only writes them."""

from __future__ import annotations

from benchmark.reporting.analysis import BASELINE, REFERENCE_NAMES, metric_label
from benchmark.reporting.bayesian import MIN_PAIRS, BayesComparisons, NoComparison, Rope, RopeBasis, Unit
from benchmark.reporting.cells import config_name, estimate_text
from benchmark.reporting.numbers import count, num, p_value, signed
from benchmark.reporting.verdicts import (ALPHA, BestOverall, CalibrationDrift, Config, Criterion, CrossDatasetVerdict, CrossStatus,
                                          DatasetVerdicts, Estimate, FusionGain, GainStatus, MarkCounts, NoPick,
                                          OneModality, Reference, Scoring, Trust, TuningGain, TuningStatus, Versus,
                                          WhenMissing, WithinBudget)
from benchmark.reporting.uncertainty import Basis, Comparison, counted, interval_text, lead_text, p_text
from benchmark.vocabulary import DEFAULT_TASK


# ------------------------------------------------------------------ small words
def name(c: Config) -> str:
    """"`fancy` (train dropout 0.3) [collapsed 1/3]"."""
    return config_name({"variant": c.variant, "dropout": c.dropout, "n_collapsed": c.collapsed,
                        "n_collapsed_of": c.collapsed_of, "n_not_converged": c.not_converged,
                        "n_not_converged_of": c.not_converged_of})


def estimate(e: Estimate) -> str:
    return estimate_text(e.mean, e.ci_half, e.n)


def marks_text(m: MarkCounts) -> str:
    """"2 collapsed, 1 not converged"."""
    return ", ".join(f"{k} {words}" for k, words in ((m.collapsed, "collapsed"), (m.not_converged, "not converged"))
                     if k)


def replicates(s: Scoring) -> str:
    return "runs (folds x seeds)" if s.folds else "seeds"


def score_label(s: Scoring) -> str:
    return f"test {metric_label(s.ranking)}"


def direction(s: Scoring) -> str:
    return "higher is better" if s.higher_is_better else "lower is better"


def why_none(reason: NoPick, marks: MarkCounts) -> str:
    return {NoPick.NO_FINISHED_RUNS: "no finished runs",
            NoPick.ALL_MARKED: f"every finished configuration is marked ({marks_text(marks)})",
            NoPick.ALL_FAST_MARKED: "every configuration at or above the median throughput is marked "
                                    f"({marks_text(marks)})",
            NoPick.NO_MISSING_METRICS: "no missing-modality metrics logged",
            NoPick.NO_THROUGHPUT: "no inference throughput logged"}[reason]


# ------------------------------------------------------------------ one claim per verdict
def best_overall_text(v: BestOverall, s: Scoring, cite: dict[str, str], against: Comparison | None = None) -> str:
    """``against``: the pick's comparison with BASELINE over test rows and seeds (reporting/uncertainty.py),
    said instead of the seed-only t-test where given."""
    label = score_label(s)
    if v.config is None:
        return (f"**Best overall:** none named: {why_none(v.why_none, v.marks)}, so no configuration can be "
                f"recommended ({cite['leaderboard']}). The highest {label}, {num(v.marked_best_score)}, belongs to a "
                "marked configuration; train longer or check the data before trusting any result here.")
    n_note = "" if v.score.n == 1 else f" (± over n = {v.score.n} {replicates(s)})"
    text = (f"**Best overall:** {name(v.config)}, {label} {estimate(v.score)}{n_note}"
            + (f" ({direction(s)})" if not s.higher_is_better else "")
            + (f", test {metric_label(s.lead)} {estimate(v.lead)}" if v.lead is not None else "")
            + f", rank 1 of {v.n_ranked} ranked ({cite['leaderboard']}).")
    if v.runner_up is not None:
        text += f" Runner-up: {name(v.runner_up)} at {num(v.runner_up_score)}."
    test = v.test
    if v.versus is Versus.IS_BASELINE:
        text += f" It is the `{BASELINE}` baseline itself."
    elif v.versus is Versus.NO_BASELINE_RUN:
        text += f" No `{BASELINE}` run at this dropout to test against."
    elif v.versus is Versus.UNTESTED:
        text += f" Against `{BASELINE}`: Δ {signed(test.mean_diff)}; {test.note} ({cite['significance']})."
    elif against is not None:
        verdict = "significant" if against.p_holm < ALPHA else "not significant"
        test_name = "paired bootstrap" if against.diff.basis is Basis.ROWS_AND_SEEDS else "paired t-test"
        text += (f" Against `{BASELINE}`: Δ {interval_text(against.diff, True)}, {test_name} p = {p_text(against.p)} "
                 f"(Holm-adjusted {p_text(against.p_holm)}; {counted(against.diff)}): {verdict} at {ALPHA} after "
                 f"Holm's correction ({cite['significance']}).")
    else:
        verdict = "significant" if v.significant else "not significant"
        text += (f" Against `{BASELINE}`: Δ {signed(test.mean_diff)}, paired t-test t({test.df}) = {test.t:.2f}, "
                 f"p = {p_value(test.p)} (Holm-adjusted {p_value(test.p_holm)}), n = {test.n} "
                 f"{replicates(s)}: {verdict} at {ALPHA} after Holm's correction ({cite['significance']}).")
    if v.marked_better:
        if s.higher_is_better:
            text += (f" {v.marked_better} marked configuration(s) score higher (up to {num(v.marked_best_score)}) "
                     "but are not recommended: see the marks in the leaderboard.")
        else:
            text += (f" {v.marked_better} marked configuration(s) score better (down to {num(v.marked_best_score)}) "
                     "but are not recommended: see the marks in the leaderboard.")
    return text


def when_missing_text(v: WhenMissing, s: Scoring, cite: dict[str, str]) -> str:
    if v.config is None:
        return f"**Best when a modality is often missing:** not available ({why_none(v.why_none, v.marks)})."
    where = " and ".join(c for c in (cite.get("curves"), cite.get("robustness")) if c) or cite["leaderboard"]
    if v.criterion is Criterion.AT_HIGHEST_RATE:
        measured = " (missing-rate curves are logged as accuracy)" if s.ranking != s.curve_metric else ""
        criterion = f"{metric_label(s.curve_metric)} at {v.rate}% missing"
        criterion = ("lowest " if not s.curve_higher_is_better else "highest ") + criterion
        text = (f"**Best when a modality is often missing:** {name(v.config)}, {criterion}{measured}: {num(v.value)}"
                + (" (it is also the best overall)" if v.is_best_overall else
                   f" (best overall: {num(v.best_overall_value)})")
                + f"; robustness score {num(v.robustness)} ({where}).")
    else:
        text = (f"**Best when a modality is often missing:** {name(v.config)}, highest robustness score "
                f"{num(v.robustness)} ({where}).")
    if cite.get("heatmap") and v.singles:
        parts = ", ".join(f"{subset} only {num(value)}" for subset, value in v.singles)
        text += f" With one modality left it scores {parts} ({cite['heatmap']})."
    return text


def within_budget_text(v: WithinBudget, s: Scoring, cite: dict[str, str]) -> str:
    if v.config is None:
        return f"**Best within a cost budget:** not available ({why_none(v.why_none, v.marks)})."
    text = (f"**Best within a cost budget** (inference throughput at or above the median, "
            f"{count(v.median_throughput)} samples/s): {name(v.config)}, {score_label(s)} {num(v.score)} at "
            f"{count(v.throughput)} samples/s")
    if v.is_best_overall:
        text += " (it is also the best overall)"
    else:
        text += f" (best overall: {num(v.best_overall_score)} at {count(v.best_overall_throughput)} samples/s)"
    return text + f" ({cite.get('throughput', cite['leaderboard'])})."


def fusion_gain_text(v: FusionGain, s: Scoring, cite: dict[str, str]) -> str:
    if v.status is GainStatus.ALL_MARKED:
        return (f"**Fusion gain:** not named: every fused configuration with a unimodal baseline is marked "
                f"({cite['significance']}).")
    if v.status is GainStatus.NO_BASELINE:
        return f"**Fusion gain:** not available, no finished unimodal baseline ({cite['significance']})."
    text = (f"**Fusion gain:** {v.beats} of {v.of}{' unmarked' if v.some_marked else ''} fused configurations beat "
            f"the best unimodal baseline trained with the same dropout on {score_label(s)}"
            + ("" if s.higher_is_better else f" ({direction(s)}; gain = unimodal − fused)")
            + f"; the largest gain is {signed(v.top_gain)} for {name(v.top)} over `{v.baseline}` "
            f"({cite['significance']}).")
    any_ = v.any_dropout
    if any_ is not None:
        text += (f" Against the best unimodal baseline at any training dropout ({any_.baseline}, chosen by validation "
                 f"score), {any_.beats} of {any_.of} beat it; the largest gain is {signed(any_.top_gain)} for "
                 f"{name(any_.top)}.")
    if v.stronger_marked:
        names = ", ".join(f"{name(c)} at {num(score)}" for c, score in v.stronger_marked)
        text += (f" A marked unimodal configuration scores higher than `{v.baseline}` ({num(v.baseline_score)}) "
                 f"and so is never the baseline: {names}; against it the gains would be smaller.")
    return text


def tuning_text(v: TuningGain, cite: dict[str, str]) -> str:
    if v.status is TuningStatus.UNCHANGED:
        return (f"**Tuning:** tuning changed nothing: the tuned and the default hyperparameters score the same "
                f"(to 3 decimals) in all {v.n} configurations ({cite['tuning']}).")
    text = f"**Tuning:** mean gain {signed(v.mean_gain)} over {v.n} configurations; "
    if v.status is TuningStatus.NONE_GAINED:
        return text + f"no configuration gained from tuning ({cite['tuning']})."
    if v.status is TuningStatus.NAMED:
        return text + f"largest {signed(v.top_gain)} for {name(v.top)} ({cite['tuning']})."
    return text + f"no largest named, every configuration is marked ({cite['tuning']})."


def trust_text(v: Trust, s: Scoring, cite: dict[str, str]) -> str:
    constant = "majority-class" if s.task == DEFAULT_TASK else REFERENCE_NAMES[s.task]
    refs = [f"{constant if which is Reference.CONSTANT else 'chance'} {metric_label(m)} {num(value)}"
            for which, m, value in v.references]
    where = cite["leaderboard"] + (f", {cite['training']}" if "training" in cite else "")
    if v.marked:
        text = (f"**Trust:** {v.marked} of {v.ranked} configurations are marked ({marks_text(v.marks)}) and "
                "left out of every pick above")
    else:
        text = "**Trust:** no configuration collapsed or stopped at the epoch cap while still improving"
    return text + (f"; references: {', '.join(refs)}" if refs else "") + f" ({where})."


def calibration_text(v: CalibrationDrift, cite: dict[str, str]) -> str:
    """The calibration call-out: the configurations whose ECE at the middle missing rate is more than
    the drift factor times their full-input ECE (or that none is)."""
    where = ", ".join(cite[key] for key in ("calibration", "calibration_curves") if key in cite)
    where = f" ({where})" if where else ""
    if not v.drifting:
        return (f"**Calibration under missingness:** no configuration's calibration error (ECE) at {v.rate}% "
                f"missing is more than {v.factor:g} times its full-input ECE ({v.checked} checked){where}.")
    names = "; ".join(f"{name(c)}: ECE {num(full)} → {num(missing)}" for c, full, missing in v.drifting)
    return (f"**Calibration under missingness:** {len(v.drifting)} of {v.checked} configurations have a calibration "
            f"error (ECE) at {v.rate}% missing more than {v.factor:g} times their full-input ECE: their confidence "
            f"overstates what they know once modalities drop out: {names}{where}.")


def reliance_text(v: OneModality, cite: dict[str, str]) -> str:
    """The reliance call-out: the fused configurations that rely almost entirely on one modality (or that none does)."""
    where = f" ({cite['reliance']})" if "reliance" in cite else ""
    rule = f"one modality's share of the permutation reliance at least {v.threshold:g}"
    if not v.dominated:
        return (f"**Reliance on one modality:** no fused configuration relies almost entirely on one modality "
                f"({rule}; {v.checked} checked){where}.")
    names = "; ".join(f"{name(c)}: {modality} {num(share, 2)} (equity {num(equity, 2)})"
                      for c, modality, share, equity in v.dominated)
    return (f"**Reliance on one modality:** {len(v.dominated)} of {v.checked} fused configurations rely almost "
            f"entirely on one modality ({rule}): fused in name, they barely read the others: {names}{where}.")


def dataset_items(v: DatasetVerdicts, cite: dict[str, str]) -> list[str]:
    """The "which strategy to use" claims for one dataset, each citing the table or figure
    (`cite`: "leaderboard", "significance", ... -> "Table 3") it rests on."""
    s = v.scoring
    if v.best.why_none is NoPick.NO_FINISHED_RUNS:
        return [f"No finished runs ({why_none(v.best.why_none, v.best.marks)})."]
    u = v.uncertainty
    against = u.baseline.get((v.best.config.variant, str(v.best.config.dropout))) if u and v.best.config else None
    items = [best_overall_text(v.best, s, cite, against), when_missing_text(v.when_missing, s, cite),
             within_budget_text(v.within_budget, s, cite), fusion_gain_text(v.fusion, s, cite)]
    if u is not None:  # each pick with its interval and its lead over the runner-up
        for index, lead in enumerate((u.best, u.when_missing, u.within_budget)):
            if lead is not None and v.best.config is not None:
                items[index] = items[index].rstrip() + lead_text(lead)
    if v.tuning is not None:
        items.append(tuning_text(v.tuning, cite))
    if v.trust is not None:
        items.append(trust_text(v.trust, s, cite))
    if v.calibration is not None and v.calibration.drifting:
        items.append(calibration_text(v.calibration, cite))
    if v.reliance is not None and v.reliance.dominated:
        items.append(reliance_text(v.reliance, cite))
    return items


# ------------------------------------------------------------------ across datasets
def cross_dataset_items(v: CrossDatasetVerdict, figure: str | None, table: str | None) -> list[str]:
    """The cross-dataset claims for the report's opening section."""
    cite = ", ".join(c for c in (table, figure) if c)
    cite = f" ({cite})" if cite else ""
    if v.status is CrossStatus.TOO_FEW_DATASETS:
        return [f"**Across datasets:** no cross-dataset verdict: the matrix has {v.n_datasets} dataset(s) with "
                "finished runs, and ranks over datasets need at least two."]
    if v.status is CrossStatus.TOO_FEW_STRATEGIES:
        return [f"**Across datasets:** no verdict: {v.n_strategies} fused strategy finished on every dataset."]
    lead = " and ".join(f"`{name}`" for name in v.leaders)
    text = (f"**Across datasets:** best average rank {v.best_rank:.2f} of {v.n_strategies} strategies: {lead}, "
            f"ranked on each dataset's own ranking metric (mean over seeds and training dropout rates) over "
            f"N = {v.n_datasets} datasets{cite}.")
    f = v.friedman
    if f is None or f.note:
        text += f" Friedman test: {f.note if f else 'not run'}."
    else:
        text += (f" Friedman χ²({f.k - 1}) = {f.chi2:.2f}, p = {p_value(f.p)}; Iman-Davenport F({f.k - 1}, "
                 f"{(f.k - 1) * (f.n - 1)}) = {f.iman_davenport:.2f}, p = {p_value(f.p_iman_davenport)}: the strategies' "
                 + ("ranks differ significantly" if v.ranks_differ else "ranks do not differ significantly")
                 + f" at {ALPHA} (Friedman).")
        text += (f" Nemenyi critical difference CD = {v.cd:.2f} ranks (the largest possible gap is "
                 f"{v.n_strategies - 1}): {v.within_cd} of {v.n_strategies} strategies are within CD of the best"
                 + ("" if v.ranks_differ else ", and without a significant Friedman test the post-hoc test is not "
                    "interpreted") + ".")
    low = v.lowest_pair
    if low is not None:
        text += (f" Pairwise Wilcoxon signed-rank tests over datasets, Holm-corrected for {v.pairs_tested} "
                 f"comparisons: {v.pairs_significant} significant at {ALPHA}; the smallest adjusted p is "
                 f"{p_value(low.p_holm)} (`{low.a}` vs `{low.b}`, raw p {p_value(low.p)}).")
    items = [text]
    if v.low_power:
        smallest = v.smallest_possible_p
        items.append(f"**Power:** with only N = {v.n_datasets} datasets these tests have very little power: the "
                     f"smallest two-sided Wilcoxon p-value N = {v.n_datasets} pairs can give is {smallest:.3f}"
                     + (" (no pair can reach 0.05 even before correction)" if smallest >= ALPHA else "")
                     + f", and the critical difference ({v.cd:.2f} ranks) is wide. Read the average ranks as a "
                     "description of these datasets, not as evidence that holds on others; Demsar (2006) suggests "
                     "at least 10 datasets.")
    if v.marked:
        names = "; ".join(f"`{variant}` on {', '.join(where)}" for variant, where in v.marked)
        items.append(f"**Marked configurations stay in the ranks:** {names}. Their scores are averaged like the "
                     "others (leaving them out would reward a strategy for failing); see each dataset's marks.")
    return items


# ------------------------------------------------------------------ Bayesian comparisons with concat
def rope_text(r: Rope) -> str:
    """"0.01 macro-F1 (1 point)", or "0.52 MAE (1% of the constant predictor's)"."""
    label = metric_label(r.metric)
    if r.basis is RopeBasis.POINT:
        return f"{r.width:g} {label} (1 point)"
    if r.basis is RopeBasis.REFERENCE:
        return f"{r.width:.3g} {label} (1% of the constant predictor's)"
    if r.basis is RopeBasis.BASELINE_SCORE:
        return f"{r.width:.3g} {label} (1% of `{BASELINE}`'s mean; no reference predictor logged)"
    return f"none: {label} is an error metric and neither a reference predictor nor `{BASELINE}` logged a value"


def bayes_unit(v: BayesComparisons) -> str:
    """What n counts in a Bayesian comparison."""
    return {Unit.DATASETS: "datasets (one mean per dataset)", Unit.SEEDS: "matched seeds",
            Unit.FOLDS: "folds (the mean difference over each fold's matched seeds)"}[v.unit]


def bayes_none(v: BayesComparisons) -> str:
    """Why a Bayesian comparison table is absent."""
    where = "over the datasets" if v.unit is Unit.DATASETS else "on this dataset"
    if v.why_none is NoComparison.NO_BASELINE:
        return (f"No Bayesian comparison with `{BASELINE}` {where}: `{BASELINE}` "
                + ("is not among the strategies finished on every dataset." if v.unit is Unit.DATASETS
                   else "has no finished run."))
    if v.why_none is NoComparison.TOO_FEW_PAIRS:
        return (f"No Bayesian comparison with `{BASELINE}` {where}: {v.n} {v.unit.value} with finished runs, and "
                f"the signed-rank test is run only from {MIN_PAIRS} paired values (with fewer its prior would be most "
                "of the answer).")
    return (f"No Bayesian comparison with `{BASELINE}` {where}: no region of practical equivalence: "
            + "; ".join(f"`{r.dataset}`: {rope_text(r)}" for r in v.ropes if r.basis is None) + ".")


def bayes_reading(v: BayesComparisons) -> str:
    """The one-sentence reading guide of the cross-dataset Bayesian table."""
    return (f"**Bayesian comparison with `{BASELINE}`:** each row of Table B gives the posterior probability that, on "
            f"datasets like these {v.n}, the strategy most often trails `{BASELINE}` by more than 1 point (P(worse)), "
            "most often lands within 1 point of it (P(equivalent): the region of practical equivalence) or most often "
            "beats it by more than 1 point (P(better)); the three add up to 1, they read directly as chances (unlike "
            "p-values), and 0.95 or more is a strong claim.")
