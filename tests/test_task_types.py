"""Task types (binary, multilabel, regression) through the whole pipeline: card fields, label
encoding, losses, metrics, reference predictors, stacked training and a real `fusebench bench`
per task on generated parquet data (tabular encoder, real Optuna and MLflow stores in tmp)."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from benchmark.cli import main
from benchmark.data.cards import CardError, load_card
from benchmark.data.loading import DataError, load_splits
from benchmark.vocabulary import EXPERIMENT, RANKING_METRICS, higher_is_better, task_metrics
from benchmark.train.evaluation import References, robustness_score
from benchmark.train.tasks import Task

LABELS = ("action", "comedy", "drama")


def _write(folder, task: str, rows: int = 240, seed: int = 0) -> None:
    """Two modalities of numeric columns (a: a1, a2; b: b1, b2) carrying an easy signal, written as
    fixed train/validation/test parquet files, and a card for ``task``."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4))
    frame = pd.DataFrame({"a1": x[:, 0], "a2": rng.normal(size=rows), "b1": x[:, 1], "b2": rng.normal(size=rows)})
    score = x[:, 0] + x[:, 1]
    extra = ""
    if task == "binary":
        frame["y"] = np.where(score > 0, "yes", "no")
        extra = "positive_class: 'yes'\n"
    elif task == "multilabel":
        frame["y"] = [[name for name, on in zip(LABELS, (a > 0, b > 0, a + b > 1)) if on]
                      for a, b in zip(x[:, 0], x[:, 1])]
    else:
        frame["y"] = 2.0 * score + 0.1 * rng.normal(size=rows)
        extra = "sign_accuracy: true\nregression_loss: l1\n"
    cut = [0, int(rows * 0.6), int(rows * 0.8), rows]
    for name, (lo, hi) in zip(("train", "validation", "test"), zip(cut, cut[1:])):
        frame.iloc[lo:hi].to_parquet(folder / f"{name}.parquet")
    (folder / f"{task}_toy.yaml").write_text(f"""name: {task}_toy
description: generated {task} data (tests only)
source:
  local:
    format: parquet
    data_files: {{train: train.parquet, validation: validation.parquet, test: test.parquet}}
label: y
task: {task}
{extra}modalities:
  a: {{columns: [a1, a2], encoder: tabular}}
  b: {{columns: [b1, b2], encoder: tabular}}
""")


def _cell_runs(uri):
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id], "tags.`fusebench.kind` = 'cell'")


@pytest.mark.slow
@pytest.mark.parametrize("task", ["binary", "multilabel", "regression"])
def test_bench_per_task_logs_the_task_metrics(task, fusebench_home):
    cards = fusebench_home / "cards"
    _write(cards, task)
    args = ["bench", "--profile", "smoke", "--datasets", f"{task}_toy", "--strategies", "concat,late_weighted",
            "--trials", "2", "--epochs", "12", "--patience", "4", "--seeds", "0,1", "--dropout", "0.3",
            "--device", "cpu", "--no-report", "--batch-size", "16"]  # 9 steps an epoch: 144 training rows
    if main(args) != 0:
        pytest.fail("bench failed")
    runs = _cell_runs(os.environ["MLFLOW_TRACKING_URI"])
    assert len(runs) == 4
    metrics = task_metrics(task, sign_accuracy=task == "regression")
    for run in runs:
        m, p = run.data.metrics, run.data.params
        assert run.data.tags["fusebench.status"] == "ok"
        assert p["task"] == task
        for metric in metrics:
            for name in (f"test_{metric}", f"test_{metric}_subset.a", f"test_{metric}_subset.a-b",
                         f"test_{metric}_missing.00", f"test_{metric}_missing.90", f"reference_{metric}"):
                assert name in m, f"{name} missing from {p['variant']}"
        assert "test_accuracy" in m if task == "binary" else "test_accuracy" not in m
        assert "majority_accuracy" not in m  # the multiclass reference names stay multiclass
        if task == "binary":
            assert p["ranking_metric"] == "auroc"
            assert 0.6 < m["test_auroc"] <= 1.0 and 0.0 <= m["test_f1"] <= 1.0
            assert m["reference_auroc"] == pytest.approx(0.5)
            assert m["test_auroc"] > m["test_auroc_missing.90"] - 0.05  # losing inputs does not help
        elif task == "multilabel":
            assert p["ranking_metric"] == "micro_f1"
            assert 0.5 < m["test_micro_f1"] <= 1.0 and 0.0 <= m["test_macro_f1"] <= 1.0
            assert m["test_mean_ap"] > m["reference_mean_ap"] + 0.1
        else:
            assert p["ranking_metric"] == "mae"
            assert 0 <= m["test_mae"] < 0.5 * m["reference_mae"] and m["test_rmse"] >= m["test_mae"]
            assert 0.5 < m["test_pearson_r"] <= 1.0 and 0.75 < m["test_sign_accuracy"] <= 1.0
            assert m["default_test_mae"] >= 0
        assert m["collapsed"] == 0.0 and "robustness" in m


