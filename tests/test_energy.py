"""Energy per cell (benchmark/train/energy.py): the figures a cell logs, how a stack's energy is split
between its models, and how a source is labelled measured or estimated."""

from __future__ import annotations

import math

import pytest

from benchmark import vocabulary
from benchmark.train import energy


def test_a_groups_energy_is_split_by_the_epochs_each_model_ran():
    assert energy.shares(90.0, [10, 5, 15]) == pytest.approx([30.0, 15.0, 45.0])
    assert sum(energy.shares(7.0, [3, 1])) == pytest.approx(7.0)
    assert energy.shares(6.0, [0, 0]) == [3.0, 3.0]  # no epoch recorded: an even split, never a division by zero


class CPU:  # codecarbon's hardware classes are told apart by name
    def __init__(self, mode):
        self._mode = mode


class GPU:
    def __init__(self, ids):
        self.gpu_ids = ids


class RAM:
    pass


class _Tracker:
    def __init__(self, *hardware):
        self._hardware = list(hardware)
        self._conf = {}


@pytest.mark.parametrize("hardware, source", [
    ((RAM(), CPU("intel_rapl")), "measured: RAPL"),
    ((RAM(), CPU("intel_rapl"), GPU([0])), "measured: RAPL + NVML"),
    ((RAM(), CPU("cpu_load")), "estimate: rated power"),
    ((RAM(), CPU("constant")), "estimate: rated power"),
    ((RAM(), CPU("cpu_load"), GPU([])), "estimate: rated power"),  # a CPU cell: the machine's GPUs are not read
    ((RAM(), CPU("cpu_load"), GPU([0])), "estimate: CPU at rated power; GPU measured: NVML"),
])
def test_a_source_says_measured_only_where_every_counted_part_was_read_from_a_counter(hardware, source):
    label = energy._source(_Tracker(*hardware))
    assert label == source
    assert vocabulary.energy_is_estimate(label) == (not source.startswith("measured"))


def test_no_source_is_not_a_measurement():
    assert vocabulary.energy_is_estimate(vocabulary.ENERGY_NONE)
    assert vocabulary.energy_is_estimate(None)


def test_a_result_without_a_reading_logs_no_energy_figure():
    from benchmark.train.results import Cell, RunResult

    result = RunResult(cell=Cell("d", "concat", "concat", 0.0, 0), family="early", hparams={}, training={},
                       task="multiclass", scores={"accuracy": 0.5}, subset_scores={}, missing_scores={},
                       robustness=float("nan"), default_scores={"accuracy": 0.5}, best_val_score=0.5, param_count=10,
                       train_samples_per_s=1.0, inference_samples_per_s=1.0, latency_ms_per_batch=1.0,
                       seconds_per_epoch=1.0, memory={}, device="cpu", wall_seconds=1.0)
    metrics = result.metrics()
    assert vocabulary.ENERGY_TRAIN_WH not in metrics and vocabulary.ENERGY_PER_1K_INFERENCES_J not in metrics
    assert result.params()[vocabulary.ENERGY_SOURCE] == vocabulary.ENERGY_NONE


@pytest.mark.timeout(600)
def test_every_cell_logs_non_negative_energy_with_its_source(tmp_path, monkeypatch):
    """A study of two seeds trained stacked, with a default retrain beside them: each cell's training
    energy and energy per 1,000 inferences are there, non-negative, and labelled; nothing is written
    where the cell ran."""
    import optuna
    from optuna.distributions import IntDistribution

    from benchmark.train.cell import CellBudget, run_cells
    from benchmark.train.results import Cell
    from tests.test_stacked_training import _features

    pytest.importorskip("codecarbon", reason="codecarbon is not installed: no energy counter")
    monkeypatch.chdir(tmp_path)
    features = _features()
    study = optuna.create_study(direction="maximize")
    study.add_trial(optuna.trial.create_trial(params={"hp.hidden": 40}, distributions={
        "hp.hidden": IntDistribution(32, 256, log=True)}, value=0.5, user_attrs={"slot": 0}))
    cells = [Cell("toy", "concat", "concat", 0.0, seed) for seed in (0, 1)]
    results = run_cells(cells, features, features.splits, study, CellBudget(3, 32, True, "cpu", min_epochs=1))
    if all(r.energy_source == vocabulary.ENERGY_NONE for r in results):
        pytest.skip("codecarbon could not run here: no energy counter")
    for result in results:
        metrics, params = result.metrics(), result.params()
        assert metrics[vocabulary.ENERGY_TRAIN_WH] >= 0 and math.isfinite(metrics[vocabulary.ENERGY_TRAIN_WH])
        assert metrics[vocabulary.ENERGY_PER_1K_INFERENCES_J] >= 0
        source = params[vocabulary.ENERGY_SOURCE]
        assert source.startswith(("measured: ", "estimate: ")), source
        if vocabulary.energy_is_estimate(source):
            assert "rated power" in source
    assert list(tmp_path.iterdir()) == []  # no emissions.csv, no lock file


def test_a_cpu_cell_reads_no_gpu():
    """Idle GPUs of the machine are not counted in a CPU cell's energy."""
    assert energy._gpu_ids("cpu") == []
