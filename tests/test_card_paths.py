"""Cards from anywhere (issue 13, item 1) and failed benches (item 7): `--datasets` takes card
paths (absolute or relative), globs and names in bench, worker, status and report; a matrix
registered with a path card is pinned by the card file's sha256, so a worker finds the card
where it moved and refuses one whose content changed; a bench that fails while loading data
closes its MLflow parent run as FAILED. Real parquet files, real MLflow SQLite and Optuna stores."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
from mlflow.tracking import MlflowClient

from benchmark.cli import main
from tests.helpers_runs import cell_runs, finished

FAST = ["--profile", "smoke", "--strategies", "concat", "--dropout", "0", "--seeds", "0", "--trials", "0",
        "--epochs", "1", "--patience", "1", "--batch-size", "16"]


def write_card(folder: Path, name: str = "tabpath", rows: int = 40, data_file: str = "tab.parquet") -> Path:
    """A two-modality table as a real parquet file and its card, in ``folder``."""
    import pandas as pd

    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    label = np.arange(rows) % 2
    pd.DataFrame({"y": label, "x1": label + rng.normal(0, 0.3, rows), "x2": rng.normal(0, 1, rows),
                  "x3": label * 2 + rng.normal(0, 0.5, rows)}).to_parquet(folder / "tab.parquet")
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\nsource: {{local: {{format: parquet, data_files: {data_file}}}}}\nlabel: y\n"
                    "split: {seed: 0, validation: 0.25, test: 0.25}\n"
                    "modalities:\n  left: {columns: [x1, x2], encoder: tabular}\n"
                    "  right: {columns: [x3], encoder: tabular}\n")
    return path


def ours(stderr: str) -> list[str]:
    """fusebench's lines on stderr (MLflow logs its own INFO lines there when it creates a store)."""
    return [line for line in stderr.splitlines() if not line.startswith("20") or " INFO " not in line]


def parents(uri: str):
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("fusebench")
    return client.search_runs([experiment.experiment_id], "tags.`fusebench.kind` = 'matrix'")


def test_bench_status_report_with_a_card_outside_the_cards_folder(fusebench_home, monkeypatch, capsys):
    card = write_card(fusebench_home / "elsewhere")
    uri = os.environ["MLFLOW_TRACKING_URI"]
    assert main(["bench", "--datasets", str(card), "--no-report", *FAST]) == 0  # absolute path
    runs = finished(cell_runs(uri))
    assert [r.data.tags["dataset"] for r in runs] == ["tabpath"]
    matrix_id = runs[0].data.tags["fusebench.matrix_id"]

    monkeypatch.chdir(fusebench_home)  # the same card by a relative path: the same matrix, nothing to redo
    assert main(["bench", "--datasets", "elsewhere/tabpath.yaml", "--no-report", *FAST]) == 0
    out = capsys.readouterr().out
    assert f"matrix {matrix_id}: 1 cells: 0 run now, 1 already done" in out
    assert len(cell_runs(uri)) == 1

    assert main(["status", "--datasets", "elsewhere/tabpath.yaml"]) == 0
    out = capsys.readouterr().out
    assert f"matrix {matrix_id}" in out and "final cells        1/1 done" in out
    assert main(["report", "--datasets", str(card), "--no-log"]) == 0
    report = (fusebench_home / "reports" / matrix_id / "report.md").read_text()
    assert "tabpath" in report
    # a dataset no matrix has: one line naming it, exit 2
    other = write_card(fusebench_home / "other", name="unbenched")
    assert main(["report", "--datasets", str(other), "--no-log"]) == 2
    [err] = ours(capsys.readouterr().err)
    assert "unbenched" in err and "--datasets" in err


