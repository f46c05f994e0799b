"""The Python API (benchmark/api.py) and the per-class views: the README's notebook example runs as
written on a small real matrix (generated colour shapes under the card name `emoji`, real encoders,
real Optuna and MLflow stores in tmp); each cell logs a confusion matrix that sums to the test rows;
the report shows the confusion matrices and the learning curves and logs them with the parent run.
A store written by hand (MatrixTracker, as `bench` logs) covers old runs without the artifact and a
dataset with many classes."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from benchmark import api
from benchmark.reporting import build_report
from benchmark.run.config import ProfileError
from benchmark.vocabulary import CONFUSION_ARTIFACT, CURVE_VAL_METRIC, DATA_ROWS_PREFIX
from benchmark.tracking.mlflow_runs import MatrixTracker
from benchmark.train.evaluation import confusion_matrix
from benchmark.train.tasks import Task
from tests.conftest import COLOURS, TOY_CARD, make_toy_dataset
from tests.helpers_runs import REPO, cell_runs, finished
from tests.helpers_runs import start_synthetic_cell

README = REPO / "README.md"


def readme_example() -> str:
    """The first ```python block of the README's "Python API" section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """The README example, run once in an isolated home where the card `emoji` is a 60-row stand-in."""
    root = tmp_path_factory.mktemp("api")
    cards = root / "cards"
    cards.mkdir()
    shutil.copy(make_toy_dataset(root / "data"), cards / "toy.parquet")
    (cards / "emoji.yaml").write_text(TOY_CARD.format(rows=60).replace("name: toy", "name: emoji"))
    uri = f"sqlite:///{root / 'mlruns.db'}"
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {"FUSEBENCH_HOME": root / "home", "FUSEBENCH_DATASETS": cards,
                            "FUSEBENCH_REPORTS": root / "reports", "MLFLOW_TRACKING_URI": uri,
                            "FUSEBENCH_OPTUNA_STORAGE": f"sqlite:///{root / 'optuna.db'}", "HF_HUB_OFFLINE": "1"}.items():
            patch.setenv(name, str(value))
        namespace: dict = {}
        exec(compile(readme_example(), str(README), "exec"), namespace)  # noqa: S102 - the documented example
        yield namespace, uri, root


@pytest.mark.slow
def test_readme_example_gives_one_decoded_row_per_cell(example):
    namespace, uri, _ = example
    df = namespace["df"]
    assert len(df) == 4 and len(finished(cell_runs(uri))) == 4
    assert sorted(df["variant"].unique()) == ["concat", "late_weighted"]
    assert sorted(df["seed"]) == [0, 0, 1, 1] and set(df["dataset"]) == {"emoji"}
    assert set(df["dropout"]) == {"0.3"} and set(df["task"]) == {"multiclass"}
    assert set(df["ranking_metric"]) == {"accuracy"}
    assert (df["score"] == df["accuracy"]).all() and df["score"].between(0, 1).all()
    for column in ("subset:image+text", "subset:image", "subset:text", "missing:0", "missing:50", "missing:90",
                   "macro_f1", "robustness", "tuning_gain", "inference_samples_per_s", "param_count", "run_id"):
        assert column in df, column
    assert df["subset:image"].between(0, 1).all() and (df["inference_samples_per_s"] > 0).all()
    # the full input equals the all-modalities subset; nothing is left encoded
    assert np.allclose(df["score"], df["subset:image+text"])
    assert not [c for c in df.columns if c.startswith("test_")]
    assert list(namespace["by_strategy"].index) in (["concat", "late_weighted"], ["late_weighted", "concat"])
    assert namespace["path"].name == "report.md" and namespace["path"].is_file()


@pytest.mark.slow
def test_each_cell_logs_a_confusion_matrix_that_sums_to_the_test_rows(example, tmp_path):
    _, uri, _ = example
    client = MlflowClient(tracking_uri=uri)
    for run in finished(cell_runs(uri)):
        content = json.loads(open(client.download_artifacts(run.info.run_id, CONFUSION_ARTIFACT, str(tmp_path))).read())
        test_rows = sum(v for k, v in run.data.metrics.items() if k.startswith(DATA_ROWS_PREFIX + "test."))
        matrix = np.array(content["matrix"])
        assert content["labels"] == sorted(COLOURS) and matrix.shape == (3, 3)
        assert matrix.sum() == test_rows == 18
        # the diagonal is the test accuracy the run logged
        assert np.trace(matrix) / matrix.sum() == pytest.approx(run.data.metrics["test_accuracy"])


@pytest.mark.slow
def test_report_shows_confusion_matrices_and_learning_curves(example):
    namespace, uri, _ = example
    path = namespace["path"]
    text = path.read_text()
    assert "### Per-class errors" in text and "### Learning curves" in text
    assert "recorded before confusion matrices were logged" not in text
    folder = path.parent
    assert (folder / "emoji_confusion.png").stat().st_size > 10_000
    assert (folder / "emoji_learning_curves.png").stat().st_size > 10_000
    assert "emoji_confusion.png" in text and "emoji_learning_curves.png" in text
    # logged with the report as artifacts of the matrix's parent run
    client = MlflowClient(tracking_uri=uri)
    parent = client.get_run(finished(cell_runs(uri))[0].data.tags["mlflow.parentRunId"])
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/emoji_confusion.png", "report/emoji_learning_curves.png", "report/report.md"} <= logged


def test_api_run_rejects_bad_overrides_before_writing_anything(fusebench_home):
    with pytest.raises(ProfileError, match=r"api.run\(\): override 'seeds': expected integers"):
        api.run("smoke", seeds=[1_000_000])
    with pytest.raises(ValueError, match=r"api.run\(\): override 'bogus': unknown field"):
        api.run("smoke", bogus=1)
    with pytest.raises(ProfileError, match="workers: expected an integer >= 0"):
        api.run("smoke", workers=-1)
    assert not (fusebench_home / "mlruns.db").exists() and not (fusebench_home / "optuna.db").exists()


def test_confusion_matrix_of_binary_outputs_uses_the_threshold():
    logits = torch.tensor([[2.0], [-1.0], [0.0], [-3.0]])  # probabilities 0.88, 0.27, 0.5, 0.05
    content = confusion_matrix(Task("binary"), logits, torch.tensor([1, 0, 1, 1]), ["no", "yes"])
    assert content == {"labels": ["no", "yes"], "matrix": [[1, 0], [1, 2]]}
    assert confusion_matrix(Task("regression"), logits, torch.tensor([1.0, 0, 1, 1])) is None
    # without class names the ids are the names
    multi = confusion_matrix(Task(), torch.eye(3)[[0, 1, 1]], torch.tensor([0, 1, 2]))
    assert multi == {"labels": ["0", "1", "2"], "matrix": [[1, 0, 0], [0, 1, 0], [0, 1, 0]]}


def _log(tracker, dataset, variant, seed, accuracy, confusion=None, curve=()):
    params = {"dataset": dataset, "strategy": variant, "variant": variant, "family": "early", "seed": str(seed),
              "modality_dropout": "0.3", "device": "cpu"}
    run_id = start_synthetic_cell(tracker, f"{dataset}-{variant}-{seed}", f"{dataset} · {variant} · dropout 0.3 · seed {seed}", params)
    metrics = {"test_accuracy": accuracy, "test_macro_f1": accuracy, "inference_samples_per_s": 1000.0}
    steps = [(CURVE_VAL_METRIC, v, epoch + 1) for epoch, v in enumerate(curve)]
    tracker.finish_cell(run_id, params, metrics, {}, {}, steps=steps,
                        artifacts={CONFUSION_ARTIFACT: confusion} if confusion else None)


def test_report_names_old_runs_and_lists_confused_pairs_for_many_classes(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    tracker = MatrixTracker(uri, "m", {"profile": "test"}, "cpu")
    names = [f"class_{i:02d}" for i in range(25)]
    for seed in (0, 1):
        counts = np.diag(np.full(25, 4))
        counts[3, 7] = 5 + seed  # the most frequent confusion: class_03 taken for class_07
        counts[3, 3] = 0
        _log(tracker, "many", "fancy", seed, 0.9, {"labels": names, "matrix": counts.tolist()}, [0.5, 0.7, 0.8])
        _log(tracker, "many", "concat", seed, 0.8, {"labels": names, "matrix": np.diag(np.full(25, 4)).tolist()})
        _log(tracker, "old", "fancy", seed, 0.9)  # logged before confusion matrices existed
        _log(tracker, "old", "concat", seed, 0.8)
    tracker.finish_matrix({})
    folder, text = build_report(uri, "m", tmp_path / "reports")
    many = text[text.index("Dataset `many`"):text.index("Dataset `old`")]
    assert "most frequent confusions" in many and "| fancy | 0.3 | class_03 | class_07 | 11 | 1.000 |" in many
    assert not (folder / "many_confusion.png").exists()  # 25 classes: a table, not a heatmap
    assert (folder / "many_learning_curves.png").is_file()  # fancy logged a curve
    old = text[text.index("Dataset `old`"):]
    assert "The confusion matrix of `fancy` (train dropout 0.3) is not available: its runs were recorded before " \
           "confusion matrices were logged." in old
    assert "### Learning curves" not in old  # no curves logged: no figure
