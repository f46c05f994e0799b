"""The report's verdicts as data (benchmark/reporting/verdicts.py), on small hand-built frames of
finished runs: a marked configuration is never picked, ties fall to the name, a lower-is-better
metric picks the lowest; and one verdict rendered in words (reporting/summary.py) in Markdown
and in HTML."""

from __future__ import annotations

import pandas as pd
import pytest

from benchmark.reporting.analysis import analyse
from benchmark.reporting.document import Document
from benchmark.reporting.summary import best_overall_text, dataset_items
from benchmark.reporting.verdicts import (BestOverall, Config, Criterion, DatasetVerdicts, Estimate, GainStatus, NoPick,
                                          Scoring, TuningStatus, Versus, best_overall, dataset_verdicts)
from benchmark.vocabulary import COLLAPSED, NOT_CONVERGED, RANKING_METRIC, TASK, missing_metric, missing_prefix

NO_PROBLEMS = pd.DataFrame(columns=["dataset", "variant", "strategy", "family", "dropout", "seed", "status", "error"])


def _runs(cells: dict, metric: str = "accuracy", task: str = "multiclass") -> pd.DataFrame:
    """cells: variant -> (family, [score per seed], {extra per-run values}); every run at dropout 0.3.
    A score at 90% missing = score - "drop" (default 0.1) in the metric's worse direction."""
    lower = metric in ("mae", "rmse")
    rows = []
    for variant, (family, scores, extra) in cells.items():
        for seed, score in enumerate(scores):
            drop = extra.get("drop", 0.1)
            row = {"dataset": "d", "variant": variant, "strategy": variant.split("[")[0], "family": family,
                   "dropout": "0.3", "seed": seed, "device": "cpu", RANKING_METRIC: metric, TASK: task,
                   f"test_{metric}": score, "inference_samples_per_s": extra.get("sps", 1000.0),
                   COLLAPSED: float(extra.get("collapsed", 0)), NOT_CONVERGED: 0.0, "robustness": 0.8,
                   f"default_test_{metric}": score + (extra.get("gain", 0.01) * (1 if lower else -1)),
                   missing_metric(0.0, missing_prefix(metric)): score,
                   missing_metric(0.9, missing_prefix(metric)): score + (drop if lower else -drop)}
            if metric != "accuracy":
                row["test_accuracy"] = 0.5
            rows.append(row)
    return pd.DataFrame(rows)


def test_a_collapsed_configuration_is_never_picked_even_when_it_wins_everything():
    runs = _runs({
        "stuck": ("early", [0.95, 0.95], {"collapsed": 1, "sps": 9000.0, "drop": 0.0, "gain": 0.3}),
        "fancy": ("attention", [0.80, 0.82], {"sps": 5000.0}),
        "concat": ("early", [0.70, 0.73], {"sps": 4000.0, "drop": 0.05}),
        "unimodal[a]": ("unimodal", [0.60, 0.60], {"sps": 100.0}),
    })
    v = dataset_verdicts(analyse("d", runs, NO_PROBLEMS))
    assert v.best.config.variant == "fancy" and not v.best.config.marked
    assert v.best.marked_better == 1 and v.best.marked_best_score == pytest.approx(0.95)
    assert v.best.runner_up.variant == "concat" and v.best.versus is Versus.TESTED and v.best.test.n == 2
    # at 90% missing fancy keeps 0.71, concat 0.665, stuck 0.95 (collapsed): fancy
    assert v.when_missing.config.variant == "fancy" and v.when_missing.is_best_overall
    assert v.when_missing.criterion is Criterion.AT_HIGHEST_RATE and v.when_missing.value == pytest.approx(0.71)
    # median throughput 4,500: stuck (marked) and fancy are at or above it
    assert v.within_budget.config.variant == "fancy" and v.within_budget.median_throughput == 4500
    assert v.fusion.status is GainStatus.NAMED and v.fusion.top.variant == "fancy"
    assert (v.fusion.beats, v.fusion.of, v.fusion.some_marked) == (2, 2, True)
    assert v.fusion.top_gain == pytest.approx(0.21)
    assert v.tuning.status is TuningStatus.NAMED and v.tuning.top.variant != "stuck"
    assert v.trust.marked == 1 and v.trust.marks.collapsed == 1 and v.trust.marks.not_converged == 0


def test_every_configuration_collapsed_names_no_pick():
    runs = _runs({"stuck": ("early", [0.9, 0.9], {"collapsed": 1}),
                  "flat": ("late", [0.8, 0.8], {"collapsed": 1})})
    v = dataset_verdicts(analyse("d", runs, NO_PROBLEMS))
    assert v.best.config is None and v.best.why_none is NoPick.ALL_MARKED and v.best.marks.collapsed == 2
    assert v.best.marked_best_score == pytest.approx(0.9)
    assert v.when_missing.why_none is NoPick.ALL_MARKED and v.within_budget.why_none is NoPick.ALL_FAST_MARKED
    assert v.tuning.status is TuningStatus.ALL_MARKED and v.fusion.status is GainStatus.NO_BASELINE


