"""The results schema shared by the writer (tracking) and the reader (reporting): the MLflow
experiment, the tag names, and how metric names encode modality subsets and missing rates.
Plain Python only: reporting imports it where torch is not installed."""

from __future__ import annotations

EXPERIMENT = "fusebench"
TAG_KIND, TAG_MATRIX, TAG_CELL, TAG_STATUS, TAG_ERROR = (
    "fusebench.kind", "fusebench.matrix_id", "fusebench.cell_hash", "fusebench.status", "fusebench.error")

# Per-subset and per-missing-rate test accuracies: "test_accuracy_subset.image-text",
# "test_accuracy_missing.30". MLflow metric names cannot hold "+", so a subset's modalities
# are joined with "-" (card loading allows only letters, digits and "_" in modality names).
SUBSET_PREFIX, MISSING_PREFIX = "test_accuracy_subset.", "test_accuracy_missing."
SUBSET_SEPARATOR = "-"


def subset_metric(modalities: tuple[str, ...] | list[str]) -> str:
    """("image", "text") -> "test_accuracy_subset.image-text"."""
    return SUBSET_PREFIX + SUBSET_SEPARATOR.join(modalities)


def subset_modalities(suffix: str) -> list[str]:
    """The modalities of a subset metric's suffix: "image-text" -> ["image", "text"]."""
    return suffix.split(SUBSET_SEPARATOR)


def subset_label(suffix: str) -> str:
    """A subset for people: "image-text" -> "image + text"."""
    return " + ".join(subset_modalities(suffix))


def missing_metric(rate: float) -> str:
    """0.3 -> "test_accuracy_missing.30" (the rate in whole percent, two digits at least)."""
    return f"{MISSING_PREFIX}{int(round(rate * 100)):02d}"
