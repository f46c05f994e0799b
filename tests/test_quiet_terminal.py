"""A quiet terminal: each frozen encoder network is loaded once per process (not once per split),
third-party output is off unless --verbose, and the flag is accepted by bench, worker and data."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from benchmark.cli import build_parser
from benchmark.features import model_cache
from benchmark.paths import REPO_ROOT


def test_the_text_and_image_encoders_load_once_for_all_splits(toy_card):
    from benchmark.data.cards import load_card
    from benchmark.features.tensors import build_features

    model_cache.clear()
    model_cache.loads.clear()
    features = build_features(load_card(toy_card), log=lambda *_: None)  # cold cache: encodes 3 splits x 2 modalities
    assert set(features.splits_on("cpu")) >= {"train", "validation", "test"}
    text = [k for k in model_cache.loads if k[0] == "text"]
    image = [k for k in model_cache.loads if k[0] == "efficientnet_lite0"]
    assert len(text) == 1 and len(image) == 1, dict(model_cache.loads)
    assert model_cache.loads[text[0]] == 1 and model_cache.loads[image[0]] == 1  # not 3 (one per split)


def test_the_cache_loads_again_after_clear_and_drops_the_oldest_beyond_its_size():
    model_cache.clear()
    model_cache.loads.clear()
    made = []
    load = lambda key: (lambda: made.append(key) or key)  # noqa: E731
    assert model_cache.cached_model("a", load("a")) == "a"
    assert model_cache.cached_model("a", load("a")) == "a"
    assert made == ["a"]
    for key in "bcde":  # MAX_MODELS = 4: "a" is the least recently used and goes
        model_cache.cached_model(key, load(key))
    model_cache.cached_model("a", load("a"))
    assert made == ["a", "b", "c", "d", "e", "a"] and model_cache.loads["a"] == 2
    model_cache.clear()


@pytest.mark.parametrize("command", [["bench"], ["data"]])
def test_verbose_is_accepted(command):
    assert build_parser().parse_args([*command, "--verbose"]).verbose is True
    assert build_parser().parse_args(command).verbose is False


QUIET_PROBE = """
import sys, warnings
from benchmark.cli import main
from benchmark.quiet import configure
configure(verbose="--verbose" in sys.argv)
import datasets, transformers
print("datasets bars", "off" if datasets.is_progress_bar_enabled() is False else "on")
print("transformers bars", "on" if transformers.utils.logging.is_progress_bar_enabled() else "off")
warnings.warn_explicit("third-party says hi", UserWarning, "thirdparty.py", 1, module="thirdparty")
warnings.warn_explicit("fusebench says hi", UserWarning, "x.py", 1, module="benchmark.x")
"""


@pytest.mark.parametrize("verbose", [False, True])
def test_third_party_bars_and_warnings_are_off_unless_verbose(verbose):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "FUSEBENCH_VERBOSE"))}
    env.pop("PYTHONWARNINGS", None)
    done = subprocess.run([sys.executable, "-c", QUIET_PROBE, *(["--verbose"] if verbose else [])], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    state = "on" if verbose else "off"
    assert f"datasets bars {state}" in done.stdout and f"transformers bars {state}" in done.stdout
    assert ("third-party says hi" in done.stderr) == verbose
    assert "fusebench says hi" in done.stderr  # fusebench's own warnings always show
