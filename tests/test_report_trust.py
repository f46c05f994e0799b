"""The report never names a collapsed or not-converged configuration best, marks it in every
table, shows majority-class and chance rows, and ranks by the dataset's ranking metric. Built
from MLflow runs logged here (MatrixTracker, as `fusebench bench` logs them) with known values."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from benchmark.reporting import build_report
from benchmark.reporting.analysis import analyse, analyse_matrix
from benchmark.reporting.fetch import fetch_matrix
from benchmark.reporting.verdicts import (NoPick, Reference, TuningStatus, best_overall, best_when_missing,
                                          best_within_budget, report_verdicts)
from benchmark.vocabulary import (BEST_EPOCH, CHANCE_ACCURACY, COLLAPSED, CURVE_TRAIN_LOSS, CURVE_VAL_METRIC,
                                    EPOCHS_RUN, LARGEST_CLASS_SHARE, MAJORITY_ACCURACY, MAJORITY_MACRO_F1,
                                    NOT_CONVERGED, RANKING_METRIC, STOP_REASON, missing_metric)
from benchmark.tracking.mlflow_runs import MatrixTracker
from benchmark.vocabulary import reference_metric
from tests.helpers_runs import start_synthetic_cell, start_version1_cell

MATRIX = "trust-matrix"
RATES = [0, 30, 60, 90]
MAJORITY, MAJORITY_F1, CHANCE = 0.6, 0.25, 0.25


class Cell:
    """One configuration's seeds: accuracy and macro-F1 per seed, which seeds collapsed / did not converge."""

    def __init__(self, family, accs, f1s=None, collapsed=(), not_converged=(), sps=1000.0, drop=0.1, gain=0.01):
        self.family, self.accs, self.sps, self.drop, self.gain = family, accs, sps, drop, gain
        self.f1s = f1s or [a - 0.1 for a in accs]
        self.collapsed, self.not_converged = set(collapsed), set(not_converged)


# gamma (ranked by accuracy): without marks, `stuck` (collapsed on every seed) would win every
# category: highest accuracy, flat under missing modalities, fastest, largest fusion and tuning
# gain; `slow` (one seed stopped by the cap while improving) would be second everywhere.
GAMMA = {
    "stuck": Cell("early", [0.95, 0.95, 0.95], f1s=[0.24, 0.24, 0.24], collapsed={0, 1, 2}, sps=90000, drop=0.0,
                  gain=0.2),
    "slow": Cell("late", [0.90, 0.91, 0.89], not_converged={1}, sps=80000, drop=0.01, gain=0.1),
    "fancy": Cell("attention", [0.80, 0.85, 0.82], sps=20000, drop=0.1),
    "concat": Cell("early", [0.78, 0.80, 0.79], sps=30000, drop=0.2),
    "unimodal[text]": Cell("unimodal", [0.70, 0.70, 0.72], sps=100, drop=0.3),
}
# delta (the card ranks by macro-F1): `acc_high` has the higher accuracy, `f1_high` the higher macro-F1.
DELTA = {
    "acc_high": Cell("early", [0.90, 0.91, 0.92], f1s=[0.50, 0.52, 0.51]),
    "f1_high": Cell("late", [0.85, 0.86, 0.84], f1s=[0.70, 0.72, 0.71]),
    "concat": Cell("early", [0.80, 0.82, 0.81], f1s=[0.60, 0.61, 0.62]),
}
# omega: every configuration is marked.
OMEGA = {
    "stuck": Cell("early", [0.6, 0.6], collapsed={0, 1}, sps=5000),
    "slow": Cell("late", [0.7, 0.72], not_converged={0, 1}),
}
DATASETS = {"gamma": ("accuracy", GAMMA), "delta": ("macro_f1", DELTA), "omega": ("accuracy", OMEGA)}