def test_card_globs_names_and_a_name_clash(fusebench_home, monkeypatch, capsys):
    write_card(fusebench_home / "many", name="tab_a")
    write_card(fusebench_home / "many", name="tab_b")
    monkeypatch.chdir(fusebench_home)
    assert main(["bench", "--dry-run", "--datasets", "many/tab_*.yaml", *FAST]) == 0
    out = capsys.readouterr().out
    assert "tab_a · concat" in out and "tab_b · concat" in out and "2 cells" in out

    assert main(["bench", "--dry-run", "--datasets", "nowhere/*.yaml", *FAST]) == 2
    err = capsys.readouterr().err
    assert "--datasets" in err and "nowhere/*.yaml" in err and "matches no" in err

    clash = write_card(fusebench_home / "clash", name="tab_a")  # same name, another file
    assert main(["bench", "--dry-run", "--datasets", f"many/tab_a.yaml,{clash}", *FAST]) == 2
    [err] = ours(capsys.readouterr().err)
    assert str(clash) in err and str(fusebench_home / "many" / "tab_a.yaml") in err

    assert main(["bench", "--dry-run", "--datasets", "missing.yaml", *FAST]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_a_profile_lists_card_paths_relative_to_its_folder(fusebench_home, capsys):
    write_card(fusebench_home / "profiles" / "cards")
    profile = fusebench_home / "profiles" / "mine.yaml"
    profile.write_text("datasets: [cards/tabpath.yaml]\nstrategies: [concat]\nseeds: [0]\ndropout_rates: [0]\n"
                       "trials: 0\nepochs: 1\n")
    assert main(["bench", "--dry-run", "--profile", str(profile)]) == 0
    assert "tabpath · concat · dropout 0 · seed 0" in capsys.readouterr().out
    profile.write_text("datasets: [cards/absent.yaml]\n")
    assert main(["bench", "--dry-run", "--profile", str(profile)]) == 2
    err = capsys.readouterr().err
    assert str(profile) in err and "field 'datasets'" in err and "absent.yaml" in err


def test_status_finds_a_moved_card_by_content_and_refuses_a_changed_one(fusebench_home, capsys):
    """`fusebench status` on another machine (here: the card moved or changed) reads the registered
    matrix's card by content; the same card at another path is the same matrix, which a bench runs."""
    from benchmark.paths import default_optuna_storage
    from benchmark.stores.matrix_registry import MatrixRegistry

    card = write_card(fusebench_home / "site_a")
    assert main(["bench", "--datasets", str(card), "--workers", "0", *FAST]) == 0
    matrix_id = MatrixRegistry(default_optuna_storage()).matrix(None)["matrix_id"]
    capsys.readouterr()

    original = card.read_bytes()
    card.write_bytes(original.replace(b"validation: 0.25", b"validation: 0.3"))  # content changed at the path
    assert main(["status", "--matrix-id", matrix_id]) == 2
    [err] = ours(capsys.readouterr().err)
    assert "'tabpath'" in err and str(card) in err
    assert "the card file differs from the one the matrix was registered with" in err

    card.write_bytes(original)
    moved = fusebench_home / "site_b"
    shutil.move(str(card.parent), str(moved))  # the registered path no longer exists: as on another machine
    assert main(["status", "--matrix-id", matrix_id]) == 2
    err = capsys.readouterr().err
    assert str(card) in err and "does not exist on this machine" in err and "--datasets" in err

    assert main(["status", "--datasets", str(moved / "tabpath.yaml")]) == 0
    assert f"matrix {matrix_id}" in capsys.readouterr().out
    assert main(["status", "--matrix-id", matrix_id, "--datasets", str(moved / "*.yaml")]) == 0  # a glob to search
    assert "final cells        0/1 done" in capsys.readouterr().out
    assert main(["bench", "--datasets", str(moved / "tabpath.yaml"), *FAST, "--no-report"]) == 0
    assert f"matrix {matrix_id}: 1 cells: 1 run now" in capsys.readouterr().out
    runs = finished(cell_runs(os.environ["MLFLOW_TRACKING_URI"]))
    assert [r.data.tags["dataset"] for r in runs] == ["tabpath"]


def test_a_bench_that_fails_loading_data_marks_its_parent_run_failed(fusebench_home, capsys):
    card = write_card(fusebench_home / "broken", data_file="gone.parquet")
    assert main(["bench", "--datasets", str(card), *FAST]) == 2
    [err] = ours(capsys.readouterr().err)  # one line (MLflow's own INFO log lines aside)
    assert "tabpath" in err and str(card) in err and "source.local" in err
    [parent] = parents(os.environ["MLFLOW_TRACKING_URI"])
    assert parent.info.status == "FAILED"
    assert "gone.parquet" in parent.data.tags["fusebench.error"] or "source.local" in parent.data.tags["fusebench.error"]
