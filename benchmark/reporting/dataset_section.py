"""One dataset's section of the report, in order: data rows, leaderboard, fusion gain and
significance (and the Bayesian comparison with concat), gain over the best pair, robustness, training rate against test rate, per-modality robustness,
calibration under missingness, modality reliance, missing-input technique,
fine-tuning, cost, energy and size, tuning, training, per-class figures, and the missing data. Each part lives in its own module;
this one sets the order and remembers (in the SectionContext) which table or figure holds what, for
the summary."""

from __future__ import annotations

from benchmark.reporting.bayes_section import write_bayes_dataset
from benchmark.reporting.calibration_section import write_calibration
from benchmark.reporting.cost_section import write_cost, write_training, write_tuning
from benchmark.reporting.energy_section import write_energy
from benchmark.reporting.finetune_comparison import write_finetune
from benchmark.reporting.gain_section import write_gain_and_significance, write_missing_technique, write_pair_gain
from benchmark.reporting.leaderboard_section import write_data_rows, write_leaderboard
from benchmark.reporting.perclass import write_per_class
from benchmark.reporting.rate_heatmap import write_rate_heatmap
from benchmark.reporting.reliance_section import write_reliance
from benchmark.reporting.robustness_section import write_modality_missing, write_robustness
from benchmark.reporting.section_context import SectionContext


def write_dataset_section(section: SectionContext) -> None:
    doc, a = section.doc, section.a
    doc.heading(f"Dataset `{a.name}`", 2)
    write_data_rows(section)
    if a.configs.empty or not (a.configs["n"] > 0).any():
        doc.para("No finished runs for this dataset: nothing to compare (see the failed and unfinished cells below).")
        write_missing_data_notes(section)
        return
    write_leaderboard(section)
    write_gain_and_significance(section)
    write_bayes_dataset(section)
    write_pair_gain(section)
    write_robustness(section)
    write_rate_heatmap(section)
    write_modality_missing(section)
    write_calibration(section)
    write_reliance(section)
    write_missing_technique(section)
    write_finetune(section)
    write_cost(section)
    write_energy(section)
    write_tuning(section)
    write_training(section)
    if section.details is not None:  # confusion matrices and learning curves (reporting/perclass.py)
        write_per_class(doc, a, section.png, section.cite, section.details)
    write_missing_data_notes(section)


def write_missing_data_notes(section: SectionContext) -> None:
    a, doc = section.a, section.doc
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
