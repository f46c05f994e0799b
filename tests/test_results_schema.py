"""The results schema (vocabulary.RESULTS_SCHEMA): what the tracker writes carries its version, and
the one reader (reporting/fetch.py) brings a run of any version to the current shape: an older run
(no schema tag, identity only in tags, a failed run known only by its name) reads as the current
shape, and a failed run of the current version is read from its tags, never from its name."""

from __future__ import annotations

import pytest

from benchmark.reporting.fetch import NewerSchema, fetch_matrix, upgrade_run
from benchmark.tracking.mlflow_runs import MatrixTracker
from tests.helpers_runs import start_version1_cell
from benchmark.vocabulary import (RESULTS_SCHEMA, RESULTS_SCHEMA_CHANGES, TAG_ERROR, TAG_ERROR_LINE, TAG_ERROR_TYPE,
                                    TAG_KIND, TAG_SCHEMA, TASK, cell_tags, schema_version)


def _tracker(tmp_path, matrix="m") -> MatrixTracker:
    return MatrixTracker(f"sqlite:///{tmp_path}/mlruns.db", matrix, {"profile": "test"}, "cpu")


def test_every_version_is_described_and_the_current_one_is_the_last():
    assert RESULTS_SCHEMA == max(RESULTS_SCHEMA_CHANGES) >= 2
    assert sorted(RESULTS_SCHEMA_CHANGES) == list(range(1, RESULTS_SCHEMA + 1))
    assert schema_version({}) == 1 and schema_version({TAG_SCHEMA: "2"}) == 2


def test_parent_and_cell_runs_carry_the_schema_version(tmp_path):
    tracker = _tracker(tmp_path)
    ok = tracker.start_cell("h1", "d · concat · dropout 0.3 · seed 0", cell_tags("d", "concat", "concat", "early", 0.3, 0))
    tracker.finish_cell(ok, {"dataset": "d"}, {"test_accuracy": 0.5}, {}, {})
    failed = tracker.start_cell("h2", "d · concat · dropout 0.3 · seed 1", cell_tags("d", "concat", "concat", "early", 0.3, 1))
    tracker.fail_cell(failed, "RuntimeError: loss is NaN\nTraceback ...", "RuntimeError")
    tracker.finish_matrix({})
    client = tracker.client
    runs = [client.get_run(tracker.parent_id), client.get_run(ok), client.get_run(failed)]
    assert [r.data.tags[TAG_KIND] for r in runs] == ["matrix", "cell", "cell"]
    assert all(r.data.tags[TAG_SCHEMA] == str(RESULTS_SCHEMA) for r in runs)
    tags = runs[2].data.tags
    assert tags[TAG_ERROR_TYPE] == "RuntimeError" and tags[TAG_ERROR_LINE] == "RuntimeError: loss is NaN"
    assert tracker.failed_cells() == {"h2": ("d · concat · dropout 0.3 · seed 1", "RuntimeError: loss is NaN")}


def test_a_copied_run_keeps_the_version_of_the_run_it_copies(tmp_path):
    old = _tracker(tmp_path, "old")
    source = start_version1_cell(old, "h", "d · concat · dropout 0 · seed 0", {"strategy": "concat", "dataset": "d"})
    old.finish_cell(source, {"dataset": "d", "variant": "concat", "strategy": "concat"}, {"test_accuracy": 0.5}, {}, {})
    new = _tracker(tmp_path, "new")
    run_id = new.start_cell("h", "d · concat · dropout 0 · seed 0", cell_tags("d", "concat", "concat", "early", 0, 0))
    new.adopt_cell(run_id, new.finished_elsewhere("h"))
    assert schema_version(new.client.get_run(run_id).data.tags) == 1


