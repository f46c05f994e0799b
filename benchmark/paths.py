"""Where fusebench keeps its working files. Everything lives under one state directory
(``.fusebench/`` in the repository by default, ``FUSEBENCH_HOME`` to move it)."""

from __future__ import annotations

import os
import tempfile
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


def models_dir() -> Path:
    """Model weights fusebench trains itself (a CLIP adapted to a card's pairs), ``FUSEBENCH_MODELS`` to move them."""
    return Path(os.environ.get("FUSEBENCH_MODELS", state_dir() / "models"))


def default_tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{REPO_ROOT / 'mlruns.db'}"


def default_optuna_storage() -> str:
    return os.environ.get("FUSEBENCH_OPTUNA_STORAGE") or f"sqlite:///{state_dir() / 'optuna.db'}"


def reports_dir() -> Path:
    return Path(os.environ.get("FUSEBENCH_REPORTS", REPO_ROOT / "reports"))


def cards_dir() -> Path:
    """Dataset cards: ``datasets/`` in the repository, or ``FUSEBENCH_DATASETS``."""
    return Path(os.environ.get("FUSEBENCH_DATASETS", REPO_ROOT / "datasets"))


class FolderError(ValueError):
    """A folder fusebench must write to cannot be created or written: one line, exit 2, at once
    (not a traceback after the matrix is registered and the data encoded)."""


def writable_folder(path: Path, what: str) -> Path:
    """``path``, created if missing and checked by writing a probe file into it (``os.access``
    says yes to root even where nothing can be created, e.g. under /proc). Raises FolderError
    naming ``what`` (the variable or flag that chose the folder)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        at = f": {exc.filename}" if exc.filename and str(exc.filename) != str(path) else ""
        raise FolderError(f"{what}: cannot create or write the folder {path} ({reason}{at})") from None
    return path


def env_or(variable: str, description: str) -> str:
    """How an error names a folder: the environment variable when it is set, else what it is."""
    return f"${variable}" if os.environ.get(variable) else f"{description} (set ${variable} to move it)"
