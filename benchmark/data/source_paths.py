"""Where a card's ``source.local`` paths point: one rule for loading the files and for
fingerprinting them (benchmark/data/loading.py, benchmark/data/fingerprint.py)."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_source_path(base: Path, value: str) -> Path:
    """``value`` with ``~`` and ``$VARS`` expanded; a relative path joined to ``base`` (the card's
    folder), resolved."""
    path = Path(os.path.expandvars(os.path.expanduser(value)))
    return path if path.is_absolute() else (base / path).resolve()