def test_an_older_run_is_read_into_the_current_shape(tmp_path):
    """Version 1: no schema tag, identity only as tags (the tag `strategy` holding the variant), no task,
    references as majority_*, the tuning gain without the defaults' score; a failed run known by its name."""
    tracker = _tracker(tmp_path)
    client = tracker.client

    def old_run(name: str, tags: dict) -> str:
        run = client.create_run(tracker.experiment_id, run_name=name, tags={
            "mlflow.parentRunId": tracker.parent_id, TAG_KIND: "cell", "fusebench.matrix_id": "m", **tags})
        return run.info.run_id

    ok = old_run("d · concat@learned · dropout 0.3 · seed 2",
                 {"strategy": "concat@learned", "dataset": "d", "family": "early", "fusebench.status": "ok"})
    client.log_param(ok, "modality_dropout", "0.3")
    client.log_param(ok, "seed", "2")
    for key, value in {"test_accuracy": 0.8, "tuning_gain": 0.05, "majority_accuracy": 0.4,
                       "majority_macro_f1": 0.1}.items():
        client.log_metric(ok, key, value)
    client.set_terminated(ok, "FINISHED")
    failed = old_run("d · gated · dropout image=0.5,text=0.1 · seed 1",
                     {"strategy": "gated", "dataset": "d", "family": "intermediate", "fusebench.status": "failed",
                      TAG_ERROR: "ValueError: bad shape\nTraceback ..."})
    client.set_terminated(failed, "FAILED")

    runs = fetch_matrix(tracker.tracking_uri, "m")
    row = runs.ok.iloc[0]
    assert (row["dataset"], row["variant"], row["strategy"], row["family"], row["dropout"], row["seed"]) == \
        ("d", "concat@learned", "concat@learned", "early", "0.3", 2)
    assert row[TASK] == "multiclass"
    assert row["reference_accuracy"] == 0.4 and row["reference_macro_f1"] == 0.1
    assert row["default_test_accuracy"] == pytest.approx(0.75)
    problem = runs.problems.iloc[0]
    assert (problem["variant"], problem["family"], problem["dropout"], problem["seed"]) == \
        ("gated", "intermediate", "image=0.5,text=0.1", 1)
    assert (problem["status"], problem["error_type"], problem["error"]) == ("failed", "ValueError", "ValueError: bad shape")


def test_a_failed_run_of_the_current_version_is_read_from_its_tags_not_its_name(tmp_path):
    tracker = _tracker(tmp_path)
    run_id = tracker.start_cell("h", "d · concat@learned · dropout 0.3 · seed 4 · fold 1",
                                cell_tags("d", "concat", "concat@learned", "early", 0.3, 4, fold=1))
    tracker.fail_cell(run_id, "RuntimeError: loss is NaN\nTraceback ...", "RuntimeError")
    before = fetch_matrix(tracker.tracking_uri, "m").problems.to_dict("records")
    tracker.client.set_tag(run_id, "mlflow.runName", "renamed · dropout 0.9 · seed 7")
    assert tracker.client.get_run(run_id).info.run_name == "renamed · dropout 0.9 · seed 7"
    after = fetch_matrix(tracker.tracking_uri, "m").problems.to_dict("records")
    assert before == after
    assert {k: before[0][k] for k in ("dataset", "variant", "strategy", "family", "dropout", "seed", "fold",
                                      "status", "error_type", "error")} == {
        "dataset": "d", "variant": "concat@learned", "strategy": "concat", "family": "early", "dropout": "0.3",
        "seed": 4, "fold": 1, "status": "failed", "error_type": "RuntimeError", "error": "RuntimeError: loss is NaN"}


def test_a_run_of_a_newer_version_is_refused_with_a_clear_error():
    with pytest.raises(NewerSchema, match="update fusebench"):
        upgrade_run({"name": "x", "params": {}, "tags": {}, "metrics": {}}, RESULTS_SCHEMA + 1)


def test_a_cell_run_cannot_start_without_its_identity(tmp_path):
    """Schema 2 reads a failed run from its identity tags alone, so opening a run without them is refused."""
    tracker = _tracker(tmp_path)
    partial = {k: v for k, v in cell_tags("d", "concat", "concat", "early", 0.3, 0).items() if k != "family"}
    with pytest.raises(ValueError, match="family"):
        tracker.start_cell("h", "d · concat · dropout 0.3 · seed 0", partial)
