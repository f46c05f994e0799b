"""Calibration under missingness (issue 24, item 1): ECE, NLL and Brier score against values
computed by hand, a perfectly calibrated toy, the metrics logged for every missing rate by a real
small bench, decoded by api.results, and the report's calibration section."""

from __future__ import annotations

import math
import os

import pytest
import torch

from benchmark.train.calibration import (ECE_BINS, binary_calibration, calibration_scores,
                                         expected_calibration_error, multiclass_calibration)
from benchmark.vocabulary import (CALIBRATION_METRICS, calibration_metrics, metric_name, missing_metric,
                                    missing_prefix, modality_missing_metric)


def logits_of(probabilities) -> torch.Tensor:
    """Logits whose softmax is ``probabilities`` (rows summing to 1). (N, C) -> (N, C)"""
    return torch.tensor(probabilities, dtype=torch.float64).log()


# ------------------------------------------------------------------ the formulas, by hand
def test_multiclass_metrics_match_a_hand_computation():
    # 4 rows, 3 classes. Top-label confidences 0.7, 0.6, 0.5, 0.8; predicted 0, 1, 2, 0; labels 0, 0, 2, 1.
    probs = [[0.7, 0.2, 0.1], [0.3, 0.6, 0.1], [0.25, 0.25, 0.5], [0.8, 0.1, 0.1]]
    labels = torch.tensor([0, 0, 2, 1])
    out = multiclass_calibration(logits_of(probs), labels)
    # 15 bins of width 1/15: 0.5 -> bin (7/15, 8/15] (index 7), 0.6 -> (8/15, 9/15] (8), 0.7 -> (10/15, 11/15] (10),
    # 0.8 -> (11/15, 12/15] (11): one row per bin, so ECE = mean |correct - confidence|
    # = (|1 - 0.7| + |0 - 0.6| + |1 - 0.5| + |0 - 0.8|) / 4 = (0.3 + 0.6 + 0.5 + 0.8) / 4 = 0.55
    assert out["ece"] == pytest.approx(0.55)
    # NLL = -(ln 0.7 + ln 0.3 + ln 0.5 + ln 0.1) / 4
    assert out["nll"] == pytest.approx(-(math.log(0.7) + math.log(0.3) + math.log(0.5) + math.log(0.1)) / 4)
    # Brier per row: sum_c (p_c - onehot_c)^2
    # row 0: 0.3^2 + 0.2^2 + 0.1^2 = 0.14; row 1: 0.7^2 + 0.6^2 + 0.1^2 = 0.86
    # row 2: 0.25^2 + 0.25^2 + 0.5^2 = 0.375; row 3: 0.8^2 + 0.9^2 + 0.1^2 = 1.46
    assert out["brier"] == pytest.approx((0.14 + 0.86 + 0.375 + 1.46) / 4)


def test_rows_sharing_a_bin_are_averaged_before_the_gap():
    # Both rows at confidence 0.6 (same bin), one right and one wrong: accuracy 0.5, confidence 0.6,
    # gap 0.1 for the bin (not the mean of per-row gaps, 0.5).
    probs = [[0.6, 0.4], [0.6, 0.4]]
    out = multiclass_calibration(logits_of(probs), torch.tensor([0, 1]))
    assert out["ece"] == pytest.approx(0.1)
    # NLL = -(ln 0.6 + ln 0.4) / 2; Brier = ((0.4^2 + 0.4^2) + (0.6^2 + 0.6^2)) / 2 = (0.32 + 0.72) / 2
    assert out["nll"] == pytest.approx(-(math.log(0.6) + math.log(0.4)) / 2)
    assert out["brier"] == pytest.approx(0.52)


def test_binary_metrics_match_a_hand_computation():
    # p = 0.9, 0.2, 0.6; labels 1, 1, 0. Decisions 1, 0, 1: correct, wrong, wrong.
    # Confidences 0.9, 0.8, 0.6, each in its own bin: ECE = (0.1 + 0.8 + 0.6) / 3 = 0.5
    p = torch.tensor([0.9, 0.2, 0.6], dtype=torch.float64)
    out = binary_calibration(torch.logit(p).reshape(3, 1), torch.tensor([1, 1, 0]))
    assert out["ece"] == pytest.approx(0.5)
    assert out["nll"] == pytest.approx(-(math.log(0.9) + math.log(0.2) + math.log(0.4)) / 3)
    assert out["brier"] == pytest.approx((0.01 + 0.64 + 0.36) / 3)  # (p - y)^2


