"""Defects a code review found, each pinned by a test that failed before its fix."""

from __future__ import annotations

import multiprocessing
import time
from dataclasses import replace

import pytest
import torch

from tests.helpers_cells import run_cell
from tests.test_encoders_extra import _trainable_features


def test_run_cell_through_a_trainable_encoder():
    """Defect 1: every cell of a card with the trainable small_cnn encoder failed after training
    (the per-cell protocol read the strategy's family from the wrapper, which lacked it)."""
    import optuna

    from benchmark.train.cell import CellBudget
    from benchmark.train.results import Cell

    features = _trainable_features()
    study = optuna.create_study(direction="maximize")
    result = run_cell(Cell("t", "concat", "concat", 0.0, 0), features, features.splits, study, CellBudget(2, 16, False, "cpu"))
    assert result.family == "early"
    assert 0.0 <= result.scores["accuracy"] <= 1.0 and result.param_count > 0


def test_cuda_clock_and_memory_calls_name_the_device(monkeypatch):
    """Defect 3: with --device cuda:1, synchronisation and peak memory read the current GPU (0)."""
    from benchmark.train import device as device_module
    from benchmark.train.cost import PeakMemory

    calls = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(("sync", device)))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append(("reset", device)))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated",
                        lambda device=None: calls.append(("peak", device)) or 3 * 2**20)
    with PeakMemory("cuda:1") as memory:
        pass
    device_module.synchronize("cuda:1")
    assert memory.metrics() == {"peak_gpu_mem_mb": 3.0}
    assert [c[0] for c in calls] == ["sync", "reset", "sync", "peak", "sync"]
    assert all(c[1] == torch.device("cuda:1") for c in calls), calls


def test_any_error_of_a_plugin_strategy_is_a_failed_trial():
    """Defect 4: tuning caught only RuntimeError and ValueError; any other error of a (plugin)
    strategy killed the worker. It is now recorded as a failed trial."""
    import optuna
    from torch import nn

    from benchmark.train.loop import TrainConfig
    from benchmark.train.tuning import load_study, run_trial_slot
    from strategies import STRATEGIES, register_strategy
    from strategies.base import FusionStrategy

    @register_strategy("test_key_error")
    class KeyErrorStrategy(FusionStrategy):
        """Raises KeyError in forward (test only; no paper)."""
        family, description, paper = "early", "KeyError in forward", "none (test)"

        def __init__(self, input_dims, num_classes, **hparams):
            super().__init__(input_dims, num_classes, **hparams)
            self.head = nn.Linear(1, num_classes)

        def forward(self, inputs, present, token_mask=None):
            raise KeyError("a plugin bug")

    try:
        features = replace(_trainable_features(), front_ends={})  # pooled features only
        study = load_study("keyerror", optuna.storages.InMemoryStorage(), 1)
        trial = run_trial_slot(study, 0, "test_key_error", {}, features, features.splits["train"],
                               features.splits["validation"], TrainConfig(epochs=1, batch_size=16))
        assert trial is not None and trial.state == optuna.trial.TrialState.FAIL
    finally:
        STRATEGIES.remove("test_key_error")


@pytest.mark.parametrize("name", ["image-2", "a+b", "text 2"])
def test_modality_names_are_letters_digits_underscores(tmp_path, name):
    """Defect 5: '-' or '+' in a modality name broke the report's subset parsing."""
    from benchmark.data.cards import CardError, load_card

    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\nsource: {{local: {{format: csv, data_files: x.csv}}}}\nlabel: y\n"
                    f"modalities:\n  '{name}': {{column: a, encoder: tabular}}\n  ok_2: {{column: b, encoder: tabular}}\n")
    with pytest.raises(CardError) as info:
        load_card(path)
    assert str(path) in str(info.value) and f"modalities.{name}" in str(info.value)
    assert "letters, digits and underscores" in str(info.value)


def _slow_preparer(downloads):
    import datasets as hf

    with open(downloads.parent / "calls.txt", "a") as handle:
        handle.write("called\n")
    time.sleep(1.0)
    split = hf.Dataset.from_dict({"x": [1, 2, 3], "label": [0, 1, 0]})
    return hf.DatasetDict({"train": split, "validation": split, "test": split})


def _prepare_in_child(name: str) -> None:
    from benchmark.data.builtin import ensure_prepared

    ensure_prepared(name, progress=lambda *_: None)


def test_two_processes_preparing_one_dataset_do_not_race(fusebench_home):
    """Defect 6: two processes preparing the same built-in dataset on one state folder raced."""
    from benchmark.data.builtin import PREPARERS, is_prepared
    from benchmark.paths import state_dir

    PREPARERS.add("test_locked", _slow_preparer)
    try:
        context = multiprocessing.get_context("fork")
        children = [context.Process(target=_prepare_in_child, args=("test_locked",)) for _ in range(2)]
        for child in children:
            child.start()
        for child in children:
            child.join(60)
        assert [child.exitcode for child in children] == [0, 0]
        assert is_prepared("test_locked")
        assert (state_dir() / "calls.txt").read_text().count("called") == 1
    finally:
        PREPARERS.remove("test_locked")


def test_default_retrain_does_not_depend_on_what_tuning_picked(monkeypatch):
    """The defaults' retrain of a cell (the tuning-gain baseline) draws its in-model dropout masks
    from the global RNG after the tuned run has trained; each run seeds it from its own seed
    (loop.train), so two studies that picked different hyperparameters start the defaults' first
    training step from the same RNG state and give the same default score for the same seed."""
    import optuna
    from optuna.distributions import FloatDistribution, IntDistribution

    from benchmark.train import loop, stacked
    from benchmark.train.cell import CellBudget
    from benchmark.train.results import Cell

    features = _trainable_features()
    entry_states: list[list[torch.Tensor | None]] = []  # per study: the global RNG state at each run's first step
    real_train, real_loss = stacked.train, loop.training_loss

    def train_recording(*args, **kwargs):
        entry_states[-1].append(None)
        return real_train(*args, **kwargs)

    def loss_recording(*args, **kwargs):
        if entry_states[-1][-1] is None:
            entry_states[-1][-1] = torch.random.get_rng_state()
        return real_loss(*args, **kwargs)

    monkeypatch.setattr(stacked, "train", train_recording)
    monkeypatch.setattr(loop, "training_loss", loss_recording)
    default_scores = []
    for hidden in (40, 200):  # the tuning picks: two different tuned models, both with dropout
        entry_states.append([])
        torch.manual_seed(hidden)  # whatever ran before in the worker process
        study = optuna.create_study(direction="maximize")
        study.add_trial(optuna.trial.create_trial(
            params={"hp.hidden": hidden, "hp.dropout": 0.4},
            distributions={"hp.hidden": IntDistribution(32, 256, log=True), "hp.dropout": FloatDistribution(0.0, 0.5)},
            value=0.5, user_attrs={"slot": 0}))
        result = run_cell(Cell("t", "concat", "concat", 0.0, 0), features, features.splits, study,
                          CellBudget(3, 16, True, "cpu"))
        assert result.hparams["hidden"] == hidden
        default_scores.append(result.default_scores["accuracy"])
    assert [len(states) for states in entry_states] == [2, 2]  # the tuned run, then the defaults' run
    assert torch.equal(entry_states[0][1], entry_states[1][1])
    assert default_scores[0] == default_scores[1]