def test_card_task_fields_and_ranking_metric_per_task(tmp_path):
    base = "name: t\nsource: {local: {format: csv, data_files: x.csv}}\nlabel: y\nmodalities: {a: {column: a, encoder: minilm}}\n"

    def card(extra: str):
        path = tmp_path / "t.yaml"
        path.write_text(base + extra)
        return load_card(path)

    assert (card("").task, card("").ranking_metric) == ("multiclass", "accuracy")
    assert card("task: regression\n").ranking_metric == "mae"
    assert card("task: binary\n").ranking_metric == "auroc"
    assert card("task: multilabel\nclasses: [x, z]\n").classes == ("x", "z")
    assert card("task: regression\nsign_accuracy: true\nranking_metric: sign_accuracy\n").sign_accuracy
    for extra, field_name in [("task: ranking\n", "task"), ("task: binary\nranking_metric: mae\n", "ranking_metric"),
                              ("sign_accuracy: true\n", "sign_accuracy"), ("task: regression\nregression_loss: huber\n",
                                                                          "regression_loss"),
                              ("task: multilabel\nclasses: [x, x]\n", "classes")]:
        with pytest.raises(CardError, match=f"field '{field_name}'"):
            card(extra)


def _local_card(tmp_path, task: str, labels: list, extra: str = ""):
    import datasets as hf

    hf.Dataset.from_dict({"a": ["t"] * len(labels), "y": labels}).to_parquet(str(tmp_path / "d.parquet"))
    (tmp_path / "d.yaml").write_text(f"name: d\nsource: {{local: {{format: parquet, data_files: {{train: d.parquet, "
                                     f"validation: d.parquet, test: d.parquet}}}}}}\nlabel: y\ntask: {task}\n{extra}"
                                     "modalities: {a: {column: a, encoder: minilm}}\n")
    return load_card(tmp_path / "d.yaml")