def test_multilabel_pools_every_row_and_label_as_one_binary_decision():
    p = torch.tensor([[0.9, 0.2], [0.6, 0.7]], dtype=torch.float64)
    labels = torch.tensor([[1, 1], [0, 1]])
    pooled = binary_calibration(torch.logit(p), labels)
    flat = binary_calibration(torch.logit(p).reshape(4, 1), labels.reshape(4))
    assert pooled == pytest.approx(flat)
    assert pooled["brier"] == pytest.approx((0.01 + 0.64 + 0.36 + 0.09) / 4)


def test_a_perfectly_calibrated_toy_has_no_calibration_error():
    # In each bin the share of correct rows equals the confidence: 10 rows at 0.8 with 8 right,
    # 10 rows at 0.6 with 6 right.
    probs = [[0.8, 0.2]] * 10 + [[0.6, 0.4]] * 10
    labels = torch.tensor([0] * 8 + [1] * 2 + [0] * 6 + [1] * 4)
    assert multiclass_calibration(logits_of(probs), labels)["ece"] == pytest.approx(0.0, abs=1e-12)
    # and confident correct answers: ECE, NLL and Brier all ~0
    sure = multiclass_calibration(torch.tensor([[30.0, 0.0, 0.0], [0.0, 0.0, 30.0]]), torch.tensor([0, 2]))
    assert sure == pytest.approx({"ece": 0.0, "nll": 0.0, "brier": 0.0}, abs=1e-10)


def test_an_overconfident_model_has_a_large_error():
    # always 99% sure, right half of the time: ECE = 0.49
    probs = [[0.99, 0.01]] * 10
    labels = torch.tensor([0, 1] * 5)
    assert multiclass_calibration(logits_of(probs), labels)["ece"] == pytest.approx(0.49)


def test_confidence_edges_fall_in_the_bin_they_close():
    # Bins are (b/15, (b+1)/15]: exactly 1/15 shares the first bin with 0.05, exactly 1.0 the last with 0.95.
    confidence = torch.tensor([1 / ECE_BINS, 0.05, 1.0, 0.95], dtype=torch.float64)
    correct = torch.tensor([False, True, True, False])
    # first bin: accuracy 0.5, confidence (1/15 + 0.05) / 2; last bin: accuracy 0.5, confidence 0.975
    first = abs(0.5 - (1 / ECE_BINS + 0.05) / 2)
    last = abs(0.5 - 0.975)
    assert expected_calibration_error(confidence, correct) == pytest.approx((2 * first + 2 * last) / 4)


def test_regression_gets_no_calibration_and_every_classifying_task_gets_all_three():
    assert calibration_scores("regression", torch.zeros(3, 1), torch.zeros(3)) == {}
    assert calibration_metrics("regression") == ()
    for task in ("multiclass", "binary", "multilabel"):
        assert calibration_metrics(task) == CALIBRATION_METRICS == ("ece", "nll", "brier")
    assert set(calibration_scores("multiclass", torch.zeros(3, 2), torch.tensor([0, 1, 0]))) == set(CALIBRATION_METRICS)


def test_metric_names_follow_the_codec():
    assert metric_name("ece") == "test_ece"
    assert missing_metric(0.3, missing_prefix("ece")) == "test_ece_missing.30"
    assert modality_missing_metric("image", 0.5, "brier") == "test_brier_missing_image.50"


