"""Write the comparison report: fetch the matrix's runs from MLflow, analyse each dataset, compute
the verdicts, render them with the tables and figures into one document, and write report.md,
report.html and the PNGs to reports/<matrix id>/, pointing reports/latest at it. Each step has its
own module: fetch, analysis, verdicts, render (with the section modules and summary)."""

from __future__ import annotations

import os
from pathlib import Path

from benchmark.paths import reports_dir
from benchmark.reporting.analysis import analyse_matrix
from benchmark.reporting.fetch import fetch_matrix
from benchmark.reporting.render import render
from benchmark.reporting.row_predictions import PredictionStore
from benchmark.reporting.verdicts import report_verdicts


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
    analyses = analyse_matrix(runs.ok, runs.problems)
    doc = render(runs, analyses, report_verdicts(analyses, PredictionStore(tracking_uri)), folder)
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

