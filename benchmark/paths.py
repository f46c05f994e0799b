"""Where fusebench keeps its working files. Everything lives under one state directory
(``.fusebench/`` in the repository by default, ``FUSEBENCH_HOME`` to move it)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def state_dir() -> Path:
    return Path(os.environ.get("FUSEBENCH_HOME", REPO_ROOT / ".fusebench"))


def data_dir() -> Path:
    return state_dir() / "data"


def downloads_dir() -> Path:
    return state_dir() / "downloads"


def cache_dir() -> Path:
    return Path(os.environ.get("FUSEBENCH_CACHE", state_dir() / "features"))


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{REPO_ROOT / 'mlruns.db'}"


def default_optuna_storage() -> str:
    return os.environ.get("FUSEBENCH_OPTUNA_STORAGE") or f"sqlite:///{state_dir() / 'optuna.db'}"


def reports_dir() -> Path:
    return Path(os.environ.get("FUSEBENCH_REPORTS", REPO_ROOT / "reports"))


def cards_dir() -> Path:
    """Dataset cards: ``datasets/`` in the repository, or ``FUSEBENCH_DATASETS``."""
    return Path(os.environ.get("FUSEBENCH_DATASETS", REPO_ROOT / "datasets"))