def _metrics(cell: Cell, seed: int) -> dict[str, float]:
    acc = cell.accs[seed]
    collapsed, stalled = seed in cell.collapsed, seed in cell.not_converged
    m = {"test_accuracy": acc, "test_macro_f1": cell.f1s[seed], "default_test_accuracy": acc - cell.gain,
         "tuning_gain": cell.gain, "param_count": 1000.0, "inference_samples_per_s": cell.sps,
         "train_samples_per_s": cell.sps / 10, "peak_cpu_rss_mb": 1000.0,
         "test_accuracy_subset.image-text": acc, "test_accuracy_subset.image": acc - 0.1,
         "test_accuracy_subset.text": acc - 0.2,
         EPOCHS_RUN: 30.0 if stalled else 12.0 + seed, BEST_EPOCH: 30.0 if stalled else 7.0 + seed,
         COLLAPSED: float(collapsed), NOT_CONVERGED: float(stalled), LARGEST_CLASS_SHARE: 0.99 if collapsed else 0.4,
         MAJORITY_ACCURACY: MAJORITY, MAJORITY_MACRO_F1: MAJORITY_F1, CHANCE_ACCURACY: CHANCE,
         reference_metric("accuracy"): MAJORITY, reference_metric("macro_f1"): MAJORITY_F1}
    for r in RATES:
        m[missing_metric(r / 100)] = acc - cell.drop * r / 90
    if not collapsed and acc > MAJORITY:  # the writer leaves robustness out otherwise
        m["robustness"] = 1 - cell.drop / (acc - MAJORITY) / 2
    return m


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, str]:
    """(tracking URI, report Markdown)."""
    folder = tmp_path_factory.mktemp("trust")
    uri = f"sqlite:///{folder}/mlruns.db"
    tracker = MatrixTracker(uri, MATRIX, {"profile": "test"}, "cpu")
    for dataset, (ranking, cells) in DATASETS.items():
        for variant, cell in cells.items():
            for seed in range(len(cell.accs)):
                label = f"{dataset} · {variant} · dropout 0 · seed {seed}"
                stop = "cap" if seed in cell.not_converged else "plateau"
                params = {"dataset": dataset, "strategy": variant.split("[")[0], "variant": variant,
                          "family": cell.family, "seed": str(seed), "modality_dropout": "0", "device": "cpu",
                          RANKING_METRIC: ranking, STOP_REASON: stop}
                run_id = start_synthetic_cell(tracker, f"{dataset}-{variant}-{seed}", label, params)
                for step in range(1, 4):  # learning curves: step metrics, never a table column
                    tracker.client.log_metric(run_id, CURVE_TRAIN_LOSS, 1.0 / step, step=step)
                    tracker.client.log_metric(run_id, CURVE_VAL_METRIC, 0.5, step=step)
                tracker.finish_cell(run_id, params, _metrics(cell, seed), {"family": cell.family, STOP_REASON: stop},
                                    {"note": "test"})
    # an older run (results schema 1) without any of the trust metrics: its dataset still reports, with
    # no marks and no references
    run_id = start_version1_cell(tracker, "legacy-concat-0", "legacy · concat · dropout 0 · seed 0",
                                 {"strategy": "concat", "dataset": "legacy"})
    tracker.finish_cell(run_id, {"dataset": "legacy", "strategy": "concat", "variant": "concat", "family": "early",
                                 "seed": "0", "modality_dropout": "0", "device": "cpu"},
                        {"test_accuracy": 0.7, "test_macro_f1": 0.6, "robustness": 0.9}, {"family": "early"}, {})
    tracker.finish_matrix({})
    _, text = build_report(uri, out_root=folder / "reports")
    return uri, text


@pytest.fixture(scope="module")
def report(store) -> str:
    return store[1]


@pytest.fixture(scope="module")
def verdicts(store) -> dict:
    """Dataset -> its DatasetVerdicts, computed from the same store the report was built from."""
    runs = fetch_matrix(store[0], MATRIX)
    return {v.scoring.dataset: v for v in report_verdicts(analyse_matrix(runs.ok, runs.problems)).datasets}


def _section(text: str, dataset: str) -> str:
    start = text.index(f"## Dataset `{dataset}`")
    end = text.find("\n## ", start + 1)
    return text[start:end if end > 0 else None]


def _summary(text: str, dataset: str) -> str:
    summary = text[text.index("## Which strategy to use"):text.index("## Dataset `")]
    start = summary.index(f"### `{dataset}`")
    end = summary.find("\n### ", start + 1)
    return summary[start:end if end > 0 else None]


