"""How one dataset's configurations hold up when modalities go missing at test time: the subset
heatmap, the missing-rate curves and table with the robustness score defined in words, and the
per-modality robustness when only one modality goes missing."""

from __future__ import annotations

from benchmark.reporting.analysis import (BASELINE, DEFAULT_TASK, REFERENCE_NAMES, DatasetAnalysis, metric_label,
                                          metric_spec)
from benchmark.reporting.cells import marked_last, robustness_cell
from benchmark.reporting.figures import missing_curves, robustness_heatmap
from benchmark.reporting.modality_figure import modality_missing_curves
from benchmark.reporting.modality_missing import modality_missing
from benchmark.reporting.numbers import num
from benchmark.reporting.section_context import SectionContext
from benchmark.vocabulary import subset_modalities


def robustness_definition(a: DatasetAnalysis) -> str:
    """The robustness score in words, as the dataset's runs define it."""
    if a.task != DEFAULT_TASK:
        reference = a.curve_reference
        return (f"Robustness as the runs logged it: how much of the test {metric_label(a.curve_metric)} a "
                "configuration keeps as test-time missing rates rise over [0, 0.9], measured above the "
                f"{REFERENCE_NAMES[a.task]} predictor"
                + (f" ({num(reference)})" if reference == reference else "")
                + " (1 = no loss at any rate, 0 = falls to the reference); higher is better. The missing-rate "
                f"columns are test {metric_label(a.curve_metric)}"
                + (" (lower is better)." if not a.curve_higher_is_better else "."))
    if a.majority_accuracy == a.majority_accuracy:
        f1 = a.ranking == "macro_f1"
        name, majority = ("macro-F1", a.majority_macro_f1) if f1 else ("accuracy", a.majority_accuracy)
        return (f"Robustness = area under (s(r) − majority) / (s(0) − majority) over test-time missing rates "
                f"r in [0, 0.9], divided by 0.9 (trapezoid rule), where s(r) is the test {name} (the dataset's "
                f"ranking metric) at missing rate r and majority = the majority-class predictor's test {name} "
                f"({num(majority)}): 1 = no loss above the majority baseline at any rate, 0 = falls to the majority "
                "baseline. A collapsed configuration, or a seed whose full score does not beat the majority class by "
                "0.01, has no score (n/a); the mean is over the seeds that have one. The accuracy columns show the "
                "same missing rates in accuracy.")
    return ("Robustness as these runs logged it, before it was measured above the majority-class baseline: area "
            "under the accuracy-vs-missing-rate curve over [0, 0.9] / (0.9 × full accuracy), which gives a "
            "constant predictor a perfect score.")


