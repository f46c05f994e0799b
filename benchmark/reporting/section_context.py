"""What every part of a dataset's section writes into and reads from: the document, the dataset's
analysis, the folder the figures go to, and `cite`, which table or figure holds what (the
summary's claims cite them: "leaderboard" -> "Table 3")."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from benchmark.reporting.analysis import DatasetAnalysis, mark_text
from benchmark.reporting.bayesian import BayesComparisons
from benchmark.reporting.details import RunDetails
from benchmark.reporting.document import Document
from benchmark.reporting.uncertainty import DatasetUncertainty
from benchmark.reporting.verdicts import CalibrationDrift, OneModality


@dataclass
class SectionContext:
    doc: Document
    a: DatasetAnalysis
    folder: Path
    details: RunDetails | None = None  # per-run artifacts and curves, fetched for the runs shown (None: no store)
    parent: dict = field(default_factory=dict)  # the matrix's parent run (tags, config): strategies not applicable
    cite: dict[str, str] = field(default_factory=dict)
    bayes: BayesComparisons | None = None  # the dataset's Bayesian comparisons with concat (its verdict)
    calibration: CalibrationDrift | None = None  # the dataset's calibration verdict (None: no calibration logged)
    uncertainty: DatasetUncertainty | None = None  # intervals and comparisons over test rows and seeds
    reliance: OneModality | None = None  # the dataset's reliance verdict (None: no reliance logged)

    def png(self, stem: str) -> Path:
        return self.folder / f"{_slug(self.a.name)}_{stem}.png"

    def marks(self, header: list[str], align: str, rows: list[list[str]], frame: pd.DataFrame
              ) -> tuple[list[str], list[str], str]:
        """Add the "mark" column (last) to a table of configurations when the runs were checked:
        "collapsed k/n", "not converged k/n" or empty. Rows beyond the frame (references) get none."""
        if not self.a.judged:
            return header, rows, align
        marks = [mark_text(r) for _, r in frame.iterrows()]
        rows = [row + [marks[i] if i < len(marks) else ""] for i, row in enumerate(rows)]
        return header + ["mark"], rows, align + "l"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)