def _rows(text: str, strategy: str) -> list[str]:
    """Table lines whose strategy cell (the first, or the second after a rank) is exactly `strategy`."""
    return [line for line in text.splitlines() if line.startswith(f"| {strategy} |")
            or (line.startswith("| ") and line.split(" | ")[1:2] == [strategy])]


def _claims(summary: str) -> dict[str, str]:
    """"Best overall" -> its bullet, for every "- **Name:** ..." / "- **Name** (...)" bullet."""
    claims = {}
    for line in summary.splitlines():
        if line.startswith("- **"):
            claims[line[4:line.index("**", 4)].rstrip(":")] = line
    return claims


# ------------------------------------------------------------------ collapsed / not converged
def test_marked_configurations_are_never_named_best(verdicts):
    v = verdicts["gamma"]
    picks = [v.best.config, v.when_missing.config, v.within_budget.config, v.fusion.top, v.tuning.top]
    assert all(c is not None and not c.marked and c.variant not in ("stuck", "slow") for c in picks), picks
    assert v.best.config.variant == "fancy" and v.best.score.mean == pytest.approx(0.823, abs=5e-4)
    assert v.best.n_ranked == 3 and v.when_missing.config.variant == "fancy"
    # median throughput 30,000: stuck, slow and concat are at or above it; concat is the only unmarked one
    budget = v.within_budget
    assert budget.config.variant == "concat" and budget.median_throughput == 30000
    assert budget.score == pytest.approx(0.79) and budget.throughput == 30000
    assert v.fusion.top.variant == "fancy" and v.fusion.baseline == "unimodal[text]"
    assert v.tuning.status is TuningStatus.NAMED and v.tuning.top.variant == "fancy"
    assert v.tuning.top_gain == pytest.approx(0.01)
    # the marked ones that score higher are acknowledged, not recommended
    assert v.best.marked_better == 2 and v.best.marked_best_score == pytest.approx(0.95)
    trust = v.trust
    assert (trust.marked, trust.ranked, trust.marks.collapsed, trust.marks.not_converged) == (2, 5, 1, 1)
    assert (Reference.CONSTANT, "accuracy", pytest.approx(0.6)) in trust.references
    assert (Reference.CHANCE, "accuracy", pytest.approx(0.25)) in trust.references


def test_marked_configurations_in_the_summary_text(report):
    """The same verdicts in words: the picks name no marked configuration; the marked ones are counted."""
    claims = _claims(_summary(report, "gamma"))
    assert claims["Best overall"].startswith("- **Best overall:** `fancy` (train dropout 0), test accuracy 0.823 ± ")
    for name in ("Best overall", "Best when a modality is often missing", "Best within a cost budget",
                 "Fusion gain", "Tuning"):
        named = claims[name].split("(", 1)[0] if name != "Best within a cost budget" else \
            claims[name].split("samples/s):", 1)[1].split("(")[0]
        assert "`stuck`" not in named and "`slow`" not in named, claims[name]
    assert "2 marked configuration(s) score higher (up to 0.950) but are not recommended" in claims["Best overall"]
    assert claims["Trust"].startswith("- **Trust:** 2 of 5 configurations are marked (1 collapsed, 1 not converged)")
    assert "majority-class accuracy 0.600" in claims["Trust"] and "chance accuracy 0.250" in claims["Trust"]


def test_marks_in_the_leaderboard_with_reference_rows(report):
    gamma = _section(report, "gamma")
    header = [line for line in gamma.splitlines() if line.startswith("| rank |")][0]
    assert header.endswith("| mark |")
    stuck = _rows(gamma, "stuck")[0]
    assert stuck.startswith("| — | stuck | early | 0 | 0.950 ± 0.000 |") and stuck.endswith("| collapsed 3/3 |")
    assert "n/a (collapsed)" in stuck  # a constant predictor has no robustness score
    slow = _rows(gamma, "slow")[0]
    assert slow.startswith("| — | slow | late | 0 | 0.900 ± ") and slow.endswith("| not converged 1/3 |")
    fancy = _rows(gamma, "fancy")[0]
    assert fancy.startswith("| 1 | fancy | attention | 0 | 0.823 ± ") and fancy.endswith("|  |")  # no mark
    assert _rows(gamma, "concat")[0].startswith("| 2 | concat | early | 0 | 0.790 ± ")
    assert "| ref. | majority class (reference) | reference | — | 0.600 | — | 0.250 |" in gamma
    assert "| ref. | chance (reference) | reference | — | 0.250 | — | — |" in gamma
    lines = [line for line in gamma.splitlines() if line.startswith("| ")]
    # ranked first, then the marked ones, then the references
    order = [line.split(" | ")[1] for line in lines[:8]]
    assert order == ["strategy", "fancy", "concat", "unimodal[text]", "stuck", "slow", "majority class (reference)",
                     "chance (reference)"], order
    assert "ranked by mean test accuracy" in gamma and "`ranking_metric: accuracy`" in gamma
    # and the text names them with their marks
    assert "`stuck` (train dropout 0) [collapsed 3/3], `slow` (train dropout 0) [not converged 1/3]" in gamma


