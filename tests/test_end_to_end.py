"""A tiny real run: generated data, real encoders, real Optuna and MLflow stores in tmp."""

from __future__ import annotations

import os

import pytest
from mlflow.tracking import MlflowClient

from benchmark.cli import main
from benchmark.vocabulary import EXPERIMENT

pytestmark = pytest.mark.slow


def _cell_runs(uri):
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id], "tags.`fusebench.kind` = 'cell'")


def test_bench_logs_expected_metrics_and_resumes(toy_card, fusebench_home, capsys):
    uri = os.environ["MLFLOW_TRACKING_URI"]
    args = ["bench", "--profile", "smoke", "--datasets", "toy", "--strategies", "concat,late_weighted,cross_attention",
            "--trials", "2", "--epochs", "10", "--patience", "3", "--seeds", "0", "--dropout", "0.3", "--device", "cpu"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| concat |" in out and "report written to" in out

    runs = _cell_runs(uri)
    assert len(runs) == 3
    for run in runs:
        m, p = run.data.metrics, run.data.params
        assert run.info.status == "FINISHED" and run.data.tags["fusebench.status"] == "ok"
        assert p["dataset"] == "toy" and p["seed"] == "0" and p["modality_dropout"] == "0.3"
        assert any(k.startswith("hp.") for k in p)
        for key in ("test_accuracy", "test_macro_f1", "test_accuracy_subset.image", "test_accuracy_subset.text",
                    "test_accuracy_subset.image-text", "train_samples_per_s", "inference_samples_per_s",
                    "peak_cpu_rss_mb", "cpu_rss_growth_mb", "train_step_tensor_mb", "activation_mb", "tuning_gain",
                    "param_count", "epochs_run", "best_epoch", "collapsed", "not_converged", "majority_accuracy",
                    "majority_macro_f1", "chance_accuracy", "largest_predicted_class_share"):
            assert key in m, f"{key} missing from {p['variant']}"
        # a collapsed run has no robustness score; any other has one
        assert ("robustness" in m) == (m["collapsed"] == 0.0)
        # the protocol: stopped by a plateau or the cap of 10 epochs, best epoch within, curves per epoch
        assert p["stop_reason"] in ("plateau", "cap") and run.data.tags["stop_reason"] == p["stop_reason"]
        assert 1 <= m["best_epoch"] <= m["epochs_run"] <= 10
        assert m["not_converged"] == float(p["stop_reason"] == "cap")
        history = MlflowClient(tracking_uri=uri).get_metric_history(run.info.run_id, "curve.val_metric")
        assert [h.step for h in history] == list(range(1, int(m["epochs_run"]) + 1))
        assert m["chance_accuracy"] == pytest.approx(1 / 3)
        assert 0.0 <= m["test_accuracy"] <= 1.0 and 0.0 <= m["test_macro_f1"] <= 1.0
        assert m["train_samples_per_s"] > 0 and m["inference_samples_per_s"] > 0 and m["peak_cpu_rss_mb"] > 50
        assert 0 <= m["cpu_rss_growth_mb"] <= m["peak_cpu_rss_mb"]
        # weights + gradients + two AdamW moments (4 bytes each) + saved activations
        assert m["activation_mb"] > 0
        assert m["train_step_tensor_mb"] * 2**20 >= 16 * m["param_count"] + m["activation_mb"] * 2**20 - 1
        assert m["param_count"] > 1000
    # The image alone determines the colour: a trained model must beat chance (1/3) clearly with images.
    best_image = max(r.data.metrics["test_accuracy_subset.image"] for r in runs)
    assert best_image > 0.6

    # Features were cached: a second run encodes nothing and skips every finished cell.
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "0 encoded" in out or "features ready" not in out
    assert "0 run now, 3 already done" in out
    assert len(_cell_runs(uri)) == 3


def test_token_strategies_get_token_widths_when_they_differ_from_pooled():
    """Raw-pixel views have 784-d pooled vectors but 49-d patch tokens: token strategies must
    be built on the token width."""
    import torch

    from benchmark.features.tensors import FeatureSet, SplitTensors
    from benchmark.train.model import build_model

    def split(n):
        return SplitTensors(pooled={"a": torch.randn(n, 784), "b": torch.randn(n, 8)},
                            tokens={"a": torch.randn(n, 16, 49), "b": torch.randn(n, 2, 8)},
                            token_mask={"a": torch.ones(n, 16, dtype=torch.bool), "b": torch.ones(n, 2, dtype=torch.bool)},
                            labels=torch.zeros(n, dtype=torch.long))

    features = FeatureSet("x", ["a", "b"], ["0", "1"], {"train": split(4), "validation": split(2), "test": split(2)})
    model = build_model("cross_attention", features, {}, seed=0)
    data = features.splits["train"]
    present = torch.ones(4, 2, dtype=torch.bool)
    assert model(data.tokens, present, data.token_mask).shape == (4, 2)
    assert build_model("concat", features, {}, seed=0)(data.pooled, present).shape == (4, 2)