def write_robustness(section: SectionContext) -> None:
    a, doc = section.a, section.doc
    doc.heading("Robustness to missing modalities", 3)
    heat = robustness_heatmap(a, section.png("robustness_heatmap"))
    reference_name = "majority-class" if a.task == DEFAULT_TASK else REFERENCE_NAMES[a.task] + " predictor's"
    subset_name, curve_name = metric_label(a.subset_metric), metric_label(a.curve_metric)
    subset_reference = a.majority.get(a.subset_metric, float("nan"))
    if heat:
        section.cite["heatmap"] = doc.figure(
            f"Test {subset_name} when only some modalities are available at test time (columns), for the best "
            f"strategies and `{BASELINE}`, per training modality-dropout rate (rows); mean over seeds"
            + ("" if metric_spec(a.subset_metric)[1] else "; lower is better")
            + (f"; {reference_name} {subset_name} {num(subset_reference)}" if subset_reference == subset_reference
               else "") + ".", heat)
    curves = missing_curves(a, section.png("missing_curves"))
    if curves:
        section.cite["curves"] = doc.figure(
            f"Test {curve_name} against the test-time missing rate (each modality of each row removed with that "
            f"probability, at least one kept){'' if a.curve_higher_is_better else ', lower is better'}; the best "
            f"strategies per training dropout rate, `{BASELINE}` (black) and the best unimodal baseline (grey, "
            "dotted)"
            + (f"; the horizontal dashed line is the {reference_name} {curve_name}, the level robustness is "
               "measured above" if a.curve_reference == a.curve_reference else "")
            + (". Legend names carry their marks." if len(a.marked) else "."), curves)
    if not heat and not curves:
        doc.para("No subset or missing-rate scores were logged for this dataset.")
        return
    rates = a.missing_rates
    shown = sorted({rates[0], rates[len(rates) // 2], rates[-1]}) if rates else []
    singles = [s for s in a.subsets if len(subset_modalities(s)) == 1]
    ranked = a.ranked
    key = f"missing:{rates[-1]}" if rates else "robustness"
    ordered = marked_last(ranked, key, a.curve_higher_is_better or not rates)
    rows = [[r["variant"], f"{r['dropout']}"] + [num(r[f"missing:{x}"]) for x in shown] + [robustness_cell(r)]
            + [num(r[f"subset:{s}"]) for s in singles] for _, r in ordered.iterrows()]
    short = "acc." if a.curve_metric == "accuracy" else curve_name
    only = "" if a.subset_metric == a.curve_metric else f" ({subset_name})"
    section.cite["robustness"] = doc.table(
        f"`{a.name}`: {curve_name} under missing modalities, sorted by {curve_name} at the highest missing rate"
        + ("" if a.curve_higher_is_better or not rates else " (lowest first: lower is better)")
        + (" (marked configurations last)" if len(a.marked) else "") + ". " + robustness_definition(a),
        *section.marks(["strategy", "train dropout"] + [f"{short} {x}% missing" for x in shown] + ["robustness"]
                     + [f"{s} only{only}" for s in singles], "lr" + "r" * (len(shown) + 1 + len(singles)), rows,
                     ordered))


def write_modality_missing(section: SectionContext) -> None:
    """Imbalanced missingness: robustness and the score at the highest rate when only one modality goes
    missing, per ranked configuration, and their curves (benchmark/reporting/modality_missing.py)."""
    a, doc = section.a, section.doc
    curves = modality_missing(a)
    if curves is None:
        return  # runs logged before the per-modality curves: nothing to show
    doc.heading("Robustness when one modality goes missing", 3)
    top, name = curves.rates[-1], metric_label(curves.metric)
    fig = modality_missing_curves(a, curves, section.png("modality_missing_curves"))
    if fig:
        section.cite["modality_curves"] = doc.figure(
            f"Test {name} as only one modality is removed at test time (each row loses it with that probability; "
            "the others stay present), one panel per modality; the best fused configurations, the best "
            f"`{BASELINE}` (black) and the best unimodal baseline (grey, dotted)"
            + ("" if curves.higher_is_better else f"; {name}: lower is better") + ".", fig)
    rows = [[r["variant"], f"{r['dropout']}", robustness_cell(r)]
            + [num(r[f"robustness:{m}"]) for m in curves.modalities]
            + [num(r[f"{m}:{top}"]) for m in curves.modalities] for _, r in curves.configs.iterrows()]
    section.cite["modality_robustness"] = doc.table(
        f"`{a.name}`: robustness per modality, in leaderboard order: the robustness score (same rule as above, in "
        f"test {name}) when only that modality goes missing at rates 0 to {top}%, next to the score when every "
        f"modality goes missing; then test {name} with only that modality missing from {top}% of the rows. A low "
        "score for one modality means the configuration leans on it.",
        *section.marks(["strategy", "train dropout", "robustness (all missing)"]
                     + [f"robustness ({m} missing)" for m in curves.modalities]
                     + [f"{name}, {m} {top}% missing" for m in curves.modalities],
                     "lr" + "r" * (1 + 2 * len(curves.modalities)), rows, curves.configs))