def test_marks_in_every_table_that_lists_configurations(report):
    gamma = _section(report, "gamma")
    tables = gamma.count("**Table ")
    assert tables >= 5  # leaderboard, fusion gain, robustness, tuning, training
    headers = [line for line in gamma.splitlines() if line.startswith("| strategy |") or line.startswith("| rank |")]
    assert len(headers) == tables and all(line.endswith("| mark |") for line in headers)
    stuck, slow = _rows(gamma, "stuck"), _rows(gamma, "slow")
    assert len(stuck) == len(slow) == tables
    assert all(line.endswith("| collapsed 3/3 |") for line in stuck), stuck
    assert all(line.endswith("| not converged 1/3 |") for line in slow), slow
    assert all(line.endswith("|  |") for line in _rows(gamma, "fancy"))
    # explained once, before the datasets
    assert report.count("**Marks.**") == 1 and report.count("**not converged k/n**") == 1
    assert report.index("**Marks.**") < report.index("## Dataset `")


def test_robustness_and_training_columns(report):
    gamma = _section(report, "gamma")
    assert "(s(r) − majority) / (s(0) − majority)" in gamma and "test accuracy (the dataset's ranking metric)" in gamma
    assert "majority-class predictor's test accuracy (0.600)" in gamma
    # fancy: drop 0.1 over [0, 0.9]; robustness = mean over seeds of 1 - 0.1 / (acc - 0.6) / 2
    expected = sum(1 - 0.1 / (a - MAJORITY) / 2 for a in GAMMA["fancy"].accs) / 3
    robustness = [line for line in _rows(gamma, "fancy") if "| 0.823 | 0.757 | 0.723 |" in line]
    assert robustness and f"| {expected:.3f} |" in robustness[0]
    stuck = [line for line in _rows(gamma, "stuck") if "| 0.950 | 0.950 | 0.950 |" in line]
    assert stuck and "| n/a (collapsed) |" in stuck[0]
    # training table: epochs 12, 13, 14 (mean 13.0), best epochs 7, 8, 9 (mean 8.0); slow: one seed hit the cap
    assert "| fancy | 0 | 13.0 | 8.0 | plateau 3 | 0.400 | 3 |  |" in gamma
    # slow: 12, 30 (the cap), 14 -> 18.7; best 7, 30, 9 -> 15.3
    assert "| slow | 0 | 18.7 | 15.3 | plateau 2, cap 1 | 0.400 | 3 | not converged 1/3 |" in gamma
    assert "| stuck | 0 | 13.0 | 8.0 | plateau 3 | 0.990 | 3 | collapsed 3/3 |" in gamma
    assert "curve." not in report


# ------------------------------------------------------------------ ranking metric
def test_ranked_by_macro_f1_when_the_card_says_so(report, verdicts):
    delta = _section(report, "delta")
    assert "ranked by mean test macro-F1" in delta and "`ranking_metric: macro_f1`" in delta
    assert _rows(delta, "f1_high")[0].startswith("| 1 | f1_high | late | 0 | 0.850 ± ")
    assert "| 0.710 ± " in _rows(delta, "f1_high")[0]
    assert _rows(delta, "concat")[0].startswith("| 2 | concat |")
    assert _rows(delta, "acc_high")[0].startswith("| 3 | acc_high |")  # highest accuracy, lowest macro-F1
    best = verdicts["delta"].best
    assert verdicts["delta"].scoring.ranking == "macro_f1" and verdicts["delta"].scoring.lead == "accuracy"
    assert best.config.variant == "f1_high" and best.score.mean == pytest.approx(0.71)
    assert best.lead.mean == pytest.approx(0.85)
    # the paired test against concat is on macro-F1 too: f1_high - concat = +0.100 on every seed
    assert best.test.mean_diff == pytest.approx(0.1)


