"""No work twice, and done means recorded: a cell finished for one matrix is copied into a later
matrix that holds the same cell (adding a seed or a strategy runs only the new cells), and a work
queue's "done" never stands in for a result the tracking store does not hold."""

from __future__ import annotations

import re

import pytest

from tests.helpers_runs import cell_runs, finished

ARGS = ["bench", "--profile", "smoke", "--datasets", "toy", "--strategies", "concat", "--trials", "1", "--epochs", "2",
        "--dropout", "0.3", "--device", "cpu", "--no-report"]


@pytest.mark.slow
def test_adding_a_seed_runs_only_the_new_cell(toy_card, fusebench_home, capsys, monkeypatch):
    import os

    from benchmark.cli import main
    from benchmark.vocabulary import TAG_REUSED_FROM
    from benchmark.train import cell as cell_module

    uri = os.environ["MLFLOW_TRACKING_URI"]
    assert main(ARGS + ["--seeds", "0"]) == 0
    first = {r.info.run_id: r for r in finished(cell_runs(uri))}
    trained: list[int] = []
    real = cell_module.run_cells
    monkeypatch.setattr("benchmark.run.unit_runner.run_cells",
                        lambda cells, *a, **k: trained.extend(c.seed for c in cells) or real(cells, *a, **k))
    capsys.readouterr()
    assert main(ARGS + ["--seeds", "0,1"]) == 0  # another matrix: one more seed
    out = capsys.readouterr().out
    assert trained == [1], out  # seed 0 was not trained again
    assert "2 run now (1 of them copied from earlier matrices)" in out
    runs = finished(cell_runs(uri))
    copies = [r for r in runs if TAG_REUSED_FROM in r.data.tags]
    assert len(copies) == 1 and copies[0].data.tags[TAG_REUSED_FROM] in first
    source = first[copies[0].data.tags[TAG_REUSED_FROM]]
    assert copies[0].data.metrics == source.data.metrics and copies[0].data.params == source.data.params
    assert copies[0].data.tags["fusebench.matrix_id"] != source.data.tags["fusebench.matrix_id"]


@pytest.mark.slow
def test_switching_tracking_stores_never_reports_results_the_new_store_lacks(toy_card, fusebench_home, capsys,
                                                                              monkeypatch):
    from benchmark.cli import main

    assert main(ARGS + ["--seeds", "0"]) == 0
    other = f"sqlite:///{fusebench_home / 'other-mlruns.db'}"
    capsys.readouterr()
    # Same Optuna storage (its studies are reused), another tracking store: what is done is read from
    # the tracking store the bench writes to (there is no work queue that could claim the cell done),
    # so the cell runs again there.
    assert main(ARGS + ["--seeds", "0", "--tracking-uri", other]) == 0
    out = capsys.readouterr().out
    assert re.search(r"1 cells: 1 run now, 0 already done", out), out
    assert len(finished(cell_runs(other))) == 1
