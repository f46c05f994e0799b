"""Datasets with three modalities in the report: the gain over the best pair of modalities next to the
best single one, and strategies that state a two-modality limit listed as not applicable (planning
skips them) rather than silently missing."""

from __future__ import annotations

import json

import pytest

from benchmark.run.config import MatrixConfig
from benchmark.run.plan import Plan
from benchmark.vocabulary import TAG_NOT_APPLICABLE, subset_metric
from tests.test_plugins import PLUGIN_SOURCE
from tests.helpers_runs import start_synthetic_cell

# test_plugins' plugin, stating a limit of two modalities
LIMITED_PLUGIN = PLUGIN_SOURCE.format(name="two_only_test").replace(
    '    family = "early"\n', '    family = "early"\n    max_modalities = 2\n')
assert "max_modalities = 2" in LIMITED_PLUGIN


def test_a_strategy_limited_to_two_modalities_is_not_applicable_to_three(toy_card, tmp_path):
    text = toy_card.read_text().replace("name: toy", "name: toy3")
    text += "  pixels: {column: image, encoder: raw_pixels}\n"
    three = toy_card.with_name("toy3.yaml")
    three.write_text(text)
    plugin = tmp_path / "two_only_plugin.py"
    plugin.write_text(LIMITED_PLUGIN)
    config = MatrixConfig(name="t", datasets=("toy", "toy3"), strategies=("concat", "two_only_test"),
                          plugins=(str(plugin),))
    plan = Plan.build(config)
    planned = {(c.dataset, c.strategy) for c in plan.cells}
    assert ("toy", "two_only_test") in planned and ("toy3", "two_only_test") not in planned
    assert ("toy3", "concat") in planned
    skipped = plan.not_applicable
    assert list(skipped) == ["toy3"] and list(skipped["toy3"]) == ["two_only_test"]
    assert skipped["toy3"]["two_only_test"] == "takes 2 to 2 modalities; `toy3` has 3"


def test_report_shows_gain_over_best_pair_and_not_applicable(tmp_path):
    from mlflow.tracking import MlflowClient

    from benchmark.reporting import build_report
    from benchmark.tracking.mlflow_runs import MatrixTracker

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    tracker = MatrixTracker(uri, "three-matrix", {"profile": "test"}, "cpu")
    MlflowClient(uri).set_tag(tracker.parent_id, TAG_NOT_APPLICABLE, json.dumps(
        {"d": {"two_only": "takes 2 to 2 modalities; `d` has 3"}}))
    # variant -> (family, full-input accuracy per seed, {subset: accuracy})
    subsets = {("a",): 0.50, ("b",): 0.60, ("c",): 0.40, ("a", "b"): 0.70, ("a", "c"): 0.65, ("b", "c"): 0.66}
    runs = {
        "concat": ("early", [0.80, 0.82, 0.81]),
        "unimodal[b]": ("unimodal", [0.60, 0.61, 0.59]),
    }
    for variant, (family, accuracies) in runs.items():
        for seed, acc in enumerate(accuracies):
            params = {"dataset": "d", "strategy": variant.split("[")[0], "variant": variant, "family": family,
                      "seed": str(seed), "modality_dropout": "0.3", "device": "cpu"}
            run_id = start_synthetic_cell(tracker, f"{variant}-{seed}", f"d · {variant} · dropout 0.3 · seed {seed}", params)
            metrics = {"test_accuracy": acc, "test_macro_f1": acc, "default_test_accuracy": acc,
                       subset_metric(("a", "b", "c")): acc}
            metrics.update({subset_metric(s): v for s, v in subsets.items()})
            tracker.finish_cell(run_id, params, metrics, {"family": family}, {})
    tracker.finish_matrix({})
    _, text = build_report(uri, out_root=tmp_path / "reports")
    assert "### Gain over the best pair of modalities" in text
    pair_section = text.split("### Gain over the best pair of modalities", 1)[1]
    row = next(line for line in pair_section.splitlines() if line.startswith("| concat | 0.3 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    # full 0.810; best pair a + b 0.700 -> +0.110; best single b 0.600 -> +0.210
    assert cells[2:] == ["0.810", "a + b: 0.700", "+0.110", "b: 0.600", "+0.210"]
    table = pair_section.split("\n\n")[2]  # heading's text, caption, table
    assert "| concat | 0.3 |" in table and "unimodal[b]" not in table  # fused configurations only
    assert "**Not applicable here:** `two_only` (takes 2 to 2 modalities; `d` has 3)." in text


def test_summary_names_a_marked_unimodal_stronger_than_the_fusion_gain_baseline(tmp_path):
    """Marked configurations are never a baseline; when one scores above the baseline the fusion gain was
    measured against, the summary says the gains would be smaller against it."""
    from benchmark.reporting import build_report
    from benchmark.tracking.mlflow_runs import MatrixTracker

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    tracker = MatrixTracker(uri, "shadow-matrix", {"profile": "test"}, "cpu")
    runs = {  # variant -> (family, accuracies per seed, not_converged per seed)
        "concat": ("early", [0.80, 0.82, 0.81], [0, 0, 0]),
        "unimodal[a]": ("unimodal", [0.60, 0.61, 0.59], [0, 0, 0]),
        "unimodal[b]": ("unimodal", [0.75, 0.76, 0.74], [1, 0, 0]),  # marked: not converged 1/3
    }
    for variant, (family, accuracies, capped) in runs.items():
        for seed, (acc, flag) in enumerate(zip(accuracies, capped)):
            params = {"dataset": "d", "strategy": variant.split("[")[0], "variant": variant, "family": family,
                      "seed": str(seed), "modality_dropout": "0.3", "device": "cpu"}
            run_id = start_synthetic_cell(tracker, f"{variant}-{seed}", f"d · {variant} · dropout 0.3 · seed {seed}", params)
            metrics = {"test_accuracy": acc, "test_macro_f1": acc, "default_test_accuracy": acc,
                       "not_converged": float(flag), "collapsed": 0.0}
            tracker.finish_cell(run_id, params, metrics, {"family": family}, {})
    tracker.finish_matrix({})
    _, text = build_report(uri, out_root=tmp_path / "reports")
    from benchmark.reporting.analysis import analyse_matrix
    from benchmark.reporting.fetch import fetch_matrix
    from benchmark.reporting.verdicts import fusion_gain

    runs = fetch_matrix(uri, "shadow-matrix")
    verdict = fusion_gain(analyse_matrix(runs.ok, runs.problems)[0])
    assert verdict.baseline == "unimodal[a]" and verdict.baseline_score == pytest.approx(0.6)
    (stronger, score), = verdict.stronger_marked
    assert stronger.variant == "unimodal[b]" and stronger.not_converged == 1 and score == pytest.approx(0.75)
    gain = next(line for line in text.splitlines() if line.startswith("- **Fusion gain:**"))
    assert "over `unimodal[a]`" in gain
    assert ("A marked unimodal configuration scores higher than `unimodal[a]` (0.600) and so is never the "
            "baseline: `unimodal[b]` (train dropout 0.3) [not converged 1/3] at 0.750") in gain