def test_label_encoding_per_task(tmp_path):
    loaded = load_splits(_local_card(tmp_path, "binary", ["pos", "neg", "pos"]))
    assert loaded.class_names == ["neg", "pos"] and loaded.splits["train"]["y"] == [1, 0, 1]
    loaded = load_splits(_local_card(tmp_path, "binary", ["pos", "neg", "pos"], "positive_class: neg\n"))
    assert loaded.class_names == ["pos", "neg"] and loaded.splits["train"]["y"] == [0, 1, 0]
    loaded = load_splits(_local_card(tmp_path, "multilabel", [["b"], ["a", "b"], []]))
    assert loaded.class_names == ["a", "b"] and loaded.splits["test"]["y"] == [[0, 1], [1, 1], [0, 0]]
    loaded = load_splits(_local_card(tmp_path, "multilabel", [[0, 1, 1], [1, 0, 0], [0, 0, 0]],
                                     "classes: [x, y, z]\n"))
    assert loaded.class_names == ["x", "y", "z"] and loaded.splits["train"]["y"][0] == [0, 1, 1]
    loaded = load_splits(_local_card(tmp_path, "regression", [1.5, -2, 0.25]))
    assert loaded.class_names == [] and loaded.splits["validation"]["y"] == [1.5, -2.0, 0.25]
    with pytest.raises(DataError, match=r"split 'train', column 'y', row 1: label None is not a finite number"):
        load_splits(_local_card(tmp_path, "regression", [1.0, None, 2.0]))
    with pytest.raises(DataError, match=r"row 0: label '1.5' is not a finite number"):
        load_splits(_local_card(tmp_path, "regression", ["1.5", "x"]))
    with pytest.raises(DataError, match=r"row 1: vector of length 2; expected 3"):
        load_splits(_local_card(tmp_path, "multilabel", [[0, 1, 1], [1, 0], [0, 0, 0]]))
    with pytest.raises(DataError, match="task 'binary' needs exactly 2 classes, found 3"):
        load_splits(_local_card(tmp_path, "binary", ["a", "b", "c"]))


def test_losses_per_task_match_torch():
    f = torch.nn.functional
    logits, classes = torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2])
    assert Task("multiclass").loss(logits, classes).item() == pytest.approx(f.cross_entropy(logits, classes).item())
    one, binary = torch.randn(6, 1), torch.tensor([0, 1, 1, 0, 1, 0.0])
    assert Task("binary").loss(one, binary).item() == pytest.approx(
        f.binary_cross_entropy_with_logits(one.squeeze(1), binary).item())
    targets = torch.randint(0, 2, (6, 3)).float()
    assert Task("multilabel").loss(logits, targets).item() == pytest.approx(
        f.binary_cross_entropy_with_logits(logits, targets).item())
    values = torch.randn(6)
    assert Task("regression").loss(one, values).item() == pytest.approx(f.mse_loss(one.squeeze(1), values).item())
    assert Task("regression", "l1").loss(one, values).item() == pytest.approx(f.l1_loss(one.squeeze(1), values).item())


def test_metrics_and_references_per_task():
    labels = torch.tensor([0, 0, 1, 1.0])
    perfect = torch.tensor([[-3.0], [-1.0], [1.0], [2.0]])  # logits ranking every positive first
    scores = Task("binary").scores(perfect, labels)
    assert scores == {"auroc": 1.0, "f1": 1.0, "accuracy": 1.0}
    ref = References.of(torch.tensor([0, 1, 1, 1.0]), labels, 2, Task("binary"))
    assert ref.scores["auroc"] == 0.5 and ref.scores["accuracy"] == 0.5 and math.isnan(ref.majority_accuracy)

    y = torch.tensor([[1, 0], [0, 1], [1, 1.0]])
    scores = Task("multilabel").scores(torch.tensor([[2.0, -2.0], [-2.0, 2.0], [2.0, 2.0]]), y)
    assert scores["micro_f1"] == 1.0 and scores["macro_f1"] == 1.0 and scores["mean_ap"] == 1.0

    truth = torch.tensor([1.0, -2.0, 0.0, 3.0])
    task = Task("regression", sign_accuracy=True)
    scores = task.scores(torch.tensor([[2.0], [-1.0], [5.0], [-3.0]]), truth)
    assert scores["mae"] == pytest.approx((1 + 1 + 5 + 6) / 4)
    assert scores["rmse"] == pytest.approx(math.sqrt((1 + 1 + 25 + 36) / 4))
    assert scores["sign_accuracy"] == pytest.approx(2 / 3)  # the zero label is left out (MMSA Non0_acc_2)
    assert scores["pearson_r"] == pytest.approx(np.corrcoef([2, -1, 5, -3], [1, -2, 0, 3])[0, 1])
    ref = References.of(torch.tensor([1.0, 3.0]), truth, 0, task)  # the training mean: 2.0
    assert ref.scores["mae"] == pytest.approx((1 + 4 + 2 + 1) / 4) and math.isnan(ref.scores["pearson_r"])
    # collapse: a constant prediction, or no better than the mean predictor
    assert task.collapsed(torch.full((4, 1), 2.0), truth, task.scores(torch.full((4, 1), 2.0), truth), ref.scores)
    assert not task.collapsed(truth.view(4, 1), truth, task.scores(truth.view(4, 1), truth), ref.scores)