# ------------------------------------------------------------------ evaluation: every condition, same outputs
def test_evaluation_gives_calibration_for_every_condition_from_the_outputs_it_scores():
    from benchmark.train.batching import random_presence, subset_presence
    from benchmark.train.evaluation import MISSING_RATES, References, evaluate, logits_under
    from benchmark.train.model import build_model
    from benchmark.train.modality_curves import modality_missing_masks
    from benchmark.train.tasks import Task
    from tests.test_stacked_training import _deterministic_hparams, _features

    features = _features()
    split, modalities = features.splits["test"], features.modalities
    task = Task.of(features)
    model = build_model("concat", features, _deterministic_hparams("concat"), seed=3)
    references = References.of(features.splits["train"].labels, split.labels, features.num_classes, task)
    result = evaluate(model, split, modalities, references, seed=11)
    n, labels = len(split), split.labels

    def alone(mask):
        return calibration_scores(task.kind, logits_under(model, split, modalities, [mask])[0], labels)

    assert result.calibration == pytest.approx(alone(subset_presence(n, modalities, tuple(modalities), "cpu")))
    generator = torch.Generator().manual_seed(11)
    assert list(result.missing_calibration) == list(MISSING_RATES)
    for rate in MISSING_RATES:
        mask = random_presence(n, len(modalities), rate, generator, "cpu", split.available)
        assert result.missing_calibration[rate] == pytest.approx(alone(mask)), rate
    for modality, by_rate in modality_missing_masks(n, modalities, MISSING_RATES, split.available, 11).items():
        for rate, mask in by_rate.items():
            expected = result.calibration if mask is None else alone(mask)
            assert result.modality_missing_calibration[modality][rate] == pytest.approx(expected), (modality, rate)


