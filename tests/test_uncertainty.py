"""Intervals and comparisons that count test-set sampling (reporting/uncertainty.py): on a toy where
the test rows, not the seeds, make the noise, the bootstrap over rows and seeds is wider than the
seed-only interval; under k-fold the seeds are nested in folds, never pooled; the metrics recomputed
on weighted rows (reporting/row_metrics.py) equal scikit-learn's on the rows themselves."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from benchmark.reporting.analysis import analyse
from benchmark.reporting.row_metrics import ROW_METRICS
from benchmark.reporting.row_predictions import RowPredictions
from benchmark.reporting.stats import mean_ci95
from benchmark.reporting.uncertainty import Basis, Bootstrap, condition_of, counted, dataset_uncertainty
from benchmark.reporting.verdicts import best_overall
from benchmark.vocabulary import FOLD, RANKING_METRIC, TASK

NO_PROBLEMS = pd.DataFrame(columns=["dataset", "variant", "strategy", "family", "dropout", "seed", "status", "error"])


class FakeStore:
    """run id -> RowPredictions, as PredictionStore.get answers."""

    def __init__(self, rows: dict) -> None:
        self.rows = rows

    def get(self, run_id: str):
        return self.rows.get(run_id)


def _store_and_runs(folds: list, seeds: int, rows: int, accuracy: dict, seed_flips: int):
    """Two configurations ("good", "concat") on shared test rows per fold; each run's predictions are
    right on a fixed share of rows (the fold's rows differ in difficulty) with ``seed_flips`` of the rows
    flipped: seed k of "good" flips k * ``seed_flips`` rows, "concat" none."""
    rng = np.random.default_rng(1)
    store, records = {}, []
    for fold in folds:
        truth = rng.integers(0, 4, rows)
        difficulty = rng.random(rows)
        for variant, acc in accuracy.items():
            for seed in range(seeds):
                right = difficulty < acc
                flip = np.zeros(rows, bool)
                if variant != "concat":
                    flip[:seed * seed_flips] = True  # seed k of "good" gets k * seed_flips rows wrong
                right = np.where(flip, ~right, right)
                pred = np.where(right, truth, (truth + 1) % 4)
                run_id = f"{variant}-{fold}-{seed}"
                store[run_id] = RowPredictions("multiclass", truth.astype(float), {"full": pred.astype(float)})
                record = {"dataset": "d", "variant": variant, "strategy": variant, "family": "early",
                          "dropout": "0.3", "seed": seed, "device": "cpu", "run_id": run_id, RANKING_METRIC: "accuracy",
                          TASK: "multiclass", "test_accuracy": float((pred == truth).mean())}
                if fold is not None:
                    record[FOLD] = fold
                records.append(record)
    return FakeStore(store), pd.DataFrame(records)


def test_the_test_set_aware_interval_is_wider_when_test_rows_dominate():
    # 60 test rows, seeds that differ by a row or two: the seeds barely move the score, the rows do
    store, runs = _store_and_runs([None], 3, 60, {"good": 0.80, "concat": 0.72}, seed_flips=1)
    a = analyse("d", runs, NO_PROBLEMS)
    column = condition_of("accuracy", None)[1]
    with_rows = Bootstrap(a, store).interval(("good", "0.3"), "full", "accuracy", column)
    seeds_only = Bootstrap(a, None).interval(("good", "0.3"), "full", "accuracy", column)
    assert with_rows.basis is Basis.ROWS_AND_SEEDS and seeds_only.basis is Basis.SEEDS_ONLY
    assert (with_rows.rows, with_rows.seeds) == (60, 3)
    assert abs(with_rows.mean - seeds_only.mean) < 1e-6  # the same point estimate
    assert with_rows.high - with_rows.low > 2 * (seeds_only.high - seeds_only.low)
    # a binomial's spread on 60 rows: sd sqrt(0.8 * 0.2 / 60) = 0.052, so a 95% interval about 0.2 wide
    assert 0.12 < with_rows.high - with_rows.low < 0.3
    # the comparison with concat: significant over seeds only, not once test-set sampling counts
    rows_test = Bootstrap(a, store).compare(("good", "0.3"), ("concat", "0.3"), "full", "accuracy", column)
    seed_test = Bootstrap(a, None).compare(("good", "0.3"), ("concat", "0.3"), "full", "accuracy", column)
    assert seed_test.p < 0.05 and rows_test.p > seed_test.p
    assert rows_test.diff.high - rows_test.diff.low > seed_test.diff.high - seed_test.diff.low
    assert "120" not in counted(rows_test.diff) and "60 test rows and 3 seed(s)" in counted(rows_test.diff)


def test_k_fold_nests_seeds_in_folds_and_never_pools_them():
    folds = [0, 1, 2, 3, 4]
    store, runs = _store_and_runs(folds, 5, 40, {"good": 0.80, "concat": 0.70}, seed_flips=0)
    a = analyse("d", runs, NO_PROBLEMS)
    column = condition_of("accuracy", None)[1]
    seeds_only = Bootstrap(a, None).interval(("good", "0.3"), "full", "accuracy", column)
    by_fold = runs[runs["variant"] == "good"].groupby(FOLD)["test_accuracy"].mean()
    mean, half = mean_ci95(by_fold.tolist())  # n = 5 folds, not 25 runs
    pooled_mean, pooled_half = mean_ci95(runs[runs["variant"] == "good"]["test_accuracy"].tolist())
    assert (seeds_only.folds, seeds_only.seeds) == (5, 5)
    assert abs(seeds_only.mean - mean) < 1e-12 and abs(seeds_only.half - half) < 1e-12
    assert seeds_only.half > pooled_half  # pooling 25 runs that share 5 test sets would claim more precision
    comparison = Bootstrap(a, None).compare(("good", "0.3"), ("concat", "0.3"), "full", "accuracy", column)
    assert (comparison.diff.folds, comparison.diff.seeds) == (5, 5)
    with_rows = Bootstrap(a, store).interval(("good", "0.3"), "full", "accuracy", column)
    assert (with_rows.folds, with_rows.seeds, with_rows.rows) == (5, 5, 200)
    assert "5 folds (200 rows) with 5 seed(s) nested in each fold" in counted(with_rows)


def test_every_pick_gets_an_interval_and_a_lead():
    store, runs = _store_and_runs([None], 3, 80, {"good": 0.80, "concat": 0.72}, seed_flips=3)
    a = analyse("d", runs, NO_PROBLEMS)
    u = dataset_uncertainty(a, store, best_overall(a), None, None, draws=300)
    assert u.basis is Basis.ROWS_AND_SEEDS and u.runs_without_rows == 0
    assert u.best.score.low < u.best.score.mean < u.best.score.high
    assert u.best.runner_up == ("concat", "0.3") and u.best.lead.diff.mean > 0
    assert u.baseline[("good", "0.3")].p_holm == u.baseline[("good", "0.3")].p  # one comparison: Holm leaves it
    # a store without the runs' rows: the seed-only fallback, and it says so
    fallback = dataset_uncertainty(a, FakeStore({}), best_overall(a), None, None, draws=300)
    assert fallback.basis is Basis.SEEDS_ONLY and fallback.runs_without_rows == len(runs)
    assert "test-set sampling is not counted" in counted(fallback.best.score)


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "auroc", "mean_ap", "mae", "rmse", "pearson_r"])
def test_row_metrics_on_unit_weights_equal_the_task_metrics(metric):
    rng = np.random.default_rng(3)
    n = 200
    ones = np.ones((1, n), np.float32)
    if metric in ("accuracy", "macro_f1"):
        truth, pred = rng.integers(0, 5, n), rng.integers(0, 5, n)
        pred[:120] = truth[:120]
        expected = {"accuracy": float((pred == truth).mean()),
                    "macro_f1": f1_score(truth, pred, average="macro", zero_division=0)}[metric]
        task = "multiclass"
    elif metric == "auroc":
        truth = rng.integers(0, 2, n)
        pred = np.round(np.clip(truth * 0.3 + rng.random(n) * 0.7, 0, 1), 2)  # ties on purpose
        expected, task = roc_auc_score(truth, pred), "binary"
    elif metric == "mean_ap":
        truth = rng.integers(0, 2, (n, 3))
        pred = np.round(np.clip(truth * 0.3 + rng.random((n, 3)) * 0.7, 0, 1), 2)
        expected = np.mean([average_precision_score(truth[:, j], pred[:, j]) for j in range(3)])
        task = "multilabel"
    else:
        truth = rng.normal(size=n)
        pred = truth + rng.normal(scale=0.5, size=n)
        expected = {"mae": np.abs(pred - truth).mean(), "rmse": np.sqrt(((pred - truth) ** 2).mean()),
                    "pearson_r": np.corrcoef(pred, truth)[0, 1]}[metric]
        task = "regression"
    value = ROW_METRICS[metric](task, pred.astype(float), truth.astype(float), ones)
    assert value.shape == (1,) and abs(float(value[0]) - float(expected)) < 1e-5
    # a resample's weights equal repeating the rows
    counts = rng.multinomial(n, np.full(n, 1 / n), size=1).astype(np.float32)
    repeated = np.repeat(np.arange(n), counts[0].astype(int))
    again = ROW_METRICS[metric](task, pred[repeated].astype(float), truth[repeated].astype(float),
                                np.ones((1, len(repeated)), np.float32))
    assert abs(float(ROW_METRICS[metric](task, pred.astype(float), truth.astype(float), counts)[0])
               - float(again[0])) < 1e-5