def test_directions_and_robustness_for_lower_is_better():
    assert not higher_is_better("mae") and not higher_is_better("rmse") and higher_is_better("auroc")
    assert RANKING_METRICS["mae"] == ("test_mae", False)
    # MAE 1.0 at no missing input, the mean predictor at 3.0: half the lead kept at every rate > 0
    curve = {0.0: 1.0, 0.5: 2.0, 0.9: 2.0}
    assert robustness_score(curve, 3.0, higher_is_better=False) == pytest.approx(
        (1 + 0.5) / 2 * 0.5 / 0.9 + 0.5 * 0.4 / 0.9)
    assert math.isnan(robustness_score({0.0: 3.5, 0.9: 3.0}, 3.0, higher_is_better=False))  # worse than the mean


def test_early_stopping_keeps_the_lowest_mae_epoch():
    from benchmark.train.loop import RunBook, TrainConfig

    book = RunBook(TrainConfig(metric="mae", task="regression", patience=2, min_epochs=1), 10, 1)
    assert book.validated(0, 2.0, 1.0) and book.validated(1, 1.5, 1.0)
    assert not book.validated(2, 1.8, 0.5) and book.stats.best_epoch == 2 and book.stats.best_score == 1.5


@pytest.mark.parametrize("task,width", [("binary", 1), ("multilabel", 3), ("regression", 1)])
def test_stacked_training_equals_one_by_one(task, width):
    from benchmark.features.tensors import SplitTensors
    from benchmark.train.loop import TrainConfig, train
    from benchmark.train.stacked import train_stacked
    from strategies import get_strategy

    g = torch.Generator().manual_seed(0)
    n = 48
    a, b = torch.randn(n, 4, generator=g), torch.randn(n, 3, generator=g)
    labels = {"binary": (a[:, 0] > 0).float(), "multilabel": (torch.stack([a[:, 0], b[:, 0], a[:, 1]], 1) > 0).float(),
              "regression": a[:, 0] + b[:, 0]}[task]
    split = SplitTensors({"a": a, "b": b}, {"a": a[:, None], "b": b[:, None]},
                         {"a": torch.ones(n, 1, dtype=torch.bool), "b": torch.ones(n, 1, dtype=torch.bool)}, labels)
    metric = {"binary": "auroc", "multilabel": "micro_f1", "regression": "mae"}[task]

    def models():
        out = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            out.append(get_strategy("concat")({"a": 4, "b": 3}, width, hidden=8, dropout=0.0))
        return out

    configs = [TrainConfig(epochs=3, batch_size=16, seed=s, metric=metric, task=task, min_epochs=1) for s in (0, 1)]
    alone = models()
    alone_stats = [train(m, split, ["a", "b"], c, val_split=split) for m, c in zip(alone, configs)]
    stacked = models()
    stacked_stats = train_stacked(stacked, split, ["a", "b"], configs, val_split=split)
    for one, many, s1, s2 in zip(alone, stacked, alone_stats, stacked_stats):
        assert s1.train_loss == pytest.approx(s2.train_loss, rel=1e-4, abs=1e-5)
        for (name, p1), p2 in zip(one.state_dict().items(), many.state_dict().values()):
            assert torch.allclose(p1, p2, atol=1e-4), name