# ------------------------------------------------------------------ end to end: a real small bench
@pytest.mark.slow
def test_a_bench_logs_calibration_at_every_missing_rate_and_api_results_shows_it(fusebench_home, capsys):
    from mlflow.tracking import MlflowClient

    from benchmark import api
    from benchmark.cli import main
    from benchmark.train.evaluation import MISSING_RATES
    from benchmark.vocabulary import EXPERIMENT
    from tests.helpers_runs import write_tabular_card

    write_tabular_card(fusebench_home / "cards", "tiny")
    args = ["bench", "--profile", "smoke", "--datasets", "tiny", "--strategies", "concat", "--trials", "0",
            "--epochs", "3", "--patience", "2", "--seeds", "0", "--dropout", "0.3", "--device", "cpu", "--no-report"]
    assert main(args) == 0, capsys.readouterr()
    uri = os.environ["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], "tags.`fusebench.kind` = 'cell'")
    assert runs
    for run in runs:
        m = run.data.metrics
        for metric in CALIBRATION_METRICS:
            assert math.isfinite(m[metric_name(metric)]), metric
            for rate in MISSING_RATES:
                assert missing_metric(rate, missing_prefix(metric)) in m, (metric, rate)
                for modality in ("left", "right"):
                    assert modality_missing_metric(modality, rate, metric) in m, (modality, metric, rate)
            # rate 0 removes nothing: the full-input value, for one modality's curve (reused) and the
            # all-modality curve (the same outputs)
            assert m[modality_missing_metric("left", 0.0, metric)] == m[metric_name(metric)]
            assert m[missing_metric(0.0, missing_prefix(metric))] == pytest.approx(m[metric_name(metric)])
        assert 0.0 <= m["test_ece"] <= 1.0 and 0.0 <= m["test_brier"] <= 2.0 and m["test_nll"] >= 0.0
    table = api.results(tracking_uri=uri)
    for column in ("ece", "nll", "brier", "ece_missing:0", "ece_missing:50", "ece_missing:90", "brier_missing:50",
                   "nll_missing[left]:30", "ece_missing[right]:90"):
        assert column in table.columns, column
    row = table.iloc[0]
    run = next(r for r in runs if r.info.run_id == row["run_id"])
    assert row["ece_missing:50"] == run.data.metrics["test_ece_missing.50"]
    assert row["ece"] == run.data.metrics["test_ece"]


# ------------------------------------------------------------------ the report, from a hand-written store
def _write_store(tmp_path, with_calibration: bool = True) -> str:
    """A matrix of two fused strategies on one dataset, 2 seeds each, with missing-rate curves. `drifty`'s ECE
    at 50% missing is 0.05 -> 0.16 (more than twice), concat's 0.04 -> 0.06."""
    from benchmark.tracking.mlflow_runs import MatrixTracker
    from tests.helpers_runs import start_synthetic_cell

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    tracker = MatrixTracker(uri, "calib-matrix", {"profile": "test"}, "cpu")
    # variant -> (accuracy per seed, full-input ECE per seed, ECE at 50% missing per seed)
    runs = {"drifty": ([0.85, 0.87], [0.04, 0.06], [0.15, 0.17]),
            "concat": ([0.80, 0.82], [0.03, 0.05], [0.05, 0.07])}
    for variant, (accuracies, full, half) in runs.items():
        for seed, (acc, ece, ece_half) in enumerate(zip(accuracies, full, half)):
            params = {"dataset": "d", "strategy": variant, "variant": variant, "family": "early", "seed": str(seed),
                      "modality_dropout": "0.3", "device": "cpu"}
            run_id = start_synthetic_cell(tracker, f"{variant}-{seed}", f"d · {variant} · dropout 0.3 · seed {seed}",
                                          params)
            metrics = {"test_accuracy": acc, "test_macro_f1": acc, "default_test_accuracy": acc}
            for rate in (0.0, 0.5, 0.9):
                metrics[missing_metric(rate, missing_prefix("accuracy"))] = acc - rate / 3
            if with_calibration:
                metrics.update({"test_ece": ece, "test_nll": 10 * ece, "test_brier": 2 * ece})
                for rate, value in ((0.0, ece), (0.5, ece_half), (0.9, ece_half + 0.1)):
                    metrics[missing_metric(rate, missing_prefix("ece"))] = value
                    metrics[missing_metric(rate, missing_prefix("nll"))] = 10 * value
                    metrics[missing_metric(rate, missing_prefix("brier"))] = 2 * value
            tracker.finish_cell(run_id, params, metrics, {"family": "early"}, {})
    tracker.finish_matrix({})
    return uri


def test_the_report_tables_calibration_draws_it_and_calls_out_the_drifting_configuration(tmp_path):
    from benchmark.reporting import build_report
    from benchmark.reporting.analysis import analyse_matrix
    from benchmark.reporting.fetch import fetch_matrix
    from benchmark.reporting.verdicts import calibration_drift

    uri = _write_store(tmp_path)
    runs = fetch_matrix(uri, "calib-matrix")
    drift = calibration_drift(analyse_matrix(runs.ok, runs.problems)[0])
    assert drift.rate == 50 and drift.checked == 2
    (config, full, half), = drift.drifting  # concat: 0.04 -> 0.06 is not more than twice
    assert config.variant == "drifty" and full == pytest.approx(0.05) and half == pytest.approx(0.16)

    folder, text = build_report(uri, out_root=tmp_path / "reports")
    section = text.split("### Calibration under missing modalities", 1)[1].split("\n### ", 1)[0]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")]
            for line in section.splitlines() if line.startswith("| drifty ") or line.startswith("| concat ")}
    # strategy, dropout, ECE, ECE 50%, NLL, NLL 50%, Brier, Brier 50% (means over the two seeds)
    assert rows["drifty"][:8] == ["drifty", "0.3", "0.050", "0.160", "0.500", "1.600", "0.100", "0.320"]
    assert rows["concat"][:8] == ["concat", "0.3", "0.040", "0.060", "0.400", "0.600", "0.080", "0.120"]
    assert "| strategy | train dropout | ECE | ECE 50% missing | NLL | NLL 50% missing | Brier | Brier 50% missing |" \
        in section
    callout = ("**Calibration under missingness:** 1 of 2 configurations have a calibration error (ECE) at 50% "
               "missing more than 2 times their full-input ECE")
    assert callout in section and "`drifty` (train dropout 0.3): ECE 0.050 → 0.160" in section
    summary = text.split("## Which strategy to use", 1)[1].split("## Dataset", 1)[0]
    assert callout in summary and "concat` (train dropout 0.3): ECE" not in summary
    figure = folder / "d_calibration_curves.png"
    assert figure.exists() and figure.stat().st_size > 10_000


def test_a_store_without_calibration_has_no_calibration_section_or_callout(tmp_path):
    from benchmark.reporting import build_report

    _, text = build_report(_write_store(tmp_path, with_calibration=False), out_root=tmp_path / "reports")
    assert "Calibration" not in text and "calibration" not in text
    assert not list((tmp_path / "reports").glob("*/*calibration*"))
