"""Third-party output off unless ``--verbose``: the terminal shows fusebench's own progress
(benchmark/progress.py) and results, not Hugging Face ``datasets`` bars ("Map", "Saving the
dataset"), transformers "Loading weights" bars, library INFO logs or third-party warnings.

Set through environment variables too, so libraries imported later and the Ray worker processes
of the local instance that `bench --workers N` starts (they inherit the environment) stay as quiet, or as
verbose (``FUSEBENCH_VERBOSE=1``), as the command that started them."""

from __future__ import annotations

import logging
import os
import sys
import warnings

VERBOSE_ENV = "FUSEBENCH_VERBOSE"

# Read by the libraries when they are imported (and inherited by worker processes).
QUIET_ENV = {
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",  # its fork warning
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # a cell copied from another matrix downloads its artifacts
}
QUIET_LOGGERS = ("mlflow", "alembic", "optuna", "transformers", "datasets", "huggingface_hub", "urllib3",
                 "matplotlib", "PIL", "torch", "filelock", "fsspec")
OWN_MODULES = r"(benchmark|strategies)(\..*)?$"  # fusebench's own warnings always show


def is_verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def configure(verbose: bool = False) -> None:
    """Quiet third-party output (``verbose`` false, unless $FUSEBENCH_VERBOSE is set), or leave it all on."""
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
    if is_verbose():
        return
    for name, value in QUIET_ENV.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=OWN_MODULES)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    # Libraries imported already read their settings at import: switch them off directly too.
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
        sys.modules["datasets"].utils.logging.set_verbosity_error()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
        sys.modules["transformers"].utils.logging.set_verbosity_error()
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
