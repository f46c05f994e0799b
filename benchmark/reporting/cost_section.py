"""What a configuration costs and how it was trained, on one dataset: score against throughput and
memory (Pareto fronts), the gain from tuning, and the training record (epochs, stopping)."""

from __future__ import annotations

from benchmark.reporting.analysis import DEFAULT_TASK, MEMORY_METRICS, REFERENCE_NAMES, metric_label, metric_spec
from benchmark.reporting.cells import marked_last
from benchmark.reporting.figures import accuracy_vs_cost, tuning_gain
from benchmark.reporting.numbers import num, signed
from benchmark.reporting.section_context import SectionContext


def write_cost(section: SectionContext) -> None:
    a, doc = section.a, section.doc
    doc.heading(f"{metric_label(a.ranking)[0].upper()}{metric_label(a.ranking)[1:]} against cost", 3)
    fig = accuracy_vs_cost(a, section.png("accuracy_vs_throughput"), "throughput")
    if fig:
        section.cite["throughput"] = doc.figure(
            f"Mean {a.score_label} against inference throughput (256-row batches); circled points joined by the "
            "black line form the Pareto front (no other unmarked configuration is both faster and better"
            + ("" if a.higher_is_better else f"; {a.direction}") + "). "
            "The dashed vertical line is the median throughput used as the cost budget in the summary."
            + _cost_notes(section), fig)
    fig = accuracy_vs_cost(a, section.png("accuracy_vs_memory"), "memory")
    if fig:
        metric = MEMORY_METRICS[a.memory_key]
        section.cite["memory"] = doc.figure(
            f"Mean {a.score_label} against {metric.label}; circled points joined by the black line form the "
            "Pareto front (no other unmarked configuration uses less memory and is better)." + metric.caveat
            + _cost_notes(section), fig)
        # A device reading (not the counted figure) may stand beside runs from the other device.
        mixed = [k for k, other in MEMORY_METRICS.items() if "any" not in (metric.device, other.device)
                 and other.device != metric.device and k in a.runs and a.runs[k].notna().any()]
        if mixed:
            doc.para(f"Some runs logged `{mixed[0]}` instead of `{a.memory_key}` (another device); they are "
                     "left out of the memory figure rather than mixed with it.")
    if not section.cite.get("throughput") and not section.cite.get("memory"):
        doc.para("No throughput or memory figures were logged for this dataset.")


def _cost_notes(section: SectionContext) -> str:
    a, notes = section.a, ""
    if len(a.marked):
        notes += (" Marked configurations (collapsed or not converged) are drawn as crosses and are never on "
                  "the front.")
    if a.reference_score == a.reference_score:
        name = "majority-class" if a.task == DEFAULT_TASK else REFERENCE_NAMES[a.task]
        notes += (f" The dotted horizontal line is the {name} predictor's {a.score_label} (where it lies far below "
                  "the points it is named in the legend instead, so the axis fits the points).")
    return notes


def write_tuning(section: SectionContext) -> None:
    a, doc = section.a, section.doc
    ranked = a.ranked
    if ranked["tuning_gain"].notna().sum() == 0:
        return
    doc.heading("Gain from tuning", 3)
    ordered = marked_last(ranked, "tuning_gain")
    metric = a.tuning_metric
    name, higher = metric_label(metric), metric_spec(metric)[1]
    rows = [[r["variant"], f"{r['dropout']}", num(r["default_score"]), num(r[metric]),
             (signed(r["tuning_gain"]) + ("" if r["n"] < 2 else f" ± {num(r['tuning_gain_ci'])}")), str(r["n"])]
            for _, r in ordered.iterrows()]
    gain = "tuned − default" if higher else f"default − tuned ({name}: lower is better, so positive = tuning helped)"
    section.cite["tuning"] = doc.table(
        f"`{a.name}`: test {name} with the strategy's default hyperparameters and with the Optuna-tuned ones "
        f"(same seeds, same epochs); gain = {gain}, mean ± 95% CI over seeds.",
        *section.marks(["strategy", "train dropout", f"default {name}", f"tuned {name}", "tuning gain", "n"],
                     "lrrrlr", rows, ordered))
    fig = tuning_gain(a, section.png("tuning_gain"))
    if fig:
        section.cite["tuning_fig"] = doc.figure(f"Tuning gain per strategy ({gain.split(' (')[0]} test {name}), "
                                             "pooled over seeds and training dropout rates.", fig)


def write_training(section: SectionContext) -> None:
    a, doc = section.a, section.doc
    if not a.trained:
        return
    doc.heading("Training: epochs and stopping", 3)
    ranked = a.ranked
    rows = [[r["variant"], f"{r['dropout']}", num(r["epochs_run"], 1), num(r["best_epoch"], 1),
             r["stop_reasons"] or "n/a", num(r["largest_class_share"]), str(r["n"])] for _, r in ranked.iterrows()]
    section.cite["training"] = doc.table(
        f"`{a.name}`: how long each configuration's tuned retrain ran, mean over seeds: epochs run, the epoch "
        "whose weights were kept (best validation metric), and why the seeds stopped (plateau: early stopping "
        "after the validation metric stopped improving; cap: the profile's epoch cap). A seed stopped by the cap "
        "while still improving is not converged. Largest class share = the fraction of test predictions in "
        "the most-predicted class (near 1: the model predicts one class: collapsed). Same order as the "
        "leaderboard.",
        *section.marks(["strategy", "train dropout", "epochs run (mean)", "best epoch (mean)", "stopped by (seeds)",
                      "largest predicted class share", "n"], "lrrrlrr", rows, ranked))
