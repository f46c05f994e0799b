"""Compose the comparison report: summary first ("which strategy to use"), then per dataset the
leaderboard (with majority-class and chance rows), fusion gain and significance, robustness,
cost, tuning and training; write report.md, report.html and the PNGs to reports/<matrix id>/
and point reports/latest at it. Configurations marked collapsed or not converged carry their
mark in every table and are never ranked or named best."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from benchmark.paths import reports_dir
from benchmark.reporting.analysis import (BASELINE, DEFAULT_TASK, MEMORY_METRICS, REFERENCE_NAMES, UNIMODAL,
                                          DatasetAnalysis, analyse, best_overall, best_when_missing,
                                          best_within_budget, mark_text, marked_counts, metric_label,
                                          metric_spec, same_config)
from benchmark.reporting.details import RunDetails
from benchmark.reporting.document import Document
from benchmark.reporting.numbers import count, num, p_value, signed
from benchmark.reporting.crossdataset import write_section as write_cross_dataset
from benchmark.reporting.fetch import MatrixRuns, fetch_matrix
from benchmark.reporting.modality_figure import modality_missing_curves
from benchmark.reporting.modality_missing import modality_missing
from benchmark.reporting.more_modalities import not_applicable_text, pair_gain_table
from benchmark.reporting.replicates import folds_note, n_header, pairs_header, replicates_word, uses_folds
from benchmark.reporting.perclass import write_per_class
from benchmark.reporting.missing_technique import technique_table
from benchmark.reporting.figures import accuracy_vs_cost, missing_curves, robustness_heatmap, tuning_gain
from benchmark.vocabulary import RANKING_METRIC, subset_label, subset_modalities

ALPHA = 0.05


# ------------------------------------------------------------------ formatting
def ci_cell(row, key: str = "accuracy") -> str:
    """Mean ± 95% half-width of a configs column ("accuracy", "macro_f1") that has a "<key>_ci"."""
    if row["n"] == 0:
        return no_result(row)
    if row[key] != row[key]:
        return "n/a"
    if row["n"] == 1:
        return f"{num(row[key])} (1 seed: no CI)"
    return f"{num(row[key])} ± {num(row[key + '_ci'])}"


def no_result(row) -> str:
    """A configuration without a finished run: "failed", "unfinished" (interrupted or still
    running), or "no finished run" when it has both."""
    words = [word for word in ("failed", "unfinished") if row.get(f"n_{word}", 0)]
    return words[0] if len(words) == 1 else "no finished run"


def robustness_cell(row) -> str:
    """The robustness score; none for a configuration with a collapsed seed (a constant predictor has none)."""
    if row.get("n_collapsed", 0):
        return "n/a (collapsed)"
    value = num(row["robustness"])
    seeds = int(row.get("robustness_n", row["n"]))
    if value != "n/a" and 0 < seeds < row["n"]:
        value += f" ({seeds} of {row['n']} seeds)"
    return value


def untested_p(test) -> str:
    """The p cell of a test that could not be run: never a nan or inf shown as if it meant something."""
    return "n/a (identical differences)" if "identical differences" in test.note else "n/a"


def config_name(row) -> str:
    mark = mark_text(row)
    return f"`{row['variant']}` (train dropout {row['dropout']})" + (f" [{mark}]" if mark else "")


def marked_last(frame: pd.DataFrame, column: str, higher_is_better: bool = True) -> pd.DataFrame:
    """Rows by `column` (best first: highest, or lowest when lower is better), unmarked configurations
    before marked ones."""
    return frame.sort_values(["marked", column], ascending=[True, not higher_is_better], na_position="last")


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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def seeds_cell(row) -> str:
    extra = []
    if row["n_failed"]:
        extra.append(f"{row['n_failed']} failed")
    if row["n_unfinished"]:
        extra.append(f"{row['n_unfinished']} unfinished")
    return f"{row['n']}" + (f" ({', '.join(extra)})" if extra else "")


# ------------------------------------------------------------------ sections
class DatasetSection:
    """Writes one dataset's section and remembers which table/figure holds what, for the summary."""

    def __init__(self, doc: Document, a: DatasetAnalysis, folder: Path, details: RunDetails | None = None,
                 parent: dict | None = None) -> None:
        self.doc, self.a, self.folder = doc, a, folder
        self.parent = parent or {}  # the matrix's parent run (tags, config): strategies not applicable here
        self.details = details  # per-run artifacts and curves, fetched for the runs shown (None: no store)
        self.cite: dict[str, str] = {}

    def write(self) -> None:
        doc, a = self.doc, self.a
        doc.heading(f"Dataset `{a.name}`", 2)
        self._data_rows()
        if a.configs.empty or not (a.configs["n"] > 0).any():
            doc.para("No finished runs for this dataset: nothing to compare (see the failed and unfinished cells below).")
            self._notes()
            return
        self._leaderboard()
        self._gain_and_significance()
        self._pair_gain()
        self._robustness()
        self._modality_missing()
        self._missing_technique()
        self._cost()
        self._tuning()
        self._training()
        if self.details is not None:  # confusion matrices and learning curves (reporting/perclass.py)
            write_per_class(self.doc, self.a, self._png, self.cite, self.details)
        self._notes()

    def _pair_gain(self) -> None:
        """Three or more modalities: the full input against the best pair and the best single modality of the
        same model (reporting/more_modalities.py)."""
        table = pair_gain_table(self.a)
        if table is not None:
            self.doc.heading("Gain over the best pair of modalities", 3)
            self.cite["pair_gain"] = self.doc.table(*table)

    def _missing_technique(self) -> None:
        """Zero-filling against the learned missing-modality embedding (only when the matrix trained both)."""
        table = technique_table(self.a)
        if table is not None:
            self.doc.heading("Missing-input technique: zero-filling vs learned embedding", 3)
            self.cite["missing_technique"] = self.doc.table(*table)

    def _data_rows(self) -> None:
        """How many rows of each split have each combination of modalities present in the data itself
        (before any dropout or test-time removal), from the `data_rows.<split>.<mods>` metrics."""
        a, doc = self.a, self.doc
        if not a.data_rows:
            return
        order = {"train": 0, "validation": 1, "test": 2}
        splits = sorted(a.data_rows, key=lambda split: (order.get(split, 3), split))
        combos = sorted({c for counts in a.data_rows.values() for c in counts},
                        key=lambda c: (-len(subset_modalities(c)), c))
        everything = set().union(*(subset_modalities(c) for c in combos))
        totals = ", ".join(f"{split} {count(sum(a.data_rows[split].values()))}" for split in splits)
        if len(combos) == 1 and set(subset_modalities(combos[0])) == everything:
            doc.para(f"**Data:** every row has all its modalities present ({subset_label(combos[0])}; rows: "
                     f"{totals}); none is missing in the data itself.")
            return
        rows = [[subset_label(c)] + [count(a.data_rows[split].get(c, 0)) for split in splits] for c in combos]
        rows.append(["all rows"] + [count(sum(a.data_rows[split].values())) for split in splits])
        self.cite["data_rows"] = doc.table(
            f"`{a.name}`: rows per split by the modalities present in the data itself (a null cell or an absent "
            "file leaves a modality absent; nothing is imputed). Training and evaluation mask the absent ones; the "
            "modality dropout and the test-time missing rates of the tables below remove inputs on top of these.",
            ["modalities present"] + splits, rows, "l" + "r" * len(splits))

    def _marks(self, header: list[str], align: str, rows: list[list[str]], frame: pd.DataFrame
               ) -> tuple[list[str], list[str], str]:
        """Add the "mark" column (last) to a table of configurations when the runs were checked:
        "collapsed k/n", "not converged k/n" or empty. Rows beyond the frame (references) get none."""
        if not self.a.judged:
            return header, rows, align
        marks = [mark_text(r) for _, r in frame.iterrows()]
        rows = [row + [marks[i] if i < len(marks) else ""] for i, row in enumerate(rows)]
        return header + ["mark"], rows, align + "l"

    def _png(self, stem: str) -> Path:
        return self.folder / f"{_slug(self.a.name)}_{stem}.png"

    def _leaderboard(self) -> None:
        a, configs = self.a, self.a.configs
        ordered = pd.concat([a.ranked, configs[configs["n"] == 0].sort_values(["variant", "dropout"])])
        memory = MEMORY_METRICS[a.memory_key].column if a.memory_key else "peak memory (MiB)"
        # the task's metrics: the first leads, then the seeds, then the others; the ranking metric (and the
        # lead) with its confidence interval
        lead, others = a.metrics[0], list(a.metrics[1:])
        with_ci = {lead, a.ranking}

        def metric_cells(r) -> list[str]:
            return [ci_cell(r, m) if m in with_ci else num(r[m]) for m in others]

        rows = [[f"{int(r['rank'])}" if r["rank"] == r["rank"] else "—", r["variant"], r["family"],
                 f"{r['dropout']}", ci_cell(r, lead), seeds_cell(r)] + metric_cells(r)
                + [robustness_cell(r), count(r["infer_sps"]), count(r["params"]), count(r["memory"])]
                for _, r in ordered.iterrows()]
        references = []

        def reference_row(name: str, values: dict) -> list[str]:
            return (["ref.", f"{name} (reference)", "reference", "—", num(values.get(lead)), "—"]
                    + [num(values[m]) if m in values else "—" for m in others] + ["—"] * 4)

        if a.majority:
            if a.task == DEFAULT_TASK:
                references.append("the majority class (always predicts the training split's most frequent class)")
            else:
                words = {"binary": "scores every row with the training split's share of positives",
                         "multilabel": "scores every label of every row with its share in the training split",
                         "regression": "predicts the training split's mean for every row"}[a.task]
                references.append(f"the {REFERENCE_NAMES[a.task]} predictor ({words})")
            rows.append(reference_row(REFERENCE_NAMES[a.task], a.majority))
        if a.chance_accuracy == a.chance_accuracy:
            references.append("chance (uniform random guessing: accuracy 1 / number of classes; its macro-F1 "
                              "depends on the class frequencies, not logged, so it is left blank)")
            rows.append(reference_row("chance", a.chance))
        if a.zero_shot:
            references.append("zero-shot CLIP (no training: each test image gets the class whose prompt "
                              "\"a photo of a {class name}\" is most cosine-similar to it)")
            rows.append(reference_row("zero-shot CLIP", a.zero_shot))
        doc = self.doc
        doc.heading("Leaderboard", 3)
        metric = f"`{RANKING_METRIC}: {a.ranking}`"
        if a.ranking_declared and not a.ranking_note:
            why = f"the dataset's ranking metric, {metric}"
        elif a.ranking_declared:
            why = a.ranking_note
        else:
            why = "the default; these runs name no ranking metric"
        caption = (f"`{a.name}`: every strategy x training modality-dropout rate, ranked by mean {a.score_label} "
                   f"(all modalities present; {why}"
                   + (f"; {a.direction}, so the lowest comes first" if not a.higher_is_better else "") + ")."
                   + (f" Task: {a.task}." if a.task != DEFAULT_TASK else "")
                   + (f" Test {metric_label(lead)} is reported beside it." if lead != a.ranking else "")
                   + f" ± is the half-width of the 95% t-interval over seeds; n = {replicates_word(a.runs)}.")
        if len(a.marked):
            caption += (" Configurations with a mark (last column: collapsed k/n, not converged k/n) are listed after "
                        "the ranked ones without a rank (—) and are never recommended.")
        if references:
            caption += (" Reference predictors on the same test split, not ranked (rank \"ref.\"): "
                        + "; ".join(references) + ".")
        elif not a.judged:
            caption += (" These runs were logged without the collapse and convergence checks or the majority-class "
                        "and chance references: nothing is marked and there are no reference rows.")

        def title(m: str) -> str:
            return f"test {metric_label(m)} (mean ± 95% CI)" if m in with_ci else metric_label(m)

        header, rows, align = self._marks(
            ["rank", "strategy", "family", "train dropout", title(lead), n_header(a.runs)] + [title(m) for m in others]
            + ["robustness", "inference samples/s", "params", memory], "rllrll" + "r" * (len(others) + 4), rows,
            ordered)
        self.cite["leaderboard"] = doc.table(caption, header, rows, align)
        skipped = not_applicable_text(self.parent, a.name)  # strategies whose stated modality limit rules them out
        if skipped:
            doc.para(skipped)
        marked = a.marked
        if len(marked):
            names = ", ".join(config_name(r) for _, r in marked.iterrows())
            doc.para(f"{len(marked)} of {len(a.ranked)} finished configurations are marked ({marked_counts(a)}): "
                     f"{names}. Their numbers are shown but they are not ranked and never named best.")

    def _gain_and_significance(self) -> None:
        a, doc = self.a, self.doc
        ranked = a.ranked
        has_uni = ranked["best_unimodal"].notna().any()
        any_uni = ranked["best_unimodal_any"].iloc[0] if "best_unimodal_any" in ranked and len(ranked) else None
        has_base = (ranked["variant"] == BASELINE).any()
        rows = []
        for _, r in ranked.iterrows():
            test = a.tests.get((r["variant"], r["dropout"]))
            if r["variant"] == BASELINE:
                delta, t, p, n = "baseline", "—", "—", str(r["n"])
            elif test is None:
                delta, t, p, n = "n/a", f"no `{BASELINE}` run at this dropout", "n/a", "0"
            elif test.note:
                delta, t, p, n = signed(test.mean_diff), test.note, untested_p(test), str(test.n)
            else:
                delta = f"{signed(test.mean_diff)} [{signed(test.mean_diff - test.ci_half)}, " \
                        f"{signed(test.mean_diff + test.ci_half)}]"
                t, p, n = f"t({test.df}) = {test.t:.2f}", p_value(test.p), str(test.n)
            rows.append([r["variant"], f"{r['dropout']}", num(r[a.score]), r["best_unimodal_label"] or "n/a",
                         signed(r["fusion_gain"]) if r["family"] != UNIMODAL else "(unimodal)"]
                        + ([signed(r["fusion_gain_any"]) if r["family"] != UNIMODAL else "(unimodal)"]
                           if any_uni else [])
                        + [delta, t, p, "—" if r["variant"] == BASELINE else
                           p_value(test.p_holm) if test is not None else "n/a", n])
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
        doc.para(gain +
                 f"Δ vs `{BASELINE}` = mean over seeds of (strategy − `{BASELINE}`) {score}, paired "
                 f"by {'(fold, seed)' if uses_folds(a.runs) else 'seed'} at the same training dropout, with its 95% CI; test: two-sided **paired t-test**, "
                 f"df = n − 1, n = {'(fold, seed)' if uses_folds(a.runs) else 'seed'} pairs. p is the raw p-value (expect about 1 in 20 below 0.05 by chance); "
                 f"p (Holm) is adjusted with Holm's step-down method over the dataset's "
                 f"{sum(t.p == t.p for t in a.tests.values())} comparisons that have a p-value, which keeps the "
                 "chance of any false positive at 0.05. " + " ".join(notes)
                 + ((" " if notes else "") + "Fusion gain at any dropout = the same difference against one "
                    f"baseline for every row, {any_uni}: the unimodal configuration with the best mean validation "
                    f"{metric_label(a.ranking)} over every training dropout (chosen on the validation split, never "
                    "on test), so a fused model trained with heavy dropout is not compared with a baseline handicapped "
                    "by the same dropout."
                    if any_uni else ""))
        header, rows, align = self._marks(
            ["strategy", "train dropout", score, "best unimodal", "fusion gain"]
            + (["fusion gain vs best unimodal at any dropout"] if any_uni else [])
            + [f"Δ vs {BASELINE} [95% CI]", "paired t-test", "p", "p (Holm)", pairs_header(a.runs)],
            "lrrlr" + ("r" if any_uni else "") + "llrrr", rows, ranked)
        self.cite["significance"] = doc.table(
            f"`{a.name}`: fusion gain over the best unimodal baseline and paired t-test against `{BASELINE}`, "
            f"on {score}" + (" (the ranking metric)." if a.ranking != a.metrics[0] or a.task != DEFAULT_TASK
                             else ".")
            + (" Marked configurations keep their mark here too (last column)." if len(a.marked) else ""),
            header, rows, align)

    def _robustness(self) -> None:
        a, doc = self.a, self.doc
        doc.heading("Robustness to missing modalities", 3)
        heat = robustness_heatmap(a, self._png("robustness_heatmap"))
        reference_name = "majority-class" if a.task == DEFAULT_TASK else REFERENCE_NAMES[a.task] + " predictor's"
        subset_name, curve_name = metric_label(a.subset_metric), metric_label(a.curve_metric)
        subset_reference = a.majority.get(a.subset_metric, float("nan"))
        if heat:
            self.cite["heatmap"] = doc.figure(
                f"Test {subset_name} when only some modalities are available at test time (columns), for the best "
                f"strategies and `{BASELINE}`, per training modality-dropout rate (rows); mean over seeds"
                + ("" if metric_spec(a.subset_metric)[1] else "; lower is better")
                + (f"; {reference_name} {subset_name} {num(subset_reference)}" if subset_reference == subset_reference
                   else "") + ".", heat)
        curves = missing_curves(a, self._png("missing_curves"))
        if curves:
            self.cite["curves"] = doc.figure(
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
        self.cite["robustness"] = doc.table(
            f"`{a.name}`: {curve_name} under missing modalities, sorted by {curve_name} at the highest missing rate"
            + ("" if a.curve_higher_is_better or not rates else " (lowest first: lower is better)")
            + (" (marked configurations last)" if len(a.marked) else "") + ". " + robustness_definition(a),
            *self._marks(["strategy", "train dropout"] + [f"{short} {x}% missing" for x in shown] + ["robustness"]
                         + [f"{s} only{only}" for s in singles], "lr" + "r" * (len(shown) + 1 + len(singles)), rows,
                         ordered))

    def _modality_missing(self) -> None:
        """Imbalanced missingness: robustness and the score at the highest rate when only one modality goes
        missing, per ranked configuration, and their curves (benchmark/reporting/modality_missing.py)."""
        a, doc = self.a, self.doc
        curves = modality_missing(a)
        if curves is None:
            return  # runs logged before the per-modality curves: nothing to show
        doc.heading("Robustness when one modality goes missing", 3)
        top, name = curves.rates[-1], metric_label(curves.metric)
        fig = modality_missing_curves(a, curves, self._png("modality_missing_curves"))
        if fig:
            self.cite["modality_curves"] = doc.figure(
                f"Test {name} as only one modality is removed at test time (each row loses it with that probability; "
                "the others stay present), one panel per modality; the best fused configurations, the best "
                f"`{BASELINE}` (black) and the best unimodal baseline (grey, dotted)"
                + ("" if curves.higher_is_better else f"; {name}: lower is better") + ".", fig)
        rows = [[r["variant"], f"{r['dropout']}", robustness_cell(r)]
                + [num(r[f"robustness:{m}"]) for m in curves.modalities]
                + [num(r[f"{m}:{top}"]) for m in curves.modalities] for _, r in curves.configs.iterrows()]
        self.cite["modality_robustness"] = doc.table(
            f"`{a.name}`: robustness per modality, in leaderboard order: the robustness score (same rule as above, in "
            f"test {name}) when only that modality goes missing at rates 0 to {top}%, next to the score when every "
            f"modality goes missing; then test {name} with only that modality missing from {top}% of the rows. A low "
            "score for one modality means the configuration leans on it.",
            *self._marks(["strategy", "train dropout", "robustness (all missing)"]
                         + [f"robustness ({m} missing)" for m in curves.modalities]
                         + [f"{name}, {m} {top}% missing" for m in curves.modalities],
                         "lr" + "r" * (1 + 2 * len(curves.modalities)), rows, curves.configs))

    def _cost(self) -> None:
        a, doc = self.a, self.doc
        doc.heading(f"{metric_label(a.ranking)[0].upper()}{metric_label(a.ranking)[1:]} against cost", 3)
        fig = accuracy_vs_cost(a, self._png("accuracy_vs_throughput"), "throughput")
        if fig:
            self.cite["throughput"] = doc.figure(
                f"Mean {a.score_label} against inference throughput (256-row batches); circled points joined by the "
                "black line form the Pareto front (no other unmarked configuration is both faster and better"
                + ("" if a.higher_is_better else f"; {a.direction}") + "). "
                "The dashed vertical line is the median throughput used as the cost budget in the summary."
                + self._cost_notes(), fig)
        fig = accuracy_vs_cost(a, self._png("accuracy_vs_memory"), "memory")
        if fig:
            metric = MEMORY_METRICS[a.memory_key]
            self.cite["memory"] = doc.figure(
                f"Mean {a.score_label} against {metric.label}; circled points joined by the black line form the "
                "Pareto front (no other unmarked configuration uses less memory and is better)." + metric.caveat
                + self._cost_notes(), fig)
            # A device reading (not the counted figure) may stand beside runs from the other device.
            mixed = [k for k, other in MEMORY_METRICS.items() if "any" not in (metric.device, other.device)
                     and other.device != metric.device and k in a.runs and a.runs[k].notna().any()]
            if mixed:
                doc.para(f"Some runs logged `{mixed[0]}` instead of `{a.memory_key}` (another device); they are "
                         "left out of the memory figure rather than mixed with it.")
        if not self.cite.get("throughput") and not self.cite.get("memory"):
            doc.para("No throughput or memory figures were logged for this dataset.")

    def _cost_notes(self) -> str:
        a, notes = self.a, ""
        if len(a.marked):
            notes += (" Marked configurations (collapsed or not converged) are drawn as crosses and are never on "
                      "the front.")
        if a.reference_score == a.reference_score:
            name = "majority-class" if a.task == DEFAULT_TASK else REFERENCE_NAMES[a.task]
            notes += f" The dotted horizontal line is the {name} predictor's {a.score_label}."
        return notes

    def _tuning(self) -> None:
        a, doc = self.a, self.doc
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
        self.cite["tuning"] = doc.table(
            f"`{a.name}`: test {name} with the strategy's default hyperparameters and with the Optuna-tuned ones "
            f"(same seeds, same epochs); gain = {gain}, mean ± 95% CI over seeds.",
            *self._marks(["strategy", "train dropout", f"default {name}", f"tuned {name}", "tuning gain", "n"],
                         "lrrrlr", rows, ordered))
        fig = tuning_gain(a, self._png("tuning_gain"))
        if fig:
            self.cite["tuning_fig"] = doc.figure(f"Tuning gain per strategy ({gain.split(' (')[0]} test {name}), "
                                                 "pooled over seeds and training dropout rates.", fig)

    def _training(self) -> None:
        a, doc = self.a, self.doc
        if not a.trained:
            return
        doc.heading("Training: epochs and stopping", 3)
        ranked = a.ranked
        rows = [[r["variant"], f"{r['dropout']}", num(r["epochs_run"], 1), num(r["best_epoch"], 1),
                 r["stop_reasons"] or "n/a", num(r["largest_class_share"]), str(r["n"])] for _, r in ranked.iterrows()]
        self.cite["training"] = doc.table(
            f"`{a.name}`: how long each configuration's tuned retrain ran, mean over seeds: epochs run, the epoch "
            "whose weights were kept (best validation metric), and why the seeds stopped (plateau: early stopping "
            "after the validation metric stopped improving; cap: the profile's epoch cap). A seed stopped by the cap "
            "while still improving is not converged. Largest class share = the fraction of test predictions in "
            "the most-predicted class (near 1: the model predicts one class: collapsed). Same order as the "
            "leaderboard.",
            *self._marks(["strategy", "train dropout", "epochs run (mean)", "best epoch (mean)", "stopped by (seeds)",
                          "largest predicted class share", "n"], "lrrrlrr", rows, ranked))

    def _notes(self) -> None:
        a, doc = self.a, self.doc
        notes = []
        configs = a.configs
        if not configs.empty:
            single = configs[configs["n"] == 1]
            if len(single):
                notes.append(f"{len(single)} configuration(s) have a single finished seed: no confidence interval "
                             "and no paired test is possible for them (marked \"1 seed: no CI\").")
            dead = configs[configs["n"] == 0]
            for _, r in dead.iterrows():
                errors = a.problems[(a.problems["variant"] == r["variant"]) & (a.problems["dropout"] == r["dropout"])]
                first = next((e for e in errors["error"] if e), "no error recorded")
                notes.append(f"`{r['variant']}` (train dropout {r['dropout']}) has no finished run on this dataset "
                             f"({r['n_failed']} failed, {r['n_unfinished']} unfinished): {first}")
            partial = configs[(configs["n"] > 0) & ((configs["n_failed"] + configs["n_unfinished"]) > 0)]
            for _, r in partial.iterrows():
                notes.append(f"`{r['variant']}` (train dropout {r['dropout']}): {r['n']} seed(s) finished, "
                             f"{r['n_failed']} failed, {r['n_unfinished']} unfinished; its mean uses the finished "
                             "seeds only.")
        if notes:
            doc.heading("Missing data", 3)
            doc.bullets(notes)


# ------------------------------------------------------------------ summary
def _stronger_marked_baseline(a: DatasetAnalysis, top) -> str:
    """A sentence when a marked unimodal configuration (never a baseline) beats the baseline the fusion gain
    of ``top`` is measured against at its dropout: the gain would be smaller against it. Else ""."""
    ranked, score = a.ranked, a.score
    base = ranked[(ranked["variant"] == top["best_unimodal"]) & (ranked["dropout"] == top["dropout"])]
    if base.empty:
        return ""
    others = ranked[(ranked["family"] == UNIMODAL) & ranked["marked"] & (ranked["dropout"] == top["dropout"])
                    & ranked[score].notna()]
    stronger = others[a.better(others[score]) > a.better(pd.Series([base[score].iloc[0]])).iloc[0]]
    if stronger.empty:
        return ""
    names = ", ".join(f"{config_name(r)} at {num(r[score])}" for _, r in stronger.iterrows())
    return (f" A marked unimodal configuration scores higher than `{top['best_unimodal']}` "
            f"({num(base[score].iloc[0])}) and so is never the baseline: {names}; against it the gains would be "
            "smaller.")


def summary_items(section: DatasetSection) -> list[str]:
    """The "which strategy to use" claims for one dataset, each citing the table or figure it rests on.
    Only unmarked configurations are ever named best; when every candidate is marked, it says so."""
    a, cite = section.a, section.cite
    items = []
    pick = best_overall(a)
    ranked, trusted, marked = a.ranked, a.trusted, a.marked
    if ranked.empty:
        return [f"No finished runs ({pick.reason})."]
    score, label = a.score, a.score_label
    best = pick.row
    if best is None:
        top = marked.iloc[0]
        items.append(f"**Best overall:** none named: {pick.reason}, so no configuration can be recommended "
                     f"({cite['leaderboard']}). The highest {label}, {num(top[score])}, belongs to a marked "
                     "configuration; train longer or check the data before trusting any result here.")
    else:
        n_note = "" if best["n"] == 1 else f" (n = {best['n']} {replicates_word(a.runs)})"
        lead = a.metrics[0]
        text = (f"**Best overall:** {config_name(best)}, {label} {ci_cell(best, score)}{n_note}"
                + (f" ({a.direction})" if not a.higher_is_better else "")
                + (f", test {metric_label(lead)} {ci_cell(best, lead)}" if score != lead else "")
                + f", rank 1 of {len(trusted)} ranked ({cite['leaderboard']}).")
        if len(trusted) > 1:
            second = trusted.iloc[1]
            text += f" Runner-up: {config_name(second)} at {num(second[score])}."
        test = a.tests.get((best["variant"], best["dropout"]))
        if best["variant"] == BASELINE:
            text += f" It is the `{BASELINE}` baseline itself."
        elif test is None:
            text += f" No `{BASELINE}` run at this dropout to test against."
        elif test.note:
            text += f" Against `{BASELINE}`: Δ {signed(test.mean_diff)}; {test.note} ({cite['significance']})."
        else:
            verdict = "significant" if test.p_holm < ALPHA else "not significant"
            text += (f" Against `{BASELINE}`: Δ {signed(test.mean_diff)}, paired t-test t({test.df}) = {test.t:.2f}, "
                     f"p = {p_value(test.p)} (Holm-adjusted {p_value(test.p_holm)}), n = {test.n} "
                     f"{replicates_word(a.runs)}: {verdict} at {ALPHA} after Holm's correction "
                     f"({cite['significance']}).")
        higher = marked[a.better(marked[score]) > a.better(pd.Series([best[score]])).iloc[0]]
        if len(higher):
            if a.higher_is_better:
                text += (f" {len(higher)} marked configuration(s) score higher (up to {num(higher[score].max())}) "
                         "but are not recommended: see the marks in the leaderboard.")
            else:
                text += (f" {len(higher)} marked configuration(s) score better (down to {num(higher[score].min())}) "
                         "but are not recommended: see the marks in the leaderboard.")
        items.append(text)

    pick, criterion = best_when_missing(a)
    if pick.row is not None:
        r = pick.row
        same = same_config(r, best)
        where = " and ".join(c for c in (cite.get("curves"), cite.get("robustness")) if c) or cite["leaderboard"]
        if criterion.endswith("% missing"):
            column = f"missing:{a.missing_rates[-1]}"
            measured = " (missing-rate curves are logged as accuracy)" if score != a.curve_metric else ""
            criterion = ("lowest " if not a.curve_higher_is_better else "") + criterion
            text = (f"**Best when a modality is often missing:** {config_name(r)}, "
                    f"{'' if criterion.startswith('lowest') else 'highest '}{criterion}{measured}: "
                    f"{num(r[column])}" + (" (it is also the best overall)" if same else
                                           f" (best overall: {num(best[column])})" if best is not None else "")
                    + f"; robustness score {num(r['robustness'])} ({where}).")
        else:
            text = (f"**Best when a modality is often missing:** {config_name(r)}, highest {criterion} "
                    f"{num(r['robustness'])} ({where}).")
        singles = [s for s in a.subsets if len(subset_modalities(s)) == 1]
        if cite.get("heatmap") and singles:
            parts = ", ".join(f"{s} only {num(r[f'subset:{s}'])}" for s in singles)
            text += f" With one modality left it scores {parts} ({cite['heatmap']})."
        items.append(text)
    else:
        items.append(f"**Best when a modality is often missing:** not available ({pick.reason}).")

    pick, median = best_within_budget(a)
    if pick.row is not None:
        r = pick.row
        text = (f"**Best within a cost budget** (inference throughput at or above the median, "
                f"{count(median)} samples/s): {config_name(r)}, {label} {num(r[score])} at "
                f"{count(r['infer_sps'])} samples/s")
        if best is not None:
            text += " (it is also the best overall)" if same_config(r, best) else \
                f" (best overall: {num(best[score])} at {count(best['infer_sps'])} samples/s)"
        text += f" ({cite.get('throughput', cite['leaderboard'])})."
        items.append(text)
    else:
        items.append(f"**Best within a cost budget:** not available ({pick.reason}).")

    fused = ranked[(ranked["family"] != UNIMODAL) & ranked["fusion_gain"].notna()]
    fused_ok = fused[~fused["marked"]]
    if len(fused_ok):
        top = fused_ok.loc[fused_ok["fusion_gain"].idxmax()]
        beats = int((fused_ok["fusion_gain"] > 0).sum())
        unmarked = " unmarked" if len(fused_ok) < len(fused) else ""
        items.append(f"**Fusion gain:** {beats} of {len(fused_ok)}{unmarked} fused configurations beat the best "
                     f"unimodal baseline trained with the same dropout on {label}"
                     + ("" if a.higher_is_better else f" ({a.direction}; gain = unimodal − fused)")
                     + "; the largest gain is "
                     f"{signed(top['fusion_gain'])} for {config_name(top)} over `{top['best_unimodal']}` "
                     f"({cite['significance']}).")
        any_ok = fused_ok[fused_ok["fusion_gain_any"].notna()] if "fusion_gain_any" in fused_ok else fused_ok.iloc[0:0]
        if len(any_ok):  # against one baseline for all: the best unimodal at any dropout, chosen by validation score
            top_any = any_ok.loc[any_ok["fusion_gain_any"].idxmax()]
            items[-1] += (f" Against the best unimodal baseline at any training dropout "
                          f"({top_any['best_unimodal_any']}, chosen by validation score), "
                          f"{int((any_ok['fusion_gain_any'] > 0).sum())} of {len(any_ok)} beat it; the largest gain is "
                          f"{signed(top_any['fusion_gain_any'])} for {config_name(top_any)}.")
        items[-1] += _stronger_marked_baseline(a, top)
    elif len(fused):
        items.append(f"**Fusion gain:** not named: every fused configuration with a unimodal baseline is marked "
                     f"({cite['significance']}).")
    else:
        items.append(f"**Fusion gain:** not available, no finished unimodal baseline ({cite['significance']}).")

    gains = ranked["tuning_gain"].dropna()
    tunable = trusted[trusted["tuning_gain"].notna()]
    if len(gains) and "tuning" in cite and bool((gains.abs() < 5e-4).all()):  # nothing to name at 3 decimals
        items.append(f"**Tuning:** tuning changed nothing: the tuned and the default hyperparameters score the same "
                     f"(to 3 decimals) in all {len(gains)} configurations ({cite['tuning']}).")
    elif len(gains) and "tuning" in cite:
        text = f"**Tuning:** mean gain {signed(float(gains.mean()))} over {len(gains)} configurations; "
        if len(tunable) and tunable["tuning_gain"].max() < 5e-4:
            text += f"no configuration gained from tuning ({cite['tuning']})."
        elif len(tunable):
            top = tunable.loc[tunable["tuning_gain"].idxmax()]
            text += f"largest {signed(top['tuning_gain'])} for {config_name(top)} ({cite['tuning']})."
        else:
            text += f"no largest named, every configuration is marked ({cite['tuning']})."
        items.append(text)

    if a.judged or a.majority:
        name = "majority-class" if a.task == DEFAULT_TASK else REFERENCE_NAMES[a.task]
        refs = [f"{name} {metric_label(m)} {num(a.majority[m])}" for m in a.metrics if m in a.majority]
        refs += [f"chance {metric_label(m)} {num(a.chance[m])}" for m in a.metrics if m in a.chance]
        where = cite["leaderboard"] + (f", {cite['training']}" if "training" in cite else "")
        if len(marked):
            text = (f"**Trust:** {len(marked)} of {len(ranked)} configurations are marked ({marked_counts(a)}) and "
                    "left out of every pick above")
        else:
            text = "**Trust:** no configuration collapsed or stopped at the epoch cap while still improving"
        items.append(text + (f"; references: {', '.join(refs)}" if refs else "") + f" ({where}).")
    return items


# ------------------------------------------------------------------ entry point
def run_description(parent: dict) -> str:
    """"**Run.** commit ..., machine ..., phase times ..." from the matrix's parent run (tags
    env.git_commit, env.machine; metrics phase_seconds.* and wall_seconds, logged when the bench
    finished: a report rebuilt afterwards shows them). Empty when none is known."""
    tags, metrics, config = parent.get("tags", {}), parent.get("metrics", {}), parent.get("config", {})
    parts = []
    commit = tags.get("env.git_commit")
    if commit:
        parts.append(f"commit `{commit[:12]}`" + (" (with uncommitted changes)" if tags.get("env.git_dirty") == "True"
                                                   else ""))
    if tags.get("env.machine"):
        parts.append(f"machine: {tags['env.machine']}")
    phases = {k[len("phase_seconds."):]: v for k, v in metrics.items() if k.startswith("phase_seconds.")}
    if "wall_seconds" in metrics:
        detail = ", ".join(f"{name} {seconds / 60:.1f} min" for name, seconds in phases.items())
        parts.append(f"wall time {metrics['wall_seconds'] / 60:.1f} min" + (f" ({detail})" if detail else ""))
    budget = []
    if config.get("max_tokens") is not None or "max_tokens" in config:
        tokens = config.get("max_tokens")
        budget.append(f"token strategies see {'every token' if tokens is None else f'at most {tokens} tokens'} "
                      f"per modality")
    if config.get("tuning"):
        budget.append(f"tuning {config['tuning'].replace('_', ' ')}")
    if budget:
        parts.append("; ".join(budget))
    return ("**Run.** " + "; ".join(parts) + ".") if parts else ""


def render(runs: MatrixRuns, folder: Path) -> Document:
    doc = Document(f"fusebench report: matrix `{runs.matrix_id}`")
    ok, problems = runs.ok, runs.problems
    datasets = sorted(set(ok["dataset"]) | set(problems["dataset"])) if len(ok) or len(problems) else []
    devices = sorted(set(ok["device"])) if "device" in ok and len(ok) else []
    seeds = sorted(set(ok["seed"])) if len(ok) else []
    n_failed = int((problems["status"] == "failed").sum())
    n_unfinished = len(problems) - n_failed
    doc.para(f"{len(ok)} finished cell runs on {len(datasets)} dataset(s), {n_failed} failed, {n_unfinished} "
             f"unfinished. Device: {', '.join(devices) or 'n/a'}; seeds: {', '.join(map(str, seeds)) or 'n/a'}{folds_note(ok)}. "
             "A configuration is one strategy trained with one modality-dropout rate. Scores are on the test "
             "split with every modality present unless stated; mean over seeds ± half-width of the 95% "
             "t-interval (t(0.975, n−1) · sd / √n), n = number of seeds. Each dataset is ranked by its "
             "ranking metric (by default: accuracy for multiclass, AUROC for binary, micro-F1 for multilabel, MAE "
             "for regression, where lower is better and the lowest ranks first; a card may name another); the "
             "leaderboard caption says which.")
    run_line = run_description(runs.parent)
    if run_line:
        doc.para(run_line)
    summary_at = len(doc.blocks)
    sections = []
    for dataset in datasets:
        section = DatasetSection(doc, analyse(dataset, ok[ok["dataset"] == dataset] if len(ok) else ok,
                                              problems[problems["dataset"] == dataset]), folder,
                                 RunDetails(runs.tracking_uri) if runs.tracking_uri else None, runs.parent)
        section.write()
        sections.append(section)
    summary: list = []
    doc.heading("Which strategy to use", 2, into=summary)
    if any(section.a.judged for section in sections):
        doc.para("**Marks.** Every table of configurations ends with a \"mark\" column: **collapsed k/n** when k of "
                 "the configuration's n finished seeds collapsed (the test predictions are (nearly) all one class, or "
                 "macro-F1 does not beat the majority-class predictor's), **not converged k/n** when k seeds were "
                 "stopped by the epoch cap while the validation metric was still improving. A marked configuration "
                 "keeps its numbers in every table but is never ranked and never named best or recommended; in the "
                 "text it is written with its mark in brackets, and a collapsed one has no robustness score. "
                 "Leaderboards end with the majority-class and chance predictors as unranked reference rows where "
                 "the runs logged them.", into=summary)
    if not sections:
        doc.para("No cell runs were found for this matrix.", into=summary)
    if sections:  # the verdict over datasets (ranks, Friedman, CD diagram) before the per-dataset claims
        write_cross_dataset(doc, [section.a for section in sections], folder, into=summary)
    for section in sections:
        if len(sections) > 1:
            doc.heading(f"`{section.a.name}`", 3, into=summary)
        doc.bullets(summary_items(section), into=summary)
    if len(seeds) < 2 and len(ok) and not uses_folds(ok):
        doc.para("Only one seed was run: no confidence intervals or significance tests are possible; the ranking "
                 "may be noise. Run more seeds (`--seeds 0,1,2`) for claims that hold.", into=summary)
    doc.blocks[summary_at:summary_at] = summary
    if len(problems):
        doc.heading("Failed and unfinished cells", 2)
        doc.table("Cells without a finished result (failed: the error; unfinished: still running or interrupted).",
                  ["dataset", "strategy", "train dropout", "seed", "status", "error"],
                  [[r["dataset"], r["variant"], r["dropout"],
                    str(r["seed"]) if r["seed"] >= 0 else "?", r["status"], r["error"] or "—"]
                   for _, r in problems.sort_values(["dataset", "variant", "dropout", "seed"]).iterrows()], "lllrll")
    return doc


class EmptyReport(LookupError):
    """The matrix has no finished cell run: no report is written and reports/latest is left as it was."""


def build_report(tracking_uri: str, matrix_id: str | None = None, out_root: Path | None = None) -> tuple[Path, str]:
    """Write reports/<matrix id>/{report.md, report.html, *.png}, point reports/latest at it,
    return (folder, markdown text). Raises EmptyReport, writing nothing, when the matrix has no finished run."""
    runs = fetch_matrix(tracking_uri, matrix_id)
    root = Path(out_root) if out_root is not None else reports_dir()
    if runs.ok.empty:
        failed = int((runs.problems["status"] == "failed").sum())
        latest = root / "latest"
        kept = f"{latest} still points at {os.readlink(latest)}" if latest.is_symlink() else f"no {latest} written"
        first = next((e for e in runs.problems["error"] if e), "")
        raise EmptyReport(f"matrix {runs.matrix_id} has no finished cell run in {tracking_uri} ({failed} failed, "
                          f"{len(runs.problems) - failed} unfinished): no report written, {kept}"
                          + (f"; first error: {first[:200]}" if first else ""))
    folder = root / runs.matrix_id
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):  # figures of an earlier build that may no longer apply
        old.unlink()
    doc = render(runs, folder)
    text = doc.to_markdown()
    (folder / "report.md").write_text(text, encoding="utf-8")
    (folder / "report.html").write_text(doc.to_html(), encoding="utf-8")
    _point_latest(root, runs.matrix_id)
    return folder, text


def _point_latest(root: Path, name: str) -> None:
    latest, tmp = root / "latest", root / ".latest.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(name, tmp)
    os.replace(tmp, latest)

