"""Comparison report: built from MLflow runs created here (MatrixTracker, as `fusebench bench`
logs them) with known values; the statistics are checked against hand computations."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.reporting import build_report, mean_ci95, paired_ttest, pareto_front
from benchmark.reporting.analysis import analyse_matrix
from benchmark.reporting.fetch import fetch_matrix
from benchmark.reporting.verdicts import Criterion, Versus, report_verdicts
from benchmark.tracking.mlflow_runs import MatrixTracker
from benchmark.vocabulary import cell_tags
from tests.helpers_runs import start_synthetic_cell

REPO = Path(__file__).resolve().parent.parent
MATRIX = "test-matrix"
RATES = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90]

# dataset -> dropout -> variant -> (family, [test accuracy per seed]); seeds are 0, 1, 2, ...
ALPHA = {0.3: {
    "fancy": ("attention", [0.8, 0.9, 0.7]),
    "concat": ("early", [0.75, 0.8, 0.7]),
    "unimodal[text]": ("unimodal", [0.6, 0.6, 0.6]),
    "unimodal[image]": ("unimodal", [0.65, 0.7, 0.6]),
    "fast": ("late", [0.7, 0.72, 0.68]),
}}
BETA = {0.0: {  # a single seed
    "fancy": ("attention", [0.85]),
    "concat": ("early", [0.9]),
    "broken": ("late", [0.88]),
}}
THROUGHPUT = {"fancy": 1000.0, "concat": 50000.0, "fast": 90000.0, "broken": 40000.0,
              "unimodal[text]": 120000.0, "unimodal[image]": 110000.0}
# Robustness: "fast" keeps its accuracy when modalities go missing, the others lose 0.3 at 90%.
SLOPE = {"fast": 0.0}


def _metrics(variant: str, acc: float) -> dict[str, float]:
    slope = SLOPE.get(variant, 0.3 / 0.9)
    m = {"test_accuracy": acc, "test_macro_f1": acc - 0.05, "robustness": 0.9, "default_test_accuracy": acc - 0.02,
         "tuning_gain": 0.02, "best_val_accuracy": acc, "param_count": 1000.0,
         "train_samples_per_s": THROUGHPUT[variant] / 10, "inference_samples_per_s": THROUGHPUT[variant],
         "latency_ms_per_batch": 1.0, "seconds_per_epoch": 0.1, "peak_cpu_rss_mb": 1000.0 + THROUGHPUT[variant] / 1000,
         "wall_seconds": 1.0, "test_accuracy_subset.image-text": acc, "test_accuracy_subset.image": acc - 0.1,
         "test_accuracy_subset.text": acc - 0.2}
    for r in RATES:
        m[f"test_accuracy_missing.{r:02d}"] = acc - slope * r / 100
    return m


def _log(tracker: MatrixTracker, dataset: str, variant: str, family: str, dropout: float, seed: int, acc: float):
    label = f"{dataset} · {variant} · dropout {dropout:g} · seed {seed}"
    params = {"dataset": dataset, "strategy": variant.split("[")[0], "variant": variant, "family": family,
              "seed": str(seed), "modality_dropout": str(dropout), "device": "cpu", "hp.hidden": "64"}
    run_id = start_synthetic_cell(tracker, f"{dataset}-{variant}-{dropout}-{seed}", label, params)
    tracker.finish_cell(run_id, params, _metrics(variant, acc), {"family": family}, {"note": "test"})


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> tuple[str, Path]:
    folder = tmp_path_factory.mktemp("report")
    uri = f"sqlite:///{folder}/mlruns.db"
    tracker = MatrixTracker(uri, MATRIX, {"profile": "test"}, "cpu")
    for dataset, grid in (("alpha", ALPHA), ("beta", BETA)):
        for dropout, variants in grid.items():
            for variant, (family, accs) in variants.items():
                for seed, acc in enumerate(accs):
                    _log(tracker, dataset, variant, family, dropout, seed, acc)
    # "broken" fails on every seed of alpha: its runs are failed runs with an error.
    for seed in range(3):
        run_id = tracker.start_cell(f"alpha-broken-{seed}", f"alpha · broken · dropout 0.3 · seed {seed}",
                                    cell_tags("alpha", "broken", "broken", "late", 0.3, seed))
        tracker.fail_cell(run_id, "RuntimeError: loss is NaN\nTraceback ...", "RuntimeError")
    tracker.finish_matrix({})
    return uri, folder


@pytest.fixture(scope="module")
def report(store) -> tuple[Path, str]:
    uri, folder = store
    return build_report(uri, out_root=folder / "reports")


def _row(text: str, *cells: str) -> str:
    """The Markdown table line that starts with these cells."""
    start = "| " + " | ".join(cells) + " |"
    lines = [line for line in text.splitlines() if line.startswith(start)]
    assert len(lines) == 1, f"expected one row starting {start!r}, found {lines}"
    return lines[0]


# ------------------------------------------------------------------ statistics by hand
def test_ci_matches_hand_computation():
    # mean 0.8, sd 0.1, t(0.975, 2) = 4.302653 -> half-width 4.302653 * 0.1 / sqrt(3) = 0.248414
    mean, half = mean_ci95([0.8, 0.9, 0.7])
    assert mean == pytest.approx(0.8)
    assert half == pytest.approx(0.248414, abs=1e-6)
    assert math.isnan(mean_ci95([0.871])[1])  # one seed: no interval


def test_paired_ttest_matches_hand_computation():
    # differences [0.05, 0.10, 0.00]: mean 0.05, sd 0.05, t = 0.05 / (0.05 / sqrt 3) = sqrt 3 = 1.732051, df 2.
    # t distribution with 2 df: P(T <= t) = 1/2 + t / (2 sqrt(2 + t^2)) -> p = 1 - sqrt3 / sqrt5 = 0.225403.
    test = paired_ttest([0.8, 0.9, 0.7], [0.75, 0.8, 0.7])
    assert test.n == 3 and test.df == 2
    assert test.mean_diff == pytest.approx(0.05)
    assert test.t == pytest.approx(1.732051, abs=1e-6)
    assert test.p == pytest.approx(0.225403, abs=1e-6)
    assert test.ci_half == pytest.approx(4.302653 * 0.05 / math.sqrt(3), abs=1e-6)  # 0.124207
    single = paired_ttest([0.85], [0.9])
    assert single.n == 1 and math.isnan(single.p) and "no test" in single.note


def test_pareto_front():
    # (throughput, accuracy): (1, 0.9) and (3, 0.8) are on the front; (2, 0.7) is beaten by (3, 0.8).
    assert pareto_front([1, 2, 3], [0.9, 0.7, 0.8], lower_cost_is_better=False) == [True, False, True]
    # (memory, accuracy): lower memory is better; (2, 0.7) is beaten by (1, 0.9).
    assert pareto_front([1, 2, 3], [0.9, 0.7, 0.95], lower_cost_is_better=True) == [True, False, True]


# ------------------------------------------------------------------ the report
def test_report_files(report, store):
    folder, text = report
    _, root = store
    assert folder == root / "reports" / MATRIX
    assert (root / "reports" / "latest").resolve() == folder.resolve()
    assert (folder / "report.md").read_text(encoding="utf-8") == text
    pngs = sorted(p.name for p in folder.glob("*.png"))
    for stem in ("robustness_heatmap", "missing_curves", "accuracy_vs_throughput", "accuracy_vs_memory", "tuning_gain"):
        assert f"alpha_{stem}.png" in pngs
    for name in pngs:
        assert f"]({name})" in text  # Markdown links every PNG next to it
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert html.count('src="data:image/png;base64,') == len(pngs)  # self-contained: every image embedded
    assert 'src="http' not in html and ".png" not in html.replace("data:image/png", "")


def test_leaderboard_numbers(report):
    _, text = report
    # alpha: fancy 0.8 ± 0.248 (n = 3) ranks first, concat (mean 0.75) second.
    row = _row(text, "1", "fancy", "attention", "0.3")
    assert "0.800 ± 0.248" in row and "| 3 |" in row
    row = _row(text, "2", "concat", "early", "0.3")
    # concat [0.75, 0.8, 0.7]: mean 0.75, sd 0.05, half-width 4.302653 * 0.05 / sqrt 3 = 0.124
    assert "0.750 ± 0.124" in row
    assert "| concat |" in text  # what `fusebench bench` output is checked for elsewhere


def test_fusion_gain_and_paired_test(report):
    _, text = report
    # best unimodal on alpha at dropout 0.3 = unimodal[image] (mean 0.65): fancy gains 0.8 - 0.65 = +0.150
    row = _row(text, "fancy", "0.3", "0.800", "unimodal[image]", "+0.150")
    # paired t vs concat: mean diff +0.050, CI half 0.124 -> [-0.074, +0.174], t(2) = 1.73, p = 0.225, n = 3
    # raw p, then Holm over alpha's 3 testable comparisons (0.225 stays: the largest p is multiplied by 1);
    # these runs logged no per-row predictions, so the test is over seeds only and n says so
    assert "+0.050 [-0.074, +0.174]" in row and "t(2) = 1.73" in row and "| 0.225 | 0.225 | 3 seeds |" in row
    assert "paired t-test" in text and "no per-row test predictions" in text
    row = _row(text, "concat", "0.3", "0.750", "unimodal[image]", "+0.100")
    assert "baseline" in row


def test_single_seed_is_stated(report):
    _, text = report
    beta = text[text.index("## Dataset `beta`"):]
    row = _row(beta, "1", "concat", "early", "0")
    assert "0.900 (1 seed: no CI)" in row
    row = _row(beta, "fancy", "0", "0.850", "n/a", "n/a")
    assert "1 matched seed: no test possible" in row
    assert "single finished seed" in beta and "no confidence interval" in beta


def test_failed_strategy_is_stated(report):
    _, text = report
    alpha = text[text.index("## Dataset `alpha`"):text.index("## Dataset `beta`")]
    row = _row(alpha, "—", "broken", "late", "0.3")
    assert "failed" in row and "(3 failed)" in row
    assert "`broken` (train dropout 0.3) has no finished run on this dataset (3 failed, 0 unfinished): " \
           "RuntimeError: loss is NaN" in alpha
    failed = text[text.index("## Failed and unfinished cells"):]
    assert failed.count("RuntimeError: loss is NaN") == 3
    # ... while it finished on beta, where it is ranked normally
    beta = text[text.index("## Dataset `beta`"):]
    assert "0.880 (1 seed: no CI)" in _row(beta, "2", "broken", "late", "0")


def test_tuning_robustness_and_memory_label(report):
    _, text = report
    # tuning gain 0.02 on every seed: default 0.780, tuned 0.800, +0.020 ± 0.000
    assert "| fancy | 0.3 | 0.780 | 0.800 | +0.020 ± 0.000 | 3 |" in text
    # fast keeps 0.700 at 90% missing; fancy loses 0.3/0.9 per unit rate: 0.800 - 0.167 = 0.633 at 50%, 0.500 at 90%
    assert _row(text, "fast", "0.3", "0.700", "0.700", "0.700", "0.900")
    assert _row(text, "fancy", "0.3", "0.800", "0.633", "0.500")
    assert "peak CPU RSS (MiB)" in text and "GPU" not in text.replace("not GPU memory", "")


def test_summary_verdicts(store):
    uri, _ = store
    runs = fetch_matrix(uri, MATRIX)
    verdicts = {v.scoring.dataset: v for v in report_verdicts(analyse_matrix(runs.ok, runs.problems)).datasets}
    alpha = verdicts["alpha"]
    best = alpha.best
    assert best.config.variant == "fancy" and best.config.dropout == "0.3"
    assert best.score.mean == pytest.approx(0.8) and best.score.ci_half == pytest.approx(0.248414, abs=1e-6)
    assert best.score.n == 3 and best.versus is Versus.TESTED
    assert best.test.p == pytest.approx(0.225403, abs=1e-6) and not best.significant
    # fast keeps its accuracy at 90% missing (0.700); the others lose 0.3
    missing = alpha.when_missing
    assert missing.config.variant == "fast" and missing.criterion is Criterion.AT_HIGHEST_RATE and missing.rate == 90
    assert missing.value == pytest.approx(0.7) and missing.best_overall_value == pytest.approx(0.5)
    # median throughput of the 5 finished alpha configurations = 90,000 (fast): fast is the best at or above it
    budget = alpha.within_budget
    assert budget.config.variant == "fast" and budget.median_throughput == 90000 and not budget.is_best_overall
    beta = verdicts["beta"].best
    assert beta.config.variant == "concat" and beta.score.mean == pytest.approx(0.9) and beta.score.n == 1


def test_summary_claims_cite_their_evidence(report):
    """The verdicts in words, each citing the table or figure it rests on."""
    _, text = report
    summary = text[text.index("## Which strategy to use"):text.index("## Dataset `alpha`")]
    alpha = summary[summary.index("### `alpha`"):summary.index("### `beta`")]
    best, missing, budget = [line for line in alpha.splitlines() if line.startswith("- **")][:3]
    assert best.startswith("- **Best overall:** `fancy` (train dropout 0.3), test accuracy 0.800 ± 0.248 (± over "
                           "n = 3 seeds)") and "p = 0.225" in best and "not significant" in best and "Table 1" in best
    assert "often missing:** `fast`" in missing and "90% missing" in missing
    assert "Figure" in missing and "Table" in missing
    assert "`fast` (train dropout 0.3)" in budget and "90,000" in budget and "Figure" in budget
    beta = summary[summary.index("### `beta`"):]
    assert "**Best overall:** `concat` (train dropout 0), test accuracy 0.900 (1 seed: no CI)" in beta


def test_report_never_imports_torch(store, tmp_path):
    """A report can be rebuilt where only the tracking server is reachable: no torch import,
    neither through build_report nor through `fusebench report`."""
    uri, _ = store
    code = ("import sys\nfrom benchmark.reporting import build_report\n"
            f"build_report({uri!r}, {MATRIX!r}, out_root=__import__('pathlib').Path({str(tmp_path / 'api')!r}))\n"
            "assert 'torch' not in sys.modules, 'build_report imported torch'\n"
            "from benchmark.cli import main\n"
            f"assert main(['report', '--tracking-uri', {uri!r}]) == 0\n"
            "assert 'torch' not in sys.modules, '`fusebench report` imported torch'\nprint('ok')\n")
    env = {**os.environ, "FUSEBENCH_REPORTS": str(tmp_path / "cli")}
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith("ok")
    assert (tmp_path / "api" / MATRIX / "report.html").exists()
    assert (tmp_path / "cli" / MATRIX / "report.html").exists()
    # `fusebench report` also logs the report as artifacts of the matrix's parent run
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    parent = client.search_runs([client.get_experiment_by_name("fusebench").experiment_id],
                                f"tags.`fusebench.kind` = 'matrix' and tags.`fusebench.matrix_id` = '{MATRIX}'")[0]
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {"report/report.md", "report/report.html"} <= logged, logged


def test_unknown_matrix_is_a_clear_error(store, tmp_path):
    uri, _ = store
    with pytest.raises(LookupError, match="no-such-matrix"):
        build_report(uri, "no-such-matrix", out_root=tmp_path)
