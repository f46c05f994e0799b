"""Kill a real `fusebench bench` in the middle, run it again, and check that it resumes:
finished cells are skipped, studies continue, nothing logged is duplicated or lost."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from benchmark.cli import main
from tests.helpers_runs import assert_each_cell_once, assert_trial_budget, cell_runs, finished, fusebench, wait_for

pytestmark = pytest.mark.slow
ARGS = ["bench", "--profile", "smoke", "--datasets", "toy", "--strategies", "concat,sum,late_weighted",
        "--trials", "2", "--epochs", "3", "--seeds", "0,1", "--dropout", "0.3", "--device", "cpu", "--no-report"]


def test_killed_bench_resumes_without_duplicates(toy_card, fusebench_home, capsys):
    uri = os.environ["MLFLOW_TRACKING_URI"]
    # Toy cells finish in well under a second, faster than the poll below can see them: hold every
    # cell of the victim for a few seconds after its run is opened, so the kill lands mid-matrix
    # and mid-cell (an open, unfinished run is left behind for the resume to discard).
    # Its driver lock counts as dead 2 s after its last heartbeat, so the re-run below need not wait 30 s.
    process = fusebench(*ARGS, env={"FUSEBENCH_FAULT_CELL_DELAY_S": "3", "FUSEBENCH_DRIVER_STALE_S": "2"})
    try:
        wait_for(lambda: len(finished(cell_runs(uri))) >= 2, timeout=300, what="two finished cells")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    before = {r.info.run_id: r.data.metrics["test_accuracy"] for r in finished(cell_runs(uri))}
    assert 2 <= len(before) < 6, "the kill must land in the middle of the matrix"

    # `fusebench status` reads the interrupted matrix from the stores, and its dead driver once the
    # heartbeat is older than the driver's stale span; until then a second bench would be refused.
    time.sleep(2.5)
    assert main(["status"]) == 0
    shown = capsys.readouterr().out
    done = int(re.search(r"final cells +(\d+)/6 done", shown).group(1))
    assert done == len(before) and "is gone" in shown and "state: interrupted" in shown, shown

    assert main(ARGS) == 0
    out = capsys.readouterr().out
    assert f"{len(before)} already done" in out

    assert_each_cell_once(uri, expected_cells=6)
    after = {r.info.run_id: r.data.metrics["test_accuracy"] for r in finished(cell_runs(uri))}
    assert all(after.get(run_id) == acc for run_id, acc in before.items()), "a finished run was lost or changed"
    assert_trial_budget(os.environ["FUSEBENCH_OPTUNA_STORAGE"], trials=2, studies=3)

    assert main(ARGS) == 0  # a third run does nothing
    assert "0 run now, 6 already done" in capsys.readouterr().out
    assert main(["status"]) == 0
    shown = capsys.readouterr().out
    assert "final cells        6/6 done, 0 of them failed" in shown and "state: finished" in shown, shown
    assert len(cell_runs(uri)) == 6


NAN_PLUGIN = '''
import torch
from torch import nn
from strategies import register_strategy
from strategies.base import FusionStrategy


@register_strategy("test_nan")
class NaNStrategy(FusionStrategy):
    """Always produces NaN logits (test only; no paper)."""
    family, description, paper = "early", "NaN logits", "none (test)"

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        self.head = nn.Linear(sum(self.input_dims.values()), num_classes)

    def forward(self, inputs, present, token_mask=None):
        x = torch.cat([inputs[m] for m in self.modalities], dim=-1)
        return self.head(x) * float("nan")


@register_strategy("test_oom")
class OutOfMemoryStrategy(FusionStrategy):
    """Raises the error PyTorch raises when CUDA runs out of memory (test only; no paper)."""
    family, description, paper = "early", "out of memory", "none (test)"

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        self.head = nn.Linear(sum(self.input_dims.values()), num_classes)

    def forward(self, inputs, present, token_mask=None):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")


@register_strategy("test_impossible")
class ImpossibleStrategy(FusionStrategy):
    """Rejects its hyperparameters (test only; no paper)."""
    family, description, paper = "early", "impossible hyperparameters", "none (test)"

    def __init__(self, input_dims, num_classes, **hparams):
        super().__init__(input_dims, num_classes, **hparams)
        raise ValueError(f"hidden={self.hp('hidden')} is impossible for this strategy")
'''


def test_failed_cells_are_recorded_and_matrix_goes_on(toy_card, fusebench_home, capsys):
    from strategies import STRATEGIES

    plugin = fusebench_home / "bad_plugin.py"
    plugin.write_text(NAN_PLUGIN)
    uri = os.environ["MLFLOW_TRACKING_URI"]
    args = ["bench", "--profile", "smoke", "--datasets", "toy", "--strategies", "test_nan,concat,test_oom,test_impossible",
            "--trials", "0", "--epochs", "2", "--seeds", "0", "--dropout", "0.3", "--plugin", str(plugin),
            "--device", "cpu", "--no-report"]
    try:
        assert main(args) == 0
        out = capsys.readouterr().out
        runs = cell_runs(uri)
        status = {r.data.params.get("variant") or r.data.tags.get("strategy"): r for r in runs}
        assert status["concat"].info.status == "FINISHED"
        assert status["test_nan"].info.status == "FAILED"
        assert "NonFiniteLoss" in status["test_nan"].data.tags["fusebench.error"]
        assert status["test_impossible"].info.status == "FAILED"
        assert "impossible" in status["test_impossible"].data.tags["fusebench.error"]
        assert status["test_oom"].info.status == "FAILED"
        assert "OutOfMemoryError: CUDA out of memory" in status["test_oom"].data.tags["fusebench.error"]
        assert "3 failed" in out and "--retry-failed" in out

        # A plain re-run keeps the failed cells as they are and still lists them.
        assert main(args) == 0
        out = capsys.readouterr().out
        assert "0 run now, 4 already done, 3 failed" in out and "failed: toy · test_nan" in out
        assert {r.info.run_id for r in cell_runs(uri)} == {r.info.run_id for r in runs}

        # --retry-failed runs exactly the failed cells again, replacing their failed runs.
        assert main(args + ["--retry-failed"]) == 0
        out = capsys.readouterr().out
        assert "retrying 3 failed cells" in out and "0 run now, 1 already done, 3 failed" in out
        again = {r.data.tags["strategy"]: r for r in cell_runs(uri)}
        assert len(again) == 4 and again["concat"].info.run_id == status["concat"].info.run_id
        for name in ("test_nan", "test_oom", "test_impossible"):
            assert again[name].info.status == "FAILED" and again[name].info.run_id != status[name].info.run_id
    finally:
        for name in ("test_nan", "test_oom", "test_impossible"):
            STRATEGIES.remove(name)


def test_a_bench_whose_every_cell_failed_exits_non_zero(toy_card, fusebench_home, capsys):
    """Issue 21, item 7: a bench in which every cell failed ends with a one-line error and exit
    status 1, not 0 (the summary and the failures are still printed)."""
    from strategies import STRATEGIES

    plugin = fusebench_home / "bad_plugin_every_cell.py"  # its own module name: the other test's is loaded once per process
    plugin.write_text(NAN_PLUGIN)
    args = ["bench", "--profile", "smoke", "--datasets", "toy", "--strategies", "test_nan,test_impossible",
            "--trials", "0", "--epochs", "2", "--seeds", "0", "--dropout", "0.3", "--plugin", str(plugin),
            "--device", "cpu", "--no-report"]
    try:
        assert main(args) == 1
        captured = capsys.readouterr()
        assert "0 run now, 0 already done, 2 failed" in captured.out
        errors = [line for line in captured.err.splitlines() if line.startswith("fusebench: error:")]
        assert len(errors) == 1 and "every cell of matrix" in errors[0] and "2 of 2" in errors[0], captured.err
    finally:
        for name in ("test_nan", "test_oom", "test_impossible"):
            STRATEGIES.remove(name)