def test_binary_class_label_names_pick_the_positive_class(tmp_path):
    """A ClassLabel column (as the Hateful Memes hub copy has) is read by its names, so
    `positive_class: hateful` names a class; a cast to string would have given "0"/"1"."""
    import datasets as hf

    features = hf.Features({"a": hf.Value("string"), "y": hf.ClassLabel(names=["not-hateful", "hateful"])})
    split = hf.Dataset.from_dict({"a": ["t"] * 4, "y": [1, 0, 0, 1]}, features=features)
    hf.DatasetDict({"train": split, "validation": split, "test": split}).save_to_disk(str(tmp_path / "memes"))
    (tmp_path / "m.yaml").write_text("name: m\nsource: {local: {format: arrow, data_dir: memes}}\nlabel: y\n"
                                     "task: binary\npositive_class: hateful\nmodalities: {a: {column: a, encoder: minilm}}\n")
    loaded = load_splits(load_card(tmp_path / "m.yaml"))
    assert loaded.class_names == ["not-hateful", "hateful"] and loaded.splits["test"]["y"] == [1, 0, 0, 1]


@pytest.mark.slow
def test_budget_check_on_a_regression_card(tmp_path, fusebench_home):
    """`fusebench perf budget` trains with the card's task and reads regret in the metric's direction."""
    from benchmark.perf.budget_check import budget_regret
    from benchmark.run.config import load_profile
    from benchmark.run.plan import Plan

    _write(tmp_path, "regression")
    config = load_profile("smoke").with_overrides(datasets=(str(tmp_path / "regression_toy.yaml"),),
                                                  strategies=("concat",), seeds=(0,), dropout_rates=(0.0,), epochs=2, patience=2,
                                                  device="cpu")
    rows = budget_regret(Plan.build(config), dropout=0.0, factor=3, log=lambda _: None)
    assert [(r.dataset, r.metric, r.higher_is_better) for r in rows] == [("regression_toy", "mae", False)]
    row = rows[0]
    assert 0 < row.score < 10 and 0 < row.score_large < 10 and row.epochs_large >= row.epochs
    assert row.regret == pytest.approx(row.score - row.score_large)  # lower MAE with more epochs = positive regret


def test_datasets_command_lists_task_and_ranking_metric(capsys):
    assert main(["datasets"]) == 0
    lines = {line.split()[0]: line.split()[2:4] for line in capsys.readouterr().out.splitlines()}
    assert lines["hateful_memes"] == ["binary", "auroc"] and lines["cmu_mosi"] == ["regression", "mae"]
    assert lines["mm_imdb"] == ["multilabel", "micro_f1"] and lines["emoji"] == ["multiclass", "accuracy"]


def test_regression_model_starts_at_the_mean_label_and_learns_in_label_units():
    """build_model maps a regression strategy's outputs by the training labels' sd and mean: a fresh
    model predicts near the mean whatever the units; a classifier's outputs are left as they are."""
    from benchmark.features.tensors import FeatureSet, SplitTensors
    from benchmark.train.model import build_model

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=generator)  # (N, D)
    labels = 1000.0 + 50.0 * torch.randn(64, generator=generator)  # (N,) far from 0, not of unit scale
    inputs = {"a": x, "b": -x}
    split = SplitTensors(inputs, {m: v.unsqueeze(1) for m, v in inputs.items()},
                         {m: torch.ones(64, 1, dtype=torch.bool) for m in inputs}, labels)
    features = FeatureSet("r", ["a", "b"], [], {s: split for s in ("train", "validation", "test")}, task="regression")
    model = build_model("concat", features, {}, seed=0)
    assert float(model.output_scale) == pytest.approx(float(labels.std()), rel=1e-6)
    with torch.no_grad():
        predicted = model(inputs, torch.ones(64, 2, dtype=torch.bool)).squeeze(-1)  # (N,)
    assert abs(float(predicted.mean()) - 1000.0) < 50.0  # within one label sd of the mean at initialisation
    features.task = "binary"
    classifier = build_model("concat", features, {}, seed=0)
    assert (float(classifier.output_scale), float(classifier.output_shift)) == (1.0, 0.0)
