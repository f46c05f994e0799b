"""What a configuration's replicates are in a report: its seeds, or with k-fold
cross-validation its (fold, seed) pairs. Means and confidence intervals run over the
replicates, and paired tests pair two configurations' runs on the same replicate. Runs
logged without a `fold` param (every run before k-fold, and every fixed-split run) are
replicated by seed alone, exactly as before."""

from __future__ import annotations

import pandas as pd

from benchmark.vocabulary import FOLD


def uses_folds(runs: pd.DataFrame) -> bool:
    """Whether any of these runs is one fold of a k-fold cross-validation."""
    return FOLD in runs.columns and bool(runs[FOLD].notna().any())


def replicate_keys(runs: pd.DataFrame) -> list[str]:
    """The columns that identify a replicate: ["fold", "seed"] with k-fold, else ["seed"]."""
    return [FOLD, "seed"] if uses_folds(runs) else ["seed"]


def fold_count(runs: pd.DataFrame) -> int:
    """How many distinct folds these runs cover (0 without k-fold)."""
    return int(runs[FOLD].dropna().nunique()) if uses_folds(runs) else 0


def replicates_word(runs: pd.DataFrame) -> str:
    """How the report names n: "seeds", or "runs (folds x seeds)" with k-fold."""
    return "runs (folds x seeds)" if uses_folds(runs) else "seeds"


def n_header(runs: pd.DataFrame) -> str:
    """The leaderboard's n column: "seeds (n)", or "runs (n = folds x seeds)" with k-fold."""
    return "runs (n = folds x seeds)" if uses_folds(runs) else "seeds (n)"


def pairs_header(runs: pd.DataFrame) -> str:
    """The significance table's n column: "n (seed pairs)", or "n ((fold, seed) pairs)"."""
    return "n ((fold, seed) pairs)" if uses_folds(runs) else "n (seed pairs)"


def folds_note(runs: pd.DataFrame) -> str:
    """For the report's opening line: "; k-fold cross-validation: K folds, n = folds x seeds
    (replicates are (fold, seed) pairs)", or "" without k-fold."""
    if not uses_folds(runs):
        return ""
    return (f"; k-fold cross-validation (up to {fold_count(runs)} folds): on such a dataset a configuration's n "
            "counts its (fold, seed) runs, which its means, CIs and paired tests run over")