def test_a_tie_goes_to_the_first_name_and_the_runner_up_has_the_same_score():
    runs = _runs({"beta": ("late", [0.8, 0.8], {}), "alpha": ("early", [0.8, 0.8], {})})
    v = best_overall(analyse("d", runs, NO_PROBLEMS))
    assert v.config.variant == "alpha" and v.runner_up.variant == "beta"
    assert v.score.mean == v.runner_up_score == pytest.approx(0.8) and v.n_ranked == 2


def test_regression_picks_the_lowest_error():
    runs = _runs({
        "low": ("attention", [0.70, 0.72], {"sps": 100.0}),
        "steady": ("late", [0.80, 0.80], {"sps": 200.0, "drop": 0.0}),
        "stuck": ("early", [0.50, 0.50], {"collapsed": 1, "sps": 300.0}),
        "unimodal[t]": ("unimodal", [0.90, 0.90], {"sps": 400.0}),
    }, metric="mae", task="regression")
    v = dataset_verdicts(analyse("d", runs, NO_PROBLEMS))
    assert not v.scoring.higher_is_better and not v.scoring.curve_higher_is_better
    assert v.best.config.variant == "low" and v.best.score.mean == pytest.approx(0.71)
    # the collapsed one has the lowest MAE: acknowledged, never picked
    assert v.best.marked_better == 1 and v.best.marked_best_score == pytest.approx(0.5)
    # at 90% missing low rises to 0.81, steady stays at 0.80: steady is best when a modality is missing
    assert v.when_missing.config.variant == "steady" and v.when_missing.value == pytest.approx(0.8)
    assert v.when_missing.best_overall_value == pytest.approx(0.81)
    # median throughput 250: stuck (marked) and the unimodal baseline are at or above it
    assert v.within_budget.config.variant == "unimodal[t]" and v.within_budget.score == pytest.approx(0.9)
    # fusion gain = baseline MAE - fused MAE, positive when fusing helps: 0.90 - 0.71
    assert v.fusion.top.variant == "low" and v.fusion.top_gain == pytest.approx(0.19) and v.fusion.beats == 2
    # tuning gain is default - tuned for MAE: positive = tuning helped
    assert v.tuning.top_gain == pytest.approx(0.01)


SCORING = Scoring("d", "multiclass", "accuracy", True, "accuracy", ("accuracy", "macro_f1"), "accuracy", True, False)


def test_a_verdict_renders_to_one_sentence_in_markdown_and_html():
    verdict = BestOverall(Config("fancy", "0.3", collapsed=0), score=Estimate(0.8, 0.248, 3), n_ranked=4,
                          runner_up=Config("slow", "0.3", not_converged=1, not_converged_of=3), runner_up_score=0.75,
                          versus=Versus.IS_BASELINE)
    doc = Document("t")
    doc.bullets([best_overall_text(verdict, SCORING, {"leaderboard": "Table 1"})])
    sentence = ("**Best overall:** `fancy` (train dropout 0.3), test accuracy 0.800 ± 0.248 (± over n = 3 seeds), rank 1 "
                "of 4 ranked (Table 1). Runner-up: `slow` (train dropout 0.3) [not converged 1/3] at 0.750. It is "
                "the `concat` baseline itself.")
    assert f"- {sentence}\n" in doc.to_markdown()
    assert ("<li><strong>Best overall:</strong> <code>fancy</code> (train dropout 0.3), test accuracy 0.800 ± 0.248 "
            '(± over n = 3 seeds), rank 1 of 4 ranked (<a href="#table-1">Table 1</a>). Runner-up: <code>slow</code> (train '
            "dropout 0.3) [not converged 1/3] at 0.750. It is the <code>concat</code> baseline itself.</li>"
            ) in doc.to_html()


def test_lower_is_better_and_no_pick_in_words():
    mae = Scoring("d", "regression", "mae", False, "mae", ("mae",), "mae", False, True)
    one_seed = BestOverall(Config("low", "0"), score=Estimate(0.71, float("nan"), 1), n_ranked=1,
                           versus=Versus.NO_BASELINE_RUN)
    assert best_overall_text(one_seed, mae, {"leaderboard": "Table 2"}) == (
        "**Best overall:** `low` (train dropout 0), test MAE 0.710 (1 seed: no CI) (lower is better), rank 1 of 1 "
        "ranked (Table 2). No `concat` run at this dropout to test against.")
    empty = BestOverall(None, NoPick.NO_FINISHED_RUNS)
    assert dataset_items(DatasetVerdicts(SCORING, empty), {}) == ["No finished runs (no finished runs)."]
