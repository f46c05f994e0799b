"""The report's energy part (benchmark/reporting/energy_section.py, cost_fronts.py), built from MLflow runs
logged here with known energy, parameter counts and scores: the source is said (estimate or measured),
the fronts name their configurations, and the metric axis separates fused strategies that lie close."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmark.reporting import build_report
from benchmark.reporting.analysis import analyse_matrix
from benchmark.reporting.cost_fronts import ENERGY, PARAMS, front_frame, metric_range, on_front
from benchmark.reporting.fetch import fetch_matrix
from benchmark.tracking.mlflow_runs import MatrixTracker
from benchmark.vocabulary import ENERGY_PER_1K_INFERENCES_J, ENERGY_SOURCE, ENERGY_TRAIN_WH
from tests.helpers_runs import start_synthetic_cell

# variant -> (family, accuracy per seed, training energy Wh, parameters). The fused strategies lie within
# 0.05 of each other; the unimodal baselines far below; the majority class at 0.30.
CONFIGS = {
    "concat": ("early", [0.81, 0.82], 0.010, 20_000),
    "tfn": ("intermediate", [0.84, 0.85], 0.050, 400_000),
    "late_weighted": ("late", [0.80, 0.80], 0.004, 9_000),
    "cross_attention": ("attention", [0.83, 0.82], 0.200, 150_000),  # costs more than tfn, scores less
    "unimodal[text]": ("unimodal", [0.52, 0.54], 0.002, 4_000),
}
SOURCE = "estimate: rated power"


def _store(folder: Path, energy: bool) -> str:
    uri = f"sqlite:///{folder}/mlruns.db"
    tracker = MatrixTracker(uri, "energy-matrix", {"profile": "test"}, "cpu")
    for variant, (family, accuracies, wh, params_count) in CONFIGS.items():
        for seed, accuracy in enumerate(accuracies):
            params = {"dataset": "toy", "strategy": variant.split("[")[0], "variant": variant, "family": family,
                      "seed": str(seed), "modality_dropout": "0.3", "device": "cpu",
                      ENERGY_SOURCE: SOURCE if energy else "none"}
            metrics = {"test_accuracy": accuracy, "test_macro_f1": accuracy - 0.05, "param_count": float(params_count),
                       "inference_samples_per_s": 1e5 / (1 + params_count / 1e4), "reference_accuracy": 0.30,
                       "default_test_accuracy": accuracy, "tuning_gain": 0.0}
            if energy:
                metrics.update({ENERGY_TRAIN_WH: wh * (1 + 0.1 * seed), ENERGY_PER_1K_INFERENCES_J: wh * 10})
            run_id = start_synthetic_cell(tracker, f"{variant}-{seed}", f"toy · {variant} · seed {seed}", params)
            tracker.finish_cell(run_id, params, metrics, {"family": family}, {"note": "test"})
    tracker.finish_matrix({})
    return uri


@pytest.fixture(scope="module")
def energy_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("energy")
    uri = _store(folder, energy=True)
    return uri, build_report(uri, out_root=folder / "reports")


def test_the_metric_axis_separates_the_fused_strategies(energy_report):
    uri, _ = energy_report
    runs = fetch_matrix(uri)
    [a] = analyse_matrix(runs.ok, runs.problems)
    data = front_frame(a)
    low, high = metric_range(a, data)
    assert 0.75 < low < 0.80 and 0.845 < high < 0.87  # not 0-1: the fused spread 0.80..0.845 fills it
    assert data.loc[data["variant"] == "unimodal[text]", a.score].iloc[0] < low  # drawn on the edge instead
    energy_front = set(data[on_front(a, data, ENERGY)]["variant"])
    assert energy_front == {"unimodal[text]", "late_weighted", "concat", "tfn"}  # cross_attention: dominated by tfn
    assert data.loc[data["variant"] == "tfn", ENERGY.column].iloc[0] == pytest.approx(0.050 * 1.05)


def test_the_report_says_estimate_and_names_each_front(energy_report):
    _, (folder, text) = energy_report
    part = text[text.index("against energy and size"):]
    assert "**Estimate (rated power), not a measurement**" in part and f"`{SOURCE}`" in part
    for stem in ("score_vs_energy", "score_vs_params"):
        assert (folder / f"toy_{stem}.png").exists() and f"](toy_{stem}.png)" in text
    energy_caption = next(line for line in part.splitlines() if "against training energy" in line)
    assert ("cheapest first: `unimodal[text]` (d=0.3), `late_weighted` (d=0.3), `concat` (d=0.3), `tfn` (d=0.3)"
            in energy_caption)
    assert "Beyond the metric axis (drawn on its edge): `unimodal[text]` (d=0.3)" in energy_caption
    assert "Energy is an estimate (rated power)" in energy_caption
    params_caption = next(line for line in part.splitlines() if "against parameter count" in line)
    # by parameters every configuration is on the front (each larger one scores more); the order is by size
    assert ("cheapest first: `unimodal[text]` (d=0.3), `late_weighted` (d=0.3), `concat` (d=0.3), "
            "`cross_attention` (d=0.3), `tfn` (d=0.3)") in params_caption
    row = next(line for line in part.splitlines() if line.startswith("| tfn |"))
    assert "0.0525" in row and "0.500" in row and "400,000" in row  # Wh (mean of 0.05, 0.055), J per 1,000, params


def test_a_store_without_energy_says_no_energy_counter_and_still_draws_the_parameter_front(tmp_path):
    uri = _store(tmp_path, energy=False)
    folder, text = build_report(uri, out_root=tmp_path / "reports")
    part = text[text.index("against energy and size"):]
    assert "No energy counter" in part
    assert not (folder / "toy_score_vs_energy.png").exists()
    assert (folder / "toy_score_vs_params.png").exists()