def test_every_configuration_marked_names_none(report, verdicts):
    v = verdicts["omega"]
    assert v.best.config is None and v.best.why_none is NoPick.ALL_MARKED
    assert (v.best.marks.collapsed, v.best.marks.not_converged) == (1, 1)
    assert v.when_missing.config is None and v.within_budget.config is None and v.fusion.top is None
    claims = _claims(_summary(report, "omega"))
    assert claims["Best overall"].startswith("- **Best overall:** none named: every finished configuration is "
                                             "marked (1 collapsed, 1 not converged)")
    for line in claims.values():
        assert "`stuck`" not in line and "`slow`" not in line, line
    omega = _section(report, "omega")
    assert not [line for line in omega.splitlines() if line.startswith("| 1 |")]  # nothing ranked


def test_older_runs_build_without_marks_or_references(report):
    legacy = _section(report, "legacy")
    assert "| 1 | concat | early | 0 | 0.700 (1 seed: no CI) |" in legacy
    assert "ref." not in legacy and "| mark |" not in legacy and "Training: epochs" not in legacy
    assert "without the collapse and convergence checks" in legacy
    assert "()" not in report  # every claim cites something, even without curves


# ------------------------------------------------------------------ the analysis alone
def _frame(cells: dict[str, Cell], ranking: str | None) -> pd.DataFrame:
    rows = []
    for variant, cell in cells.items():
        for seed in range(len(cell.accs)):
            row = {"dataset": "x", "variant": variant, "strategy": variant, "family": cell.family, "dropout": 0.0,
                   "seed": seed, "device": "cpu", RANKING_METRIC: ranking, STOP_REASON: "plateau"}
            row.update(_metrics(cell, seed))
            rows.append(row)
    return pd.DataFrame(rows)


def _no_problems() -> pd.DataFrame:
    return pd.DataFrame(columns=["dataset", "variant", "strategy", "family", "dropout", "seed", "status", "error"])


def test_analysis_picks_skip_marked_configurations():
    a = analyse("gamma", _frame(GAMMA, "accuracy"), _no_problems())
    assert best_overall(a).config.variant == "fancy"
    assert best_when_missing(a).config.variant == "fancy"
    assert best_within_budget(a).config.variant == "concat"
    configs = a.configs.set_index("variant")
    assert configs.loc["stuck", "marked"] and configs.loc["slow", "marked"] and not configs.loc["fancy", "marked"]
    assert math.isnan(configs.loc["stuck", "rank"]) and configs.loc["fancy", "rank"] == 1
    assert math.isnan(configs.loc["stuck", "robustness"])
    assert a.majority_accuracy == MAJORITY and a.chance_accuracy == CHANCE


def test_analysis_ranking_metric_and_fallbacks():
    assert best_overall(analyse("delta", _frame(DELTA, "macro_f1"), _no_problems())).config.variant == "f1_high"
    assert best_overall(analyse("delta", _frame(DELTA, "accuracy"), _no_problems())).config.variant == "acc_high"
    assert best_overall(analyse("delta", _frame(DELTA, None), _no_problems())).config.variant == "acc_high"
    unknown = analyse("delta", _frame(DELTA, "bogus"), _no_problems())
    assert unknown.ranking == "accuracy" and "Unknown ranking metric `bogus`" in unknown.ranking_note
    unlogged = analyse("delta", _frame(DELTA, "auroc"), _no_problems())  # known, but no run logged test_auroc
    assert unlogged.ranking == "accuracy" and "no run logged `test_auroc`" in unlogged.ranking_note
    none = best_overall(analyse("omega", _frame(OMEGA, "accuracy"), _no_problems()))
    assert none.config is None and none.why_none is NoPick.ALL_MARKED
