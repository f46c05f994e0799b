"""What fusing buys on one dataset: the fusion gain over the best unimodal baseline with the paired
t-test against the baseline variant, the gain over the best pair of modalities (three or more),
and zero-filling against the learned missing-modality embedding."""

from __future__ import annotations

from benchmark.reporting.analysis import BASELINE, DEFAULT_TASK, UNIMODAL, metric_label
from benchmark.reporting.cells import untested_p
from benchmark.reporting.missing_technique import technique_table
from benchmark.reporting.more_modalities import pair_gain_table
from benchmark.reporting.numbers import num, p_value, signed
from benchmark.reporting.replicates import pairs_header, uses_folds
from benchmark.reporting.section_context import SectionContext
from benchmark.reporting.uncertainty import Basis, Comparison, interval_text


def _n_cell(c: Comparison) -> str:
    """What n counts for one comparison: "3 seeds x 120 rows", "5 folds x 3 seeds (600 rows)", "3 seeds"."""
    d = c.diff
    rows = f" ({d.rows:,} rows)" if d.folds and d.rows else (f" x {d.rows:,} rows" if d.rows else "")
    return (f"{d.folds} folds x " if d.folds else "") + f"{d.seeds} seed{'' if d.seeds == 1 else 's'}" + rows


def _comparison_cells(c: Comparison) -> list[str]:
    """Δ [95% CI], the test, p, p (Holm), n of one comparison with BASELINE (reporting/uncertainty.py)."""
    test = "paired bootstrap" if c.diff.basis is Basis.ROWS_AND_SEEDS else f"paired t-test {c.statistic}".strip()
    if c.p != c.p:
        test = c.note or test
    return [interval_text(c.diff, True), test, p_value(c.p), p_value(c.p_holm), _n_cell(c)]


def write_gain_and_significance(section: SectionContext) -> None:
    a, doc = section.a, section.doc
    ranked = a.ranked
    has_uni = ranked["best_unimodal"].notna().any()
    any_uni = ranked["best_unimodal_any"].iloc[0] if "best_unimodal_any" in ranked and len(ranked) else None
    has_base = (ranked["variant"] == BASELINE).any()
    rows = []
    u = section.uncertainty
    for _, r in ranked.iterrows():
        test = a.tests.get((r["variant"], r["dropout"]))
        comparison = u.baseline.get((str(r["variant"]), str(r["dropout"]))) if u is not None else None
        if comparison is not None and r["variant"] != BASELINE:
            delta, t, p, p_holm, n = _comparison_cells(comparison)
        elif r["variant"] == BASELINE:
            delta, t, p, n = "baseline", "—", "—", str(r["n"])
        elif test is None:
            delta, t, p, n = "n/a", f"no `{BASELINE}` run at this dropout", "n/a", "0"
        elif test.note:
            delta, t, p, n = signed(test.mean_diff), test.note, untested_p(test), str(test.n)
        else:
            delta = f"{signed(test.mean_diff)} [{signed(test.mean_diff - test.ci_half)}, " \
                    f"{signed(test.mean_diff + test.ci_half)}]"
            t, p, n = f"t({test.df}) = {test.t:.2f}", p_value(test.p), str(test.n)
        if comparison is None:
            p_holm = "—" if r["variant"] == BASELINE else p_value(test.p_holm) if test is not None else "n/a"
        rows.append([r["variant"], f"{r['dropout']}", num(r[a.score]), r["best_unimodal_label"] or "n/a",
                     signed(r["fusion_gain"]) if r["family"] != UNIMODAL else "(unimodal)"]
                    + ([signed(r["fusion_gain_any"]) if r["family"] != UNIMODAL else "(unimodal)"]
                       if any_uni else [])
                    + [delta, t, p, p_holm, n])
    doc.heading(f"Fusion gain and paired test against `{BASELINE}`", 3)
    notes = []
    if not has_uni:
        notes.append("No unimodal baseline (family `unimodal`) finished on this dataset, so the fusion gain "
                     "is not available.")
    if not has_base:
        notes.append(f"No `{BASELINE}` run finished on this dataset, so the paired test is not available.")
    score = a.score_label
    gain = (f"Fusion gain = mean {score} minus that of the best unimodal baseline trained with the same dropout "
            "rate (the best unmarked one). " if a.higher_is_better else
            f"Fusion gain = the best unimodal baseline's mean {score} minus the strategy's ({a.direction}: a "
            "positive gain is an improvement; the baseline is the best unmarked unimodal configuration trained "
            f"with the same dropout rate). Δ below is the raw difference: negative Δ means a lower {score}. ")
    if u is not None:
        tested = sum(c.p == c.p for c in u.baseline.values())
        how = _how_tested(u, a.runs)
    else:
        tested = sum(t.p == t.p for t in a.tests.values())
        how = (f"mean over seeds of (strategy − `{BASELINE}`) {score}, paired by "
               f"{'(fold, seed)' if uses_folds(a.runs) else 'seed'} at the same training dropout, with its 95% CI; "
               f"test: two-sided **paired t-test**, df = n − 1, n = {'(fold, seed)' if uses_folds(a.runs) else 'seed'} "
               "pairs.")
    doc.para(gain + f"Δ vs `{BASELINE}` = {how} p is the raw p-value (expect about 1 in 20 below 0.05 by chance); "
             f"p (Holm) is adjusted with Holm's step-down method over the dataset's {tested} comparisons that have a "
             "p-value, which keeps the chance of any false positive at 0.05. " + " ".join(notes)
             + ((" " if notes else "") + "Fusion gain at any dropout = the same difference against one "
                f"baseline for every row, {any_uni}: the unimodal configuration with the best mean validation "
                f"{metric_label(a.ranking)} over every training dropout (chosen on the validation split, never "
                "on test), so a fused model trained with heavy dropout is not compared with a baseline handicapped "
                "by the same dropout."
                if any_uni else ""))
    header, rows, align = section.marks(
        ["strategy", "train dropout", score, "best unimodal", "fusion gain"]
        + (["fusion gain vs best unimodal at any dropout"] if any_uni else [])
        + [f"Δ vs {BASELINE} [95% CI]", "test" if u is not None else "paired t-test", "p", "p (Holm)",
           "n (what it counts)" if u is not None else pairs_header(a.runs)],
        "lrrlr" + ("r" if any_uni else "") + "llrrr", rows, ranked)
    section.cite["significance"] = doc.table(
        f"`{a.name}`: fusion gain over the best unimodal baseline and paired "
        + ("test" if u is not None else "t-test") + f" against `{BASELINE}`, "
        f"on {score}" + (" (the ranking metric)." if a.ranking != a.metrics[0] or a.task != DEFAULT_TASK
                         else ".")
        + (" Marked configurations keep their mark here too (last column)." if len(a.marked) else ""),
        header, rows, align)


