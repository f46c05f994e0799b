"""Modality reliance (issue 24, item 2): permutation reliance on a planted toy (about 0 for the modality
a model ignores, large for the one it uses), for every task, with tokens and padding masks, with
modalities missing in the data, for 2 to 4 modalities; evaluation's batched permutations against a
hand-made permuted input; the shares and equity index by hand; the metric names through the codec;
stacked training; and the report's reliance section on a hand-written store."""

from __future__ import annotations

import math

import pytest
import torch

from benchmark.features.tensors import FeatureSet, SplitTensors
from benchmark.train.evaluation import References, evaluate
from benchmark.train.loop import TrainConfig, train
from benchmark.train.model import build_model
from benchmark.train.reliance import (PERMUTATIONS, equity_index, permutations, permuted_rows, reliance_drop,
                                      reliance_metrics, reliance_shares)
from benchmark.train.tasks import Task
from benchmark.vocabulary import (DEFAULT_RANKING_METRICS, RELIANCE_EQUITY, RELIANCE_SHARE_PREFIX, reliance_metric,
                                    reliance_modality, reliance_share_metric)
from tests.test_stacked_training import _deterministic_hparams

CLASSES = 3


def _planted(task: str = "multiclass", modalities: int = 2, rows: int = 240, tokens: int = 3, missing: float = 0.0,
             seed: int = 0) -> FeatureSet:
    """Modality "a" carries the label, every other modality ("b", "c", "d") is noise independent of it.
    Tokens: the pooled vector plus small noise, the last token padded in half the rows. ``missing``: the
    share of rows where one modality (chosen at random) is absent in the data."""
    generator = torch.Generator().manual_seed(seed)
    names = ["a", "b", "c", "d"][:modalities]

    def split(n: int) -> SplitTensors:
        signal = torch.randn(n, 2, generator=generator)  # (N, 2): what the label is made of
        if task == "multiclass":
            labels = torch.bucketize(signal[:, 0].contiguous(), torch.tensor([-0.43, 0.43]))  # (N,) 3 roughly even classes
        elif task == "binary":
            labels = (signal[:, 0] > 0).float()  # (N,)
        elif task == "multilabel":
            labels = (torch.stack([signal[:, 0], signal[:, 1], signal.sum(1)], 1) > 0).float()  # (N, 3)
        else:
            labels = 3.0 * signal[:, 0] + signal[:, 1]  # (N,)
        pooled = {"a": torch.cat([signal, 0.1 * torch.randn(n, 2, generator=generator)], 1)}  # (N, 4)
        pooled.update({m: torch.randn(n, 4, generator=generator) for m in names[1:]})  # (N, 4) noise
        mask = torch.ones(n, tokens, dtype=torch.bool)
        mask[: n // 2, -1] = False  # varying lengths
        token_features = {m: x.unsqueeze(1) + 0.05 * torch.randn(n, tokens, 4, generator=generator)
                          for m, x in pooled.items()}  # (N, T, 4)
        available = torch.ones(n, len(names), dtype=torch.bool)
        gone = torch.rand(n, generator=generator) < missing  # (N,)
        available[gone, torch.randint(len(names), (int(gone.sum()),), generator=generator)] = False
        for column, m in enumerate(names):  # an absent modality's features are zeros, as the cache holds them
            pooled[m][~available[:, column]] = 0
            token_features[m][~available[:, column]] = 0
        return SplitTensors({m: x.half() for m, x in pooled.items()}, {m: x.half() for m, x in token_features.items()},
                            {m: mask.clone() for m in names}, labels, available)

    class_names = [str(c) for c in range(CLASSES)] if task in ("multiclass", "multilabel") else ["0", "1"]
    features = FeatureSet("planted", names, class_names if task != "regression" else ["y"],
                          {"train": split(rows), "validation": split(rows // 2), "test": split(rows)})
    features.task = task
    return features


def _trained(features: FeatureSet, strategy: str = "concat", seed: int = 0, epochs: int = 25, **hparams):
    task = Task.of(features)
    metric = DEFAULT_RANKING_METRICS[task.kind]
    model = build_model(strategy, features, {**_deterministic_hparams(strategy), **hparams}, seed)
    config = TrainConfig(epochs=epochs, batch_size=32, lr=3e-3, seed=seed, min_epochs=epochs, modality_dropout=0.0,
                         metric=metric, task=task.kind)
    train(model, features.splits["train"], features.modalities, config)
    return model, metric


def _evaluate(model, features: FeatureSet, metric: str):
    task = Task.of(features)
    test = features.splits["test"]
    references = References.of(features.splits["train"].labels, test.labels, features.num_classes, task)
    return evaluate(model, test, features.modalities, references, seed=5, metric=metric)


# ------------------------------------------------------------------ the planted toy
@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel", "regression"])
def test_reliance_is_about_zero_for_an_ignored_modality_and_large_for_the_used_one(task):
    features = _planted(task)
    model, metric = _trained(features)
    result = _evaluate(model, features, metric)
    assert set(result.reliance) == {"a", "b"}
    # the model learned from a: it scores well, and permuting a costs most of that (MAE: the error grows by
    # more than half the label's spread, 3.2 / sqrt(pi / 2) ~ 2.5 mean absolute deviation)
    large = {"multiclass": 0.3, "binary": 0.3, "multilabel": 0.25, "regression": 1.0}[task]
    assert result.reliance["a"] > large, (task, result.reliance, result.scores)
    # b is noise the model can only overfit a little: permuting it changes the score by almost nothing
    small = {"multiclass": 0.05, "binary": 0.05, "multilabel": 0.05, "regression": 0.1}[task]
    assert abs(result.reliance["b"]) < small, result.reliance
    logged = reliance_metrics(result.reliance)
    assert logged[reliance_share_metric("a")] > 0.9 and logged[RELIANCE_EQUITY] < 0.5


def test_a_model_that_reads_one_modality_only_has_exactly_zero_reliance_on_the_others():
    features = _planted(modalities=3)
    model, metric = _trained(features, "unimodal", modality="b", epochs=3)
    result = _evaluate(model, features, metric)
    assert result.reliance["a"] == 0.0 and result.reliance["c"] == 0.0
    # b is noise: whatever the model learned from it, it reads it (permuting b moves its predictions)
    assert result.reliance["b"] != 0.0


def test_lower_is_better_metrics_count_a_worse_score_as_a_positive_drop():
    assert reliance_drop(0.9, 0.6, "accuracy") == pytest.approx(0.3)
    assert reliance_drop(1.0, 2.5, "mae") == pytest.approx(1.5)  # the error grew: worse, positive
    assert reliance_drop(1.0, 0.8, "rmse") == pytest.approx(-0.2)


# ------------------------------------------------------------------ tokens, missing data, 2 to 4 modalities
@pytest.mark.parametrize("strategy,modalities,missing", [("concat", 4, 0.3), ("cross_attention", 2, 0.3),
                                                         ("cross_attention", 3, 0.0)])
def test_evaluation_permutes_inputs_token_masks_and_presence_together(strategy, modalities, missing):
    """The batched reliance equals scoring a hand-permuted copy of the test split, one condition at a time."""
    features = _planted(modalities=modalities, missing=missing)
    model = build_model(strategy, features, _deterministic_hparams(strategy), seed=1)
    result = _evaluate(model, features, "accuracy")
    test, names = features.splits["test"], features.modalities
    task = Task.of(features)
    n = len(test)
    tokens = model.consumes_tokens

    def outputs(split: SplitTensors) -> torch.Tensor:
        source = split.tokens if tokens else split.pooled
        inputs = {m: source[m].float() for m in names}
        present = split.available.clone()  # every modality the data holds (each row keeps one)
        with torch.no_grad():
            return model.eval()(inputs, present, split.token_mask if tokens else None)

    full = outputs(test)
    assert result.scores["accuracy"] == pytest.approx(task.score("accuracy", full, test.labels))
    for column, m in enumerate(names):
        drops = []
        for permutation in permutations(n):
            rows = permuted_rows(permutation, column, test.available)
            moved = SplitTensors(dict(test.pooled), dict(test.tokens), dict(test.token_mask), test.labels,
                                 test.available.clone())
            moved.pooled[m], moved.tokens[m], moved.token_mask[m] = (test.pooled[m][rows], test.tokens[m][rows],
                                                                     test.token_mask[m][rows])
            moved.available[:, column] = test.available[rows, column]
            assert bool(moved.available.any(dim=1).all())  # every row keeps a modality
            compared = rows == permutation
            if missing == 0:
                assert bool(compared.all())
            score = task.score("accuracy", outputs(moved)[compared], test.labels[compared])
            drops.append(task.score("accuracy", full[compared], test.labels[compared]) - score)
        assert result.reliance[m] == pytest.approx(sum(drops) / PERMUTATIONS, abs=1e-9), m
    assert set(result.reliance) == set(names)


def test_a_row_whose_only_modality_would_move_away_keeps_its_own():
    available = torch.tensor([[True, False], [True, True], [False, True], [True, False]])  # (4, 2)
    permutation = torch.tensor([2, 3, 0, 1])
    # permuting column 0 (a): row 0 has only a and would read row 2's (absent): it keeps its own; row 3 has
    # only a and reads row 1's (present): moved; rows 1 and 2 keep b, so they move whatever they read
    assert permuted_rows(permutation, 0, available).tolist() == [0, 3, 0, 1]
    assert permuted_rows(permutation, 1, available).tolist() == [2, 3, 2, 1]


def test_permutations_are_fixed_per_index_and_differ_between_indices():
    first, again = permutations(50), permutations(50)
    assert len(first) == PERMUTATIONS and all(torch.equal(x, y) for x, y in zip(first, again))
    assert not torch.equal(first[0], first[1]) and sorted(first[2].tolist()) == list(range(50))


# ------------------------------------------------------------------ shares and equity, by hand
def test_shares_clip_negative_reliance_and_the_equity_index_is_the_normalised_entropy():
    assert reliance_shares({"a": 0.3, "b": 0.1}) == pytest.approx({"a": 0.75, "b": 0.25})
    assert reliance_shares({"a": 0.2, "b": -0.05}) == {"a": 1.0, "b": 0.0}
    assert reliance_shares({"a": -0.01, "b": 0.0}) == {} and math.isnan(equity_index({"a": -0.01, "b": 0.0}))
    assert equity_index({"a": 0.2, "b": 0.2}) == pytest.approx(1.0)
    assert equity_index({"a": 0.2, "b": 0.0}) == 0.0
    # shares 0.75 / 0.25: -(0.75 ln 0.75 + 0.25 ln 0.25) / ln 2 = 0.8113
    assert equity_index({"a": 0.3, "b": 0.1}) == pytest.approx(0.811278, abs=1e-6)
    assert equity_index({"a": 0.1, "b": 0.1, "c": 0.1, "d": 0.1}) == pytest.approx(1.0)
    # three modalities, one ignored: ln 2 / ln 3
    assert equity_index({"a": 0.1, "b": 0.1, "c": 0.0}) == pytest.approx(math.log(2) / math.log(3))
    assert math.isnan(equity_index({"a": 0.4}))  # one modality: nothing to spread


# ------------------------------------------------------------------ names through the codec and the record
def test_metric_names_round_trip_through_the_codec():
    for modality in ("image", "text", "equity", "audio_2"):
        assert reliance_modality(reliance_metric(modality)) == modality
        assert reliance_modality(reliance_share_metric(modality), RELIANCE_SHARE_PREFIX) == modality
        assert reliance_modality(reliance_share_metric(modality)) is None
    assert reliance_metric("equity") != RELIANCE_EQUITY and reliance_modality(RELIANCE_EQUITY) is None
    assert reliance_modality("test_accuracy") is None
    assert reliance_metrics({"image": 0.3, "text": 0.1}) == pytest.approx({
        "reliance_permuted.image": 0.3, "reliance_permuted.text": 0.1, "reliance_share.image": 0.75,
        "reliance_share.text": 0.25, "reliance_equity": 0.811278}, abs=1e-6)
    # a model that relies on nothing: its drops are logged, shares and equity are not
    assert reliance_metrics({"image": -0.01, "text": 0.0}) == {"reliance_permuted.image": -0.01,
                                                                "reliance_permuted.text": 0.0}


def test_the_run_record_logs_the_reliance_metrics():
    from benchmark.train.results import Cell, RunResult

    result = RunResult(Cell("d", "concat", "concat", 0.3, 0), "early", {}, {}, "multiclass", {"accuracy": 0.8},
                       {}, {}, 0.5, {"accuracy": 0.7}, 0.8, 10, 1.0, 1.0, 1.0, 1.0, {}, "cpu", 1.0,
                       reliance={"image": 0.3, "text": 0.1})
    metrics = result.metrics()
    assert metrics["reliance_permuted.image"] == 0.3 and metrics["reliance_share.text"] == pytest.approx(0.25)
    assert metrics["reliance_equity"] == pytest.approx(0.811278, abs=1e-6)
    assert result.to_dict()["reliance"] == {"image": 0.3, "text": 0.1}


# ------------------------------------------------------------------ stacked training
def test_seeds_trained_stacked_have_the_reliance_they_have_trained_one_by_one():
    from benchmark.train.stacked import train_stacked

    features = _planted()
    hparams = _deterministic_hparams("concat")
    configs = [TrainConfig(epochs=8, batch_size=32, lr=3e-3, seed=s, min_epochs=8, modality_dropout=0.3)
               for s in (0, 1)]
    alone = [build_model("concat", features, hparams, s) for s in (0, 1)]
    stacked = [build_model("concat", features, hparams, s) for s in (0, 1)]
    for model, config in zip(alone, configs):
        train(model, features.splits["train"], features.modalities, config)
    train_stacked(stacked, features.splits["train"], features.modalities, configs)
    reliance = [(_evaluate(a, features, "accuracy").reliance, _evaluate(s, features, "accuracy").reliance)
                for a, s in zip(alone, stacked)]
    for one, many in reliance:
        # the same models up to floating-point rounding: at most a test row (1/240) flips per permutation
        assert many == pytest.approx(one, abs=1.5 / 240), (one, many)
        assert one["a"] > 0.3 and abs(one["b"]) < 0.05
    assert reliance[0][0] != reliance[1][0]  # the seeds differ


# ------------------------------------------------------------------ end to end: a real small bench
@pytest.mark.slow
def test_a_bench_logs_reliance_for_every_modality_and_the_report_shows_it(fusebench_home, capsys):
    import os

    from mlflow.tracking import MlflowClient

    from benchmark import api
    from benchmark.cli import main
    from benchmark.vocabulary import EXPERIMENT
    from tests.helpers_runs import write_tabular_card

    write_tabular_card(fusebench_home / "cards", "tiny")
    args = ["bench", "--profile", "smoke", "--datasets", "tiny", "--strategies", "concat", "--trials", "0",
            "--epochs", "3", "--patience", "2", "--seeds", "0,1", "--dropout", "0.3", "--device", "cpu"]
    assert main(args) == 0, capsys.readouterr()
    uri = os.environ["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], "tags.`fusebench.kind` = 'cell'")
    assert runs
    for run in runs:
        m = run.data.metrics
        for modality in ("left", "right"):
            assert math.isfinite(m[reliance_metric(modality)]), (modality, m)
    table = api.results(tracking_uri=uri)
    assert {"reliance[left]", "reliance[right]"} <= set(table.columns)
    text = (fusebench_home / "reports" / "latest" / "report.md").read_text()
    assert "### Modality reliance" in text and "left permuted" in text


# ------------------------------------------------------------------ the report, from a hand-written store
# variant -> (family, accuracy per seed, permutation reliance (image, text) per seed, collapsed)
STORE = {"leaner": ("early", [0.85, 0.87], [(0.30, 0.01), (0.28, -0.01)], 0.0),
         "concat": ("early", [0.80, 0.82], [(0.20, 0.15), (0.16, 0.12)], 0.0),
         "stuck": ("late", [0.40, 0.40], [(0.02, 0.0), (0.01, 0.0)], 1.0),
         "unimodal[text]": ("unimodal", [0.60, 0.62], [(0.0, 0.25), (0.0, 0.27)], 0.0)}


def _write_store(tmp_path, with_reliance: bool = True) -> str:
    """One dataset (image, text), 2 seeds per configuration. `leaner` relies almost only on image (shares 0.97
    and 1.0); concat on both; `stuck` collapsed (left out of the check); the unimodal baseline reads text only
    (by design: left out). Removing image costs 0.2 (0.3 for leaner), removing text 0.05."""
    from benchmark.tracking.mlflow_runs import MatrixTracker
    from tests.helpers_runs import start_synthetic_cell

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    tracker = MatrixTracker(uri, "rel-matrix", {"profile": "test"}, "cpu")
    for variant, (family, accuracies, reliances, collapsed) in STORE.items():
        for seed, (acc, reliance) in enumerate(zip(accuracies, reliances)):
            params = {"dataset": "d", "strategy": variant.split("[")[0], "variant": variant, "family": family,
                      "seed": str(seed), "modality_dropout": "0.3", "device": "cpu"}
            run_id = start_synthetic_cell(tracker, f"{variant}-{seed}", f"d · {variant} · dropout 0.3 · seed {seed}",
                                          params)
            metrics = {"test_accuracy": acc, "test_macro_f1": acc, "default_test_accuracy": acc,
                       "collapsed": collapsed, "not_converged": 0.0,
                       "test_accuracy_subset.image-text": acc, "test_accuracy_subset.text": acc - 0.2,
                       "test_accuracy_subset.image": acc - 0.05}
            if variant == "leaner":
                metrics["test_accuracy_subset.text"] = acc - 0.3
            if with_reliance:
                metrics.update(reliance_metrics(dict(zip(("image", "text"), reliance))))
            tracker.finish_cell(run_id, params, metrics, {"family": family}, {})
    tracker.finish_matrix({})
    return uri


def test_the_report_tables_reliance_and_names_the_configurations_that_rely_on_one_modality(tmp_path):
    from benchmark.reporting import build_report
    from benchmark.reporting.analysis import analyse_matrix
    from benchmark.reporting.fetch import fetch_matrix
    from benchmark.reporting.reliance import reliance_table
    from benchmark.reporting.verdicts import DOMINANT_SHARE, one_modality

    uri = _write_store(tmp_path)
    runs = fetch_matrix(uri, "rel-matrix")
    a = analyse_matrix(runs.ok, runs.problems)[0]
    verdict = one_modality(a)
    assert verdict.checked == 2 and DOMINANT_SHARE == 0.9  # leaner and concat; stuck collapsed, unimodal by design
    (config, modality, share, equity), = verdict.dominated
    # leaner's shares: 0.30 / 0.31 and 1.0 (its -0.01 clipped): mean 0.9839; equity: mean of 0.2056 and 0
    assert (config.variant, modality) == ("leaner", "image")
    assert share == pytest.approx((0.30 / 0.31 + 1.0) / 2) and equity == pytest.approx(
        equity_index({"image": 0.30, "text": 0.01}) / 2)
    from benchmark.reporting.table import cell_table

    cells = cell_table(runs).set_index(["variant", "seed"])
    assert cells.loc[("leaner", 0), "reliance[image]"] == pytest.approx(0.30)
    assert cells.loc[("leaner", 1), "reliance_share[text]"] == 0.0
    assert cells.loc[("concat", 0), "reliance_equity"] == pytest.approx(equity_index({"image": 0.20, "text": 0.15}))
    table = reliance_table(a).configs.set_index("variant")
    assert table.loc["concat", "permuted:image"] == pytest.approx(0.18)
    assert table.loc["concat", "removed:image"] == pytest.approx(0.2) and table.loc["concat", "removed:text"] == \
        pytest.approx(0.05)

    folder, text = build_report(uri, out_root=tmp_path / "reports")
    section = text.split("### Modality reliance", 1)[1].split("\n### ", 1)[0]
    assert "| strategy | train dropout | image permuted | image removed | text permuted | text removed | equity |" \
        in section
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in section.splitlines() if line.startswith(("| leaner ", "| concat "))}
    assert rows["leaner"][:7] == ["leaner", "0.3", "+0.290", "+0.300", "+0.000", "+0.050", "0.10"]
    concat_equity = (equity_index({"image": 0.20, "text": 0.15}) + equity_index({"image": 0.16, "text": 0.12})) / 2
    assert rows["concat"][:7] == ["concat", "0.3", "+0.180", "+0.200", "+0.135", "+0.050", f"{concat_equity:.2f}"]
    callout = ("**Reliance on one modality:** 1 of 2 fused configurations rely almost entirely on one modality "
               "(one modality's share of the permutation reliance at least 0.9)")
    assert callout in section and "`leaner` (train dropout 0.3): image 0.98 (equity 0.10)" in section
    summary = text.split("## Which strategy to use", 1)[1].split("## Dataset", 1)[0]
    assert callout in summary and "`concat` (train dropout 0.3): image" not in summary


def test_removal_and_permutation_drops_are_positive_when_an_error_metric_grows(tmp_path):
    import pandas as pd

    from benchmark.reporting.analysis import analyse
    from benchmark.reporting.reliance import reliance_table

    runs = pd.DataFrame([{"dataset": "r", "variant": "concat", "strategy": "concat", "family": "early",
                          "dropout": "0.3", "seed": seed, "run_id": str(seed), "task": "regression",
                          "ranking_metric": "mae", "test_mae": 1.0, "test_rmse": 1.2, "test_pearson_r": 0.9,
                          "test_mae_subset.a-b": 1.0, "test_mae_subset.a": 1.5, "test_mae_subset.b": 3.0,
                          **reliance_metrics({"a": 2.0, "b": 0.4})} for seed in (0, 1)])
    problems = pd.DataFrame(columns=["dataset", "variant", "strategy", "family", "dropout", "seed", "status", "error"])
    table = reliance_table(analyse("r", runs, problems)).configs.iloc[0]
    assert table["removed:a"] == pytest.approx(2.0) and table["removed:b"] == pytest.approx(0.5)
    assert table["permuted:a"] == pytest.approx(2.0) and table["share:a"] == pytest.approx(2.0 / 2.4)


def test_a_store_without_reliance_has_no_reliance_section_or_callout(tmp_path):
    from benchmark.reporting import build_report

    _, text = build_report(_write_store(tmp_path, with_reliance=False), out_root=tmp_path / "reports")
    assert "Modality reliance" not in text and "Reliance on one modality" not in text and "permuted" not in text
