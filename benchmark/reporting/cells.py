"""How a configuration and its numbers are written in the report's tables and sentences: its name
with its marks, a mean with its 95% half-width, the robustness cell, the seeds cell, the p cell of
a test that could not run. Shared by the per-dataset sections and the summary."""

from __future__ import annotations

import pandas as pd

from benchmark.reporting.analysis import mark_text
from benchmark.reporting.numbers import num


def estimate_text(mean: float, ci_half: float, n: int) -> str:
    """Mean ± 95% half-width; "(1 seed: no CI)" with one replicate; "n/a" without a value."""
    if mean != mean:
        return "n/a"
    if n == 1:
        return f"{num(mean)} (1 seed: no CI)"
    return f"{num(mean)} ± {num(ci_half)}"


def ci_cell(row, key: str = "accuracy") -> str:
    """Mean ± 95% half-width of a configs column ("accuracy", "macro_f1") that has a "<key>_ci"."""
    if row["n"] == 0:
        return no_result(row)
    return estimate_text(row[key], row[key + "_ci"], row["n"])


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
    """"`fancy` (train dropout 0.3) [collapsed 1/3]" from a configs row or any mapping with the same keys."""
    mark = mark_text(row)
    return f"`{row['variant']}` (train dropout {row['dropout']})" + (f" [{mark}]" if mark else "")


def seeds_cell(row) -> str:
    extra = []
    if row["n_failed"]:
        extra.append(f"{row['n_failed']} failed")
    if row["n_unfinished"]:
        extra.append(f"{row['n_unfinished']} unfinished")
    return f"{row['n']}" + (f" ({', '.join(extra)})" if extra else "")


def marked_last(frame: pd.DataFrame, column: str, higher_is_better: bool = True) -> pd.DataFrame:
    """Rows by `column` (best first: highest, or lowest when lower is better), unmarked configurations
    before marked ones."""
    return frame.sort_values(["marked", column], ascending=[True, not higher_is_better], na_position="last")