def _how_tested(u, runs) -> str:
    """The comparisons with BASELINE in words: what they resample and what n counts."""
    folds = uses_folds(runs)
    bootstrap = (f"a **paired bootstrap** ({u.draws:,} draws): in each draw the test rows are drawn with replacement "
                 "(the same rows for the strategy and for `" + BASELINE + "`) and the seeds are drawn with replacement"
                 + (" within each fold (seeds nested in folds; folds averaged, never pooled)" if folds else "")
                 + ", and the metric is recomputed from the logged per-row predictions; the 95% interval is the draws' "
                 "2.5 and 97.5 percentiles and p is twice the share of draws on the far side of 0. It counts test-set "
                 "sampling as well as seeds.")
    seeds = ("a two-sided **paired t-test** and t-interval over "
             + ("the folds' mean differences (the seeds of a fold share its test rows, so they are averaged within "
                "the fold first: n = folds)" if folds else "seeds (n = seeds)")
             + ": it counts seed-to-seed variation only, not test-set sampling")
    if u.basis is Basis.ROWS_AND_SEEDS:
        return f"mean (strategy − `{BASELINE}`) at the same training dropout; test: {bootstrap} The n column says what n counts."
    if u.runs_without_rows and any(c.diff.basis is Basis.ROWS_AND_SEEDS for c in u.baseline.values()):
        return (f"mean (strategy − `{BASELINE}`) at the same training dropout; test: {bootstrap} Where a configuration "
                f"has runs without per-row predictions ({u.runs_without_rows} runs, recorded before they were logged) "
                f"the test is {seeds} (the test column says which). The n column says what n counts.")
    return (f"mean (strategy − `{BASELINE}`) at the same training dropout; test: {seeds}, because these runs logged no "
            "per-row test predictions. The n column says what n counts.")


def write_pair_gain(section: SectionContext) -> None:
    """Three or more modalities: the full input against the best pair and the best single modality of the
    same model (reporting/more_modalities.py)."""
    table = pair_gain_table(section.a)
    if table is not None:
        section.doc.heading("Gain over the best pair of modalities", 3)
        section.cite["pair_gain"] = section.doc.table(*table)


def write_missing_technique(section: SectionContext) -> None:
    """Zero-filling against the learned missing-modality embedding (only when the matrix trained both)."""
    table = technique_table(section.a)
    if table is not None:
        section.doc.heading("Missing-input technique: zero-filling vs learned embedding", 3)
        section.cite["missing_technique"] = section.doc.table(*table)
