"""Cross-dataset verdict and multiple-comparison corrections: Holm, Friedman / Iman-Davenport and the
Nemenyi critical difference against hand computations and Demsar (2006)'s worked example; a report over
three datasets (one ranked by MAE, lower is better) built from a real MLflow SQLite store."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmark.reporting import build_report
from benchmark.reporting.analysis import analyse
from benchmark.reporting.cd_diagram import nemenyi_groups
from benchmark.reporting.crossdataset import cross_dataset
from benchmark.reporting.summary import cross_dataset_items
from benchmark.reporting.verdicts import CrossStatus, cross_dataset_verdict
from benchmark.reporting.fetch import fetch_matrix
from benchmark.reporting.stats import (friedman, holm, iman_davenport, nemenyi_cd, paired_ttest,
                                       smallest_wilcoxon_p, wilcoxon_p)
from benchmark.tracking.mlflow_runs import MatrixTracker
from tests.helpers_stats import friedman_chi2_from_ranks
from tests.helpers_runs import start_synthetic_cell

MATRIX = "cross-matrix"


# ------------------------------------------------------------------ statistics by hand
def test_holm_by_hand():
    # p = .01 .04 .03 .005 (m = 4): sorted .005*4 = .02, .01*3 = .03, .03*2 = .06, .04*1 = .04 -> max so far .06
    adjusted = holm([0.01, 0.04, 0.03, 0.005, float("nan")])
    assert adjusted[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(adjusted[4])  # no test: stays n/a and does not count in m
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1


def test_friedman_and_cd_match_demsar_2006():
    # Demsar (2006), section 3.2.2: 4 classifiers on 14 data sets, average ranks 3.143, 2.000, 2.893, 1.964
    # -> chi2_F = 9.28, F_F = 3.69; q_0.05 = 2.569 for k = 4 -> CD = 2.569 sqrt(4*5 / (6*14)) = 1.25
    chi2 = friedman_chi2_from_ranks([3.143, 2.000, 2.893, 1.964], 14)
    assert chi2 == pytest.approx(9.28, abs=0.01) and iman_davenport(chi2, 14, 4) == pytest.approx(3.69, abs=0.01)
    assert iman_davenport(14 * 3, 14, 4) == math.inf  # the same order on all 14 datasets: chi2 = N (k - 1)
    assert nemenyi_cd(4, 14) == pytest.approx(1.25, abs=0.005)
    assert nemenyi_cd(4, 14) / math.sqrt(4 * 5 / (6 * 14)) == pytest.approx(2.569, abs=0.001)


def test_friedman_small_table_by_hand():
    # rows = datasets, higher is better. Ranks: [4 3 2 1], [4 2 3 1], [3 4 2 1] -> means 11/3, 3, 7/3, 1
    # chi2 = 12*3/(4*5) * (121/9 + 9 + 49/9 + 1 - 25) = 1.8 * 35/9 = 7.0; F_F = 2*7 / (3*3 - 7) = 7.0
    test = friedman([[1, 2, 3, 4], [1, 3, 2, 4], [2, 1, 3, 4]])
    assert test.mean_ranks == pytest.approx([11 / 3, 3, 7 / 3, 1])
    assert test.chi2 == pytest.approx(7.0) and test.iman_davenport == pytest.approx(7.0)
    assert test.p == pytest.approx(0.0719, abs=1e-4)  # chi-square, 3 df, upper tail at 7
    # the same table with lower = better reverses every rank
    assert friedman([[1, 2, 3, 4], [1, 3, 2, 4], [2, 1, 3, 4]], False).mean_ranks == pytest.approx([4 / 3, 2, 8 / 3, 4])
    assert friedman([[1, 2]], True).note  # one dataset, two strategies: no test


def test_wilcoxon_power_with_three_datasets():
    # all three differences positive: exact two-sided p = 2 / 2^3 = 0.25, the smallest N = 3 can give
    assert wilcoxon_p([0.9, 0.8, 0.7], [0.5, 0.5, 0.5]) == pytest.approx(0.25)
    assert smallest_wilcoxon_p(3) == pytest.approx(0.25) and smallest_wilcoxon_p(6) == pytest.approx(0.03125)
    assert math.isnan(wilcoxon_p([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]))


def test_degenerate_paired_ttest_is_not_a_number_shown_as_meaningful():
    # n = 2 and n = 3 with identical differences: sd 0, t undefined (not inf), p undefined (not 0)
    for a, b in (([0.8, 0.9], [0.78, 0.88]), ([0.7, 0.75, 0.6], [0.6, 0.65, 0.5])):
        test = paired_ttest(a, b)
        assert math.isnan(test.t) and math.isnan(test.p) and "identical differences" in test.note
        assert test.mean_diff == pytest.approx(a[0] - b[0])
    assert math.isnan(holm([float("nan")])[0])


def test_nemenyi_groups():
    assert nemenyi_groups([1.0, 1.5, 3.0, 3.2], 1.0) == [(0, 1), (2, 3)]
    assert nemenyi_groups([3.2, 1.0, 3.0, 1.5], 2.1) == [(0, 2), (1, 3)]  # input order does not matter
    assert nemenyi_groups([1.0, 2.0, 3.0], 0.5) == []  # every pair differs


# ------------------------------------------------------------------ a report over three datasets
# dataset -> (task, metric, {dropout: {variant: (family, value)}}); every configuration logs seeds 0 and 1 at
# value - 0.01 and value + 0.01 (mean = value).
GRID = {
    "alpha": ("multiclass", "accuracy", {
        0.0: {"fancy": ("attention", 0.90), "concat": ("early", 0.80), "fast": ("late", 0.75),
              "slow": ("hybrid", 0.60), "unimodal[image]": ("unimodal", 0.50), "extra": ("late", 0.95)},
        0.5: {"fancy": ("attention", 0.86), "concat": ("early", 0.80), "fast": ("late", 0.65),
              "slow": ("hybrid", 0.60), "unimodal[image]": ("unimodal", 0.50)}}),
    "beta": ("multiclass", "accuracy", {
        0.0: {"fancy": ("attention", 0.70), "concat": ("early", 0.60), "fast": ("late", 0.50),
              "slow": ("hybrid", 0.40), "unimodal[text]": ("unimodal", 0.45)}}),
    "gamma": ("regression", "mae", {  # lower is better
        0.0: {"fancy": ("attention", 1.0), "concat": ("early", 2.0), "fast": ("late", 4.0),
              "slow": ("hybrid", 3.0), "unimodal[text]": ("unimodal", 5.0)}}),
}


def _metrics(task: str, metric: str, value: float, collapsed: bool) -> dict[str, float]:
    m = {f"test_{metric}": value, "param_count": 1000.0, "inference_samples_per_s": 1000.0 * value,
         "collapsed": float(collapsed), "not_converged": 0.0}
    if task == "multiclass":
        m["test_macro_f1"] = value - 0.05
        m["default_test_accuracy"] = value  # tuning changed nothing: tuned = default on every run
    else:
        m.update({"test_rmse": value * 1.2, "test_pearson_r": 0.5})
    return m


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp("cross")
    uri = f"sqlite:///{folder}/mlruns.db"
    tracker = MatrixTracker(uri, MATRIX, {"profile": "test"}, "cpu")
    for dataset, (task, metric, grid) in GRID.items():
        for dropout, variants in grid.items():
            for variant, (family, value) in variants.items():
                for seed, delta in enumerate((-0.01, 0.01)):
                    params = {"dataset": dataset, "strategy": variant.split("[")[0], "variant": variant,
                              "family": family, "seed": str(seed), "modality_dropout": str(dropout), "device": "cpu",
                              "task": task, "ranking_metric": metric}
                    run_id = start_synthetic_cell(tracker, f"{dataset}-{variant}-{dropout}-{seed}",
                                                f"{dataset} · {variant} · dropout {dropout:g} · seed {seed}", params)
                    collapsed = dataset == "beta" and variant == "slow"
                    tracker.finish_cell(run_id, params, _metrics(task, metric, value + delta, collapsed),
                                        {"family": family}, {"note": "test"})
    tracker.finish_matrix({})
    return uri, folder


def test_cross_dataset_scores_ranks_and_tests(store):
    uri, _ = store
    runs = fetch_matrix(uri, MATRIX)
    analyses = [analyse(d, runs.ok[runs.ok["dataset"] == d], runs.problems.iloc[0:0]) for d in GRID]
    x = cross_dataset(analyses)
    assert x.variants == ["fancy", "concat", "fast", "slow"]  # best average rank first
    # alpha's score is the mean over both dropout rates, not the best one: fast (0.75 + 0.65) / 2 = 0.70
    assert x.scores.loc["alpha", "fast"] == pytest.approx(0.70)
    assert x.scores.loc["alpha", "fancy"] == pytest.approx(0.88)
    # gamma is ranked by MAE, lowest first: slow (3.0) ranks above fast (4.0) there
    assert x.ranks.loc["gamma"].tolist() == [1.0, 2.0, 4.0, 3.0]
    assert x.mean_ranks.tolist() == pytest.approx([1, 2, 10 / 3, 11 / 3])
    # chi2 = 12*3/(4*5) * (1 + 4 + 100/9 + 121/9 - 25) = 1.8 * 41/9 = 8.2; F_F = 2*8.2 / (9 - 8.2) = 20.5
    assert x.friedman.chi2 == pytest.approx(8.2) and x.friedman.iman_davenport == pytest.approx(20.5)
    assert x.cd == pytest.approx(2.569 * math.sqrt(4 * 5 / (6 * 3)), abs=1e-3)  # 2.708
    # unimodal variants differ per dataset; extra ran on alpha only
    assert "unimodal" in x.left_out["unimodal[image]"] and "unimodal" in x.left_out["unimodal[text]"]
    assert x.left_out["extra"] == "no finished run on `beta`, `gamma`"
    assert list(x.marked) == ["slow"] and "beta" in x.marked["slow"][0]
    # six pairs, each with N = 3: the smallest raw p is 0.25, Holm over 6 pushes every one to 1
    assert len(x.pairs) == 6 and min(p.p for p in x.pairs) == pytest.approx(0.25)
    assert all(p.p_holm == pytest.approx(1.0) for p in x.pairs)
    verdict = cross_dataset_verdict(x)
    assert verdict.status is CrossStatus.RANKED and verdict.leaders == ("fancy",) and verdict.best_rank == 1
    assert not verdict.ranks_differ or verdict.friedman.p < 0.05
    assert verdict.pairs_tested == 6 and verdict.pairs_significant == 0 and verdict.lowest_pair.p_holm == 1
    assert verdict.low_power and verdict.smallest_possible_p == pytest.approx(0.25)
    assert [variant for variant, _ in verdict.marked] == ["slow"]
    one = cross_dataset_verdict(cross_dataset(analyses[:1]))
    assert one.status is CrossStatus.TOO_FEW_DATASETS and one.n_datasets == 1
    words = cross_dataset_items(one, None, None)
    assert len(words) == 1 and "no cross-dataset verdict" in words[0]


def test_report_opens_with_the_cross_dataset_verdict(store):
    uri, folder = store
    out, text = build_report(uri, MATRIX, out_root=folder / "reports")
    opening = text[text.index("## Which strategy to use"):text.index("## Dataset `")]
    section = opening[opening.index("### Across datasets"):]
    assert "| `fancy` | 1.00 | 0.880 (rank 1) | 0.700 (rank 1) | 1.000 (rank 1) |" in section
    assert "| `fast` | 3.33 | 0.700 (rank 3) | 0.500 (rank 3) | 4.000 (rank 4) |" in section
    assert "| `slow` [marked] |" in section
    assert "Friedman χ²(3) = 8.20" in section and "F(3, 6) = 20.50" in section and "CD = 2.71" in section
    assert "best average rank 1.00 of 4 strategies: `fancy`" in section
    assert "N = 3 pairs can give is 0.250 (no pair can reach 0.05" in section
    assert "`extra`: no finished run on `beta`, `gamma`" in section and "`unimodal[image]`: unimodal" in section
    assert "Marked configurations stay in the ranks:** `slow` on beta (dropout 0" in section
    assert (out / "cross_dataset_cd.png").stat().st_size > 10_000
    assert "](cross_dataset_cd.png)" in section and "**Figure A.** Critical-difference diagram" in section
    html = (out / "report.html").read_text(encoding="utf-8")
    assert '<figure id="figure-a">' in html and '<table id="table-a">' in html
    assert "Friedman χ²(3) = 8.20" in html
    assert html.count('src="data:image/png;base64,') == len(list(out.glob("*.png")))


def test_tuning_that_changed_nothing_is_said_in_words(store):
    uri, folder = store
    _, text = build_report(uri, MATRIX, out_root=folder / "reports-tuning")
    beta = text[text.index("### `beta`"):text.index("### `gamma`")]
    assert "**Tuning:** tuning changed nothing" in beta and "+0.000" not in beta
    assert "largest +0.000" not in text
