"""Bayesian signed-rank comparisons with concat (reporting/bayesian.py): the sampler against baycomp
draw for draw and against a closed form, planted cases (equivalent, better on every dataset, worse),
the ROPE of an error metric, seeds nested within folds, determinism, too few datasets said in words,
and the tables in the Markdown and HTML report."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from benchmark.reporting import build_report
from benchmark.reporting.analysis import analyse
from benchmark.reporting.bayesian import (MIN_PAIRS, NoComparison, RopeBasis, Unit, across_datasets, rope_of,
                                          within_dataset)
from benchmark.reporting.crossdataset import cross_dataset
from benchmark.reporting.stats import bayesian_signed_rank
from benchmark.reporting.summary import bayes_none
from benchmark.tracking.mlflow_runs import MatrixTracker
from tests.helpers_runs import start_synthetic_cell

MATRIX = "bayes-matrix"


# ------------------------------------------------------------------ the sampler
@pytest.mark.parametrize("n, shift, seed", [(1, 0.05, 0), (3, 0.005, 1), (3, 0.03, 2), (8, -0.02, 3), (20, 0.0, 4)])
def test_sampler_matches_baycomp_draw_for_draw(n, shift, seed):
    baycomp = pytest.importorskip("baycomp")
    rng = np.random.RandomState(seed)
    x = rng.uniform(0.5, 0.9, n)
    y = x + rng.normal(shift, 0.02, n)
    expected = baycomp.SignedRankTest.probs(x, y, 0.01, nsamples=5000, random_state=seed)
    assert bayesian_signed_rank((y - x).tolist(), 0.01, 5000, seed) == pytest.approx(expected, abs=1e-12)


def test_every_difference_beyond_the_rope_has_a_closed_form():
    # All n differences > rope: only the pseudo-observation's own pair (0 + 0) is not above 2 * rope, so
    # P(right region) = 1 - w0^2 and P(left region) = 0 in every sample, with w0 ~ Beta(0.5, n) the
    # pseudo-observation's Dirichlet weight. "Better" wins when 1 - w0^2 > w0^2, i.e. w0 < 1 / sqrt(2).
    from scipy.stats import beta

    for n in (2, 3, 6):
        worse, equivalent, better = bayesian_signed_rank([0.05] * n, 0.01, 50000, 0)
        assert worse == 0 and better == pytest.approx(beta.cdf(1 / math.sqrt(2), 0.5, n), abs=0.005)
        assert equivalent == pytest.approx(1 - better)
    # every difference (hence every Walsh average) inside the rope: nothing can fall outside it
    assert bayesian_signed_rank([0.001, -0.001, 0.0005], 0.01) == (0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="positive"):
        bayesian_signed_rank([0.1], 0.0)


def test_sampler_is_deterministic():
    diffs = [0.02, -0.004, 0.013, 0.008]
    assert bayesian_signed_rank(diffs, 0.01) == bayesian_signed_rank(diffs, 0.01)


# ------------------------------------------------------------------ verdicts from runs
def _runs(dataset: str, offsets: dict[str, float], seeds=(0, 1, 2), folds=None, task="multiclass",
          metric="accuracy", base=0.8, reference=None) -> pd.DataFrame:
    """Finished runs of one dataset: each variant scores base + offset + a seed (and fold) effect shared
    by every variant, so the paired differences are the offsets."""
    rows = []
    for variant, offset in offsets.items():
        for fold in (folds or [None]):
            for seed in seeds:
                row = {"variant": variant, "strategy": variant, "family": "fused", "dropout": 0.0, "seed": seed,
                       "status": "finished", "task": task, "ranking_metric": metric,
                       f"test_{metric}": base + offset + 0.01 * seed + 0.02 * (fold or 0)}
                if folds:
                    row["fold"] = fold
                if reference is not None:
                    row[f"reference_{metric}"] = reference
                rows.append(row)
    return pd.DataFrame(rows)


def _analysis(name: str, runs: pd.DataFrame):
    return analyse(name, runs, runs.iloc[0:0])


def test_planted_cases_across_datasets():
    # concat, one strategy better by 0.05 on every dataset, one equal up to +-0.001, one worse by 0.05
    analyses = [_analysis(f"d{i}", _runs(f"d{i}", {"concat": 0.0, "better": 0.05, "same": 0.001 * (-1) ** i,
                                                     "worse": -0.05}, base=0.6 + 0.05 * i)) for i in range(5)]
    v = across_datasets(cross_dataset(analyses), analyses)
    assert v.unit is Unit.DATASETS and v.n == 5 and v.why_none is None
    got = {c.variant: c for c in v.comparisons}
    assert set(got) == {"better", "same", "worse"}  # concat is the reference, not a row
    assert got["better"].p_better > 0.95 and got["better"].mean_diff == pytest.approx(5.0)  # in ROPEs
    assert got["same"].p_equivalent == pytest.approx(1.0)
    assert got["worse"].p_worse > 0.95
    assert all(abs(c.p_worse + c.p_equivalent + c.p_better - 1) < 1e-9 for c in v.comparisons)
    again = across_datasets(cross_dataset(analyses), analyses)
    assert again == v  # two builds, the same probabilities


def test_within_dataset_over_seeds_and_over_folds():
    a = _analysis("d", _runs("d", {"concat": 0.0, "better": 0.05, "same": 0.0005}))
    v = within_dataset(a)
    assert v.unit is Unit.SEEDS and [c.n for c in v.comparisons] == [3, 3]
    got = {c.variant: c for c in v.comparisons}
    assert got["better"].p_better > 0.95 and got["same"].p_equivalent == 1.0
    # k-fold: 4 folds x 3 seeds = 12 runs per configuration, but the test runs over the 4 fold means
    folded = within_dataset(_analysis("k", _runs("k", {"concat": 0.0, "better": 0.03}, folds=[0, 1, 2, 3])))
    assert folded.unit is Unit.FOLDS and folded.comparisons[0].n == 4
    assert folded.comparisons[0].mean_diff == pytest.approx(0.03)
    # one seed: too few pairs, no numbers invented
    one = within_dataset(_analysis("o", _runs("o", {"concat": 0.0, "better": 0.05}, seeds=(0,))))
    assert one.comparisons[0].why_none is NoComparison.TOO_FEW_PAIRS and math.isnan(one.comparisons[0].p_better)
    # no concat run: no comparison at all
    none = within_dataset(_analysis("n", _runs("n", {"a": 0.0, "b": 0.05})))
    assert none.why_none is NoComparison.NO_BASELINE and "has no finished run" in bayes_none(none)


def test_error_metric_rope_is_one_percent_of_the_constant_predictor_and_turned():
    # MAE, lower is better: the constant predictor's MAE is 4.0 -> ROPE 0.04; "better" is lower by 0.5
    runs = _runs("r", {"concat": 0.0, "better": -0.5, "close": 0.01}, task="regression", metric="mae", base=3.0,
                 reference=4.0)
    a = _analysis("r", runs)
    rope = rope_of(a)
    assert rope.basis is RopeBasis.REFERENCE and rope.width == pytest.approx(0.04)
    got = {c.variant: c for c in within_dataset(a).comparisons}
    assert got["better"].mean_diff == pytest.approx(0.5) and got["better"].p_better > 0.95
    assert got["close"].p_equivalent == 1.0
    # without a logged reference: 1% of concat's mean MAE (3.01 over the seeds)
    assert rope_of(_analysis("r", runs.drop(columns=["reference_mae"]))).width == pytest.approx(0.0301)


def test_too_few_datasets_is_said_not_computed():
    analyses = [_analysis("d0", _runs("d0", {"concat": 0.0, "better": 0.05}))]
    v = across_datasets(cross_dataset(analyses), analyses)
    assert v.why_none is NoComparison.TOO_FEW_PAIRS and not v.comparisons and v.n == 1 < MIN_PAIRS
    assert "1 datasets with finished runs" in bayes_none(v) and f"from {MIN_PAIRS} paired values" in bayes_none(v)


# ------------------------------------------------------------------ the report
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bayes")
    uri = f"sqlite:///{folder}/mlruns.db"
    tracker = MatrixTracker(uri, MATRIX, {"profile": "test"}, "cpu")
    for i, dataset in enumerate(("alpha", "beta", "gamma")):
        for variant, offset in (("concat", 0.0), ("better", 0.05), ("same", 0.0005)):
            for seed in range(3):
                params = {"dataset": dataset, "strategy": variant, "variant": variant, "family": "fused",
                          "seed": str(seed), "modality_dropout": "0", "device": "cpu", "task": "multiclass",
                          "ranking_metric": "accuracy"}
                run_id = start_synthetic_cell(tracker, f"{dataset}-{variant}-{seed}",
                                              f"{dataset} · {variant} · seed {seed}", params)
                value = 0.6 + 0.1 * i + offset + 0.01 * seed
                tracker.finish_cell(run_id, params, {"test_accuracy": value, "test_macro_f1": value - 0.05},
                                    {"family": "fused"}, {"note": "test"})
    tracker.finish_matrix({})
    return uri, folder


def test_tables_in_markdown_and_html_and_rebuilt_identically(store):
    uri, folder = store
    out, text = build_report(uri, MATRIX, out_root=folder / "one")
    across = text[text.index("### Across datasets"):text.index("## Dataset `")]
    assert "**Table B.** Each fused strategy against `concat` over the 3 datasets" in across
    assert "| `better` | 3 | +5.00 |" in across and "**Bayesian comparison with `concat`:**" in across
    assert "| `same` | 3 | +0.05 | 0.000 | 1.000 | 0.000 |" in across
    assert "**Table 2b.** `alpha`: each configuration against `concat`" in text and "n counts matched seeds" in text
    html = (out / "report.html").read_text(encoding="utf-8")
    assert '<table id="table-b">' in html and '<table id="table-2b">' in html and "P(equivalent)" in html
    _, again = build_report(uri, MATRIX, out_root=folder / "two")
    assert again == text  # the posterior sampling is seeded: byte-identical
