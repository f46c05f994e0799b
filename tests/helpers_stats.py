"""Statistics by hand, to check the report's against published worked examples."""

from __future__ import annotations

from typing import Sequence


def friedman_chi2_from_ranks(mean_ranks: Sequence[float], n: int) -> float:
    """Friedman's chi2_F from the average ranks of k strategies over n datasets, without the tie
    correction (Demsar 2006, section 3.2.2): what his worked example gives from the ranks alone."""
    k = len(mean_ranks)
    return 12 * n / (k * (k + 1)) * (sum(r * r for r in mean_ranks) - k * (k + 1) ** 2 / 4)
