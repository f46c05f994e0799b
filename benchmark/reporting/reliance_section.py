"""Modality reliance, in one dataset's section: whether a fused model reads every modality or leans on
one. A table, per leading configuration and modality, of the drop in the ranking metric when that
modality is permuted across the test rows and when it is removed, with the equity index; and the
call-out of the fused configurations that rely almost entirely on one modality (verdicts.OneModality,
in words by summary.reliance_text). Left out where no run logged reliance (older stores)."""

from __future__ import annotations

from benchmark.reporting.analysis import BASELINE, metric_label
from benchmark.reporting.numbers import num, signed
from benchmark.reporting.reliance import reliance_table
from benchmark.reporting.section_context import SectionContext
from benchmark.reporting.summary import reliance_text

DEFINITIONS = ("Permuted: the drop in the ranking metric when that modality's inputs (and whether each row has it) are "
               "shuffled across the test rows, the other modalities left in place (mean of 3 fixed permutations): "
               "how much the model reads it. Removed: the drop when that modality is taken away from every row (the "
               "score of the other modalities alone). Both are positive when the score gets worse, whatever the "
               "metric's direction; about 0 means the model does without it. Equity: how evenly the model relies on "
               "its modalities, the normalised entropy of their shares of the positive permutation drops (1 = evenly, "
               "0 = on one only; n/a when no permutation hurts). Reported only, never used to rank or pick.")


def write_reliance(section: SectionContext) -> None:
    a, doc = section.a, section.doc
    table = reliance_table(a)
    if table is None:
        return
    doc.heading("Modality reliance", 3)
    shown = table.shown()
    modalities = table.modalities
    rows = [[r["variant"], f"{r['dropout']}"]
            + [signed(r[f"{kind}:{m}"]) for m in modalities for kind in ("permuted", "removed")] + [num(r["equity"], 2)]
            for _, r in shown.iterrows()]
    header = (["strategy", "train dropout"] + [f"{m} {kind}" for m in modalities for kind in ("permuted", "removed")]
              + ["equity"])
    section.cite["reliance"] = doc.table(
        f"`{a.name}`: drop in test {metric_label(a.ranking)} when each modality is permuted across the test rows or "
        f"removed, for the best configuration of each leading fused strategy and `{BASELINE}`, in leaderboard order; "
        "mean over seeds. " + DEFINITIONS,
        *section.marks(header, "lr" + "r" * (2 * len(modalities) + 1), rows, shown))
    if section.reliance is not None:
        doc.para(reliance_text(section.reliance, {}))
