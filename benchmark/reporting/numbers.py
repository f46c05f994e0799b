"""How the report writes numbers: scores, signed differences, counts and p-values ("n/a" for a
missing value, never "nan"). One place for every table and sentence of the report."""

from __future__ import annotations


def num(value, digits: int = 3) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def signed(value, digits: int = 3) -> str:
    return "n/a" if value is None or value != value else f"{value:+.{digits}f}"


def count(value) -> str:
    return "n/a" if value is None or value != value else f"{value:,.0f}"


def p_value(p: float) -> str:
    if p != p:
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"
