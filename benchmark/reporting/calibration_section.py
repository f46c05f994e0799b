"""Calibration under missing modalities, in one dataset's section: whether the leading
configurations' confidence stays honest as modalities go missing at test time. A figure of ECE
against the missing rate, a table of ECE, NLL and Brier score on the full input and at half the
inputs missing, and the call-out of the configurations whose ECE more than doubles
(verdicts.CalibrationDrift, in words by summary.calibration_text). Left out where no run logged
calibration (older stores, regression)."""

from __future__ import annotations

from benchmark.reporting.analysis import BASELINE
from benchmark.reporting.calibration_curves import calibration_curves
from benchmark.reporting.calibration_figure import ece_curves
from benchmark.reporting.numbers import num
from benchmark.reporting.section_context import SectionContext
from benchmark.reporting.summary import calibration_text

DEFINITIONS = ("ECE: expected calibration error over 15 equal-width confidence bins (the gap between "
               "confidence and accuracy, weighted by the rows in each bin; top-label for multiclass and binary); NLL: "
               "mean negative log-likelihood of the true label (natural log); Brier: mean squared gap between the "
               "predicted probabilities and the truth (multiclass: summed over the classes, 0 to 2; binary and "
               "multilabel: of the positive probability, 0 to 1). Lower is better for all three; they are reported, "
               "never used to rank or pick.")


def write_calibration(section: SectionContext) -> None:
    a, doc = section.a, section.doc
    curves = calibration_curves(a)
    if curves is None:
        return
    doc.heading("Calibration under missing modalities", 3)
    rate = curves.middle_rate
    fig = ece_curves(a, curves, section.png("calibration_curves"))
    if fig:
        section.cite["calibration_curves"] = doc.figure(
            "Expected calibration error (15 bins) against the test-time missing rate (each modality of each row "
            f"removed with that probability, at least one kept), for the best configuration of each leading fused "
            f"strategy and `{BASELINE}` (black); mean over seeds, lower is better.", fig)
    shown = curves.shown()
    rows = [[r["variant"], f"{r['dropout']}"] + [num(r[f"{c}:{x}"]) for c in ("ece", "nll", "brier")
                                                  for x in ("full", rate)] for _, r in shown.iterrows()]
    header = ["strategy", "train dropout"] + [f"{name}{'' if x == 'full' else f' {rate}% missing'}"
                                              for name in ("ECE", "NLL", "Brier") for x in ("full", rate)]
    section.cite["calibration"] = doc.table(
        f"`{a.name}`: calibration on the full input and with {rate}% of the modalities missing at test time, for the "
        f"best configuration of each leading fused strategy and `{BASELINE}`, in leaderboard order; mean over "
        "seeds. " + DEFINITIONS,
        *section.marks(header, "lr" + "r" * 6, rows, shown))
    if section.calibration is not None:
        doc.para(calibration_text(section.calibration, {}))
