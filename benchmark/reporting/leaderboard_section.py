"""A dataset's opening tables: the rows present per combination of modalities in the data itself,
then the leaderboard (every configuration, ranked ones first, then the reference predictors) and
the list of marked configurations."""

from __future__ import annotations

import pandas as pd

from benchmark.reporting.analysis import DEFAULT_TASK, MEMORY_METRICS, REFERENCE_NAMES, marked_counts, metric_label
from benchmark.reporting.cells import ci_cell, config_name, robustness_cell, seeds_cell
from benchmark.reporting.more_modalities import not_applicable_text
from benchmark.reporting.numbers import count, num
from benchmark.reporting.replicates import n_header, replicates_word
from benchmark.reporting.section_context import SectionContext
from benchmark.vocabulary import RANKING_METRIC, subset_label, subset_modalities


def write_data_rows(section: SectionContext) -> None:
    """How many rows of each split have each combination of modalities present in the data itself
    (before any dropout or test-time removal), from the `data_rows.<split>.<mods>` metrics."""
    a, doc = section.a, section.doc
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
    section.cite["data_rows"] = doc.table(
        f"`{a.name}`: rows per split by the modalities present in the data itself (a null cell or an absent "
        "file leaves a modality absent; nothing is imputed). Training and evaluation mask the absent ones; the "
        "modality dropout and the test-time missing rates of the tables below remove inputs on top of these.",
        ["modalities present"] + splits, rows, "l" + "r" * len(splits))


def write_leaderboard(section: SectionContext) -> None:
    a, configs = section.a, section.a.configs
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
    if a.zero_shot_adapted:
        references.append("zero-shot CLIP adapted (the same, after fine-tuning the CLIP model on the training split's "
                          "image-text pairs with its contrastive loss, stopped on the validation pairs)")
        rows.append(reference_row("zero-shot CLIP adapted", a.zero_shot_adapted))
    doc = section.doc
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

    header, rows, align = section.marks(
        ["rank", "strategy", "family", "train dropout", title(lead), n_header(a.runs)] + [title(m) for m in others]
        + ["robustness", "inference samples/s", "params", memory], "rllrll" + "r" * (len(others) + 4), rows,
        ordered)
    section.cite["leaderboard"] = doc.table(caption, header, rows, align)
    skipped = not_applicable_text(section.parent, a.name)  # strategies whose stated modality limit rules them out
    if skipped:
        doc.para(skipped)
    marked = a.marked
    if len(marked):
        names = ", ".join(config_name(r) for _, r in marked.iterrows())
        doc.para(f"{len(marked)} of {len(a.ranked)} finished configurations are marked ({marked_counts(a)}): "
                 f"{names}. Their numbers are shown but they are not ranked and never named best.")
