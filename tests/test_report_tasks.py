"""The report for every task type (binary, multilabel, regression), the rows per combination of
modalities present in the data, and the refusal to replace reports/latest with an empty report.
Built from real MLflow SQLite stores filled here with the metric names `fusebench bench` logs."""

from __future__ import annotations

import os

import pytest

from benchmark.cli import main
from benchmark.reporting import build_report
from benchmark.reporting.analysis import analyse_matrix
from benchmark.reporting.build import EmptyReport
from benchmark.reporting.fetch import fetch_matrix
from benchmark.reporting.verdicts import dataset_verdicts
from benchmark.vocabulary import (COLLAPSED, RANKING_METRIC, TASK, data_rows_metric, missing_metric, missing_prefix,
                                    subset_metric)
from benchmark.tracking.mlflow_runs import MatrixTracker
from benchmark.vocabulary import cell_tags
from tests.test_report_trust import _section, _summary  # the report's dataset section and summary block
from tests.helpers_runs import start_synthetic_cell, start_version1_cell

MATRIX = "tasks-matrix"
RATES = [0, 30, 60, 90]


class Cell:
    """One configuration: the task's metrics per seed (metric -> values), how the ranking metric moves
    per unit of test-time missing rate, and which seeds collapsed."""

    def __init__(self, family: str, values: dict[str, list[float]], slope: float = 0.0, collapsed=(),
                 sps: float = 1000.0):
        self.family, self.values, self.slope, self.collapsed, self.sps = family, values, slope, set(collapsed), sps

    @property
    def seeds(self) -> int:
        return len(next(iter(self.values.values())))


# binary (ranked by AUROC, the default): `acc_high` has the best accuracy and F1 but the worst AUROC.
MEMES = {
    "fancy": Cell("attention", {"auroc": [0.80, 0.82, 0.78], "f1": [0.60, 0.62, 0.61], "accuracy": [0.70] * 3},
                  slope=-0.2),
    "acc_high": Cell("late", {"auroc": [0.66, 0.65, 0.67], "f1": [0.70, 0.71, 0.72], "accuracy": [0.80] * 3},
                     slope=-0.1),
    "concat": Cell("early", {"auroc": [0.72, 0.74, 0.73], "f1": [0.55] * 3, "accuracy": [0.68] * 3}, slope=-0.2),
    "unimodal[text]": Cell("unimodal", {"auroc": [0.62] * 3, "f1": [0.50] * 3, "accuracy": [0.66] * 3}),
}
# multilabel (ranked by micro-F1, the default).
IMDB = {
    "fancy": Cell("attention", {"micro_f1": [0.61, 0.63], "macro_f1": [0.41, 0.43], "mean_ap": [0.55, 0.57]},
                  slope=-0.1),
    "concat": Cell("early", {"micro_f1": [0.58, 0.60], "macro_f1": [0.45, 0.47], "mean_ap": [0.52, 0.50]},
                   slope=-0.1),
    "unimodal[text]": Cell("unimodal", {"micro_f1": [0.50, 0.52], "macro_f1": [0.30, 0.32], "mean_ap": [0.44, 0.46]}),
}
# regression (ranked by MAE, the default; lower is better) with acc-2. `stuck` has the lowest MAE but collapsed
# (a constant predictor): never ranked. `steady` loses nothing when modalities go missing.
MOSI = {
    "low_mae": Cell("attention", {"mae": [0.70, 0.72, 0.71], "rmse": [0.90, 0.92, 0.91], "pearson_r": [0.60] * 3,
                                  "sign_accuracy": [0.75] * 3}, slope=0.4, sps=500),
    "concat": Cell("early", {"mae": [0.80, 0.82, 0.78], "rmse": [1.0] * 3, "pearson_r": [0.70] * 3,
                             "sign_accuracy": [0.72] * 3}, slope=0.4, sps=3000),
    "steady": Cell("late", {"mae": [0.76, 0.76, 0.76], "rmse": [0.95] * 3, "pearson_r": [0.50] * 3,
                            "sign_accuracy": [0.70] * 3}, slope=0.0, sps=2000),
    "unimodal[text]": Cell("unimodal", {"mae": [0.85, 0.86, 0.84], "rmse": [1.1] * 3, "pearson_r": [0.4] * 3,
                                        "sign_accuracy": [0.68] * 3}, slope=0.0, sps=9000),
    "unimodal[audio]": Cell("unimodal", {"mae": [1.20] * 3, "rmse": [1.4] * 3, "pearson_r": [0.1] * 3,
                                         "sign_accuracy": [0.55] * 3}, slope=0.0, sps=8000),
    "stuck": Cell("early", {"mae": [0.50] * 3, "rmse": [0.6] * 3, "pearson_r": [0.0] * 3,
                            "sign_accuracy": [0.5] * 3}, collapsed={0, 1, 2}, sps=9500),
}
DATASETS = {"memes": ("binary", "auroc", MEMES), "imdb": ("multilabel", "micro_f1", IMDB),
            "mosi": ("regression", "mae", MOSI)}
REFERENCES = {"memes": {"auroc": 0.5, "f1": 0.0, "accuracy": 0.64}, "imdb": {"micro_f1": 0.2, "mean_ap": 0.15},
              "mosi": {"mae": 1.3, "rmse": 1.5}}
# Rows per combination of modalities present in the data: mosi has rows without audio or without text;
# memes has every modality in every row.
DATA_ROWS = {
    "mosi": {"train": {"audio-text": 80, "text": 15, "audio": 5}, "validation": {"audio-text": 18, "text": 2},
             "test": {"audio-text": 27, "text": 2, "audio": 1}},
    "memes": {"train": {"image-text": 600}, "validation": {"image-text": 100}, "test": {"image-text": 300}},
}


def _metrics(dataset: str, ranking: str, cell: Cell, seed: int) -> dict[str, float]:
    modalities = ("audio", "text") if dataset == "mosi" else ("image", "text")
    m = {f"test_{name}": values[seed] for name, values in cell.values.items()}
    score = cell.values[ranking][seed]
    m.update({"param_count": 1000.0, "inference_samples_per_s": cell.sps, "train_samples_per_s": cell.sps / 10,
              "peak_cpu_rss_mb": 1000.0, COLLAPSED: float(seed in cell.collapsed), f"default_test_{ranking}":
              score + (0.05 if ranking == "mae" else -0.05)})
    m.update({f"reference_{name}": value for name, value in REFERENCES[dataset].items()})
    m[subset_metric(modalities, ranking)] = score
    for i, modality in enumerate(modalities):
        m[subset_metric((modality,), ranking)] = score + (1 if ranking == "mae" else -1) * 0.1 * (i + 1)
    for rate in RATES:
        m[missing_metric(rate / 100, missing_prefix(ranking))] = score + cell.slope * rate / 100
    for split, counts in DATA_ROWS.get(dataset, {}).items():
        m.update({data_rows_metric(split, mods.split("-")): float(n) for mods, n in counts.items()})
    return m


def _fill(uri: str) -> None:
    tracker = MatrixTracker(uri, MATRIX, {"profile": "test"}, "cpu")
    for dataset, (task, ranking, cells) in DATASETS.items():
        for variant, cell in cells.items():
            for seed in range(cell.seeds):
                params = {"dataset": dataset, "strategy": variant.split("[")[0], "variant": variant,
                          "family": cell.family, "seed": str(seed), "modality_dropout": "0.2", "device": "cpu",
                          TASK: task, RANKING_METRIC: ranking}
                run_id = start_synthetic_cell(tracker, f"{dataset}-{variant}-{seed}", f"{dataset} · {variant} · dropout 0.2 · "
                                            f"seed {seed}", params)
                tracker.finish_cell(run_id, params, _metrics(dataset, ranking, cell, seed), {"family": cell.family},
                                    {"note": "test"})
    tracker.finish_matrix({})


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[object, str]:
    folder = tmp_path_factory.mktemp("tasks")
    uri = f"sqlite:///{folder}/mlruns.db"
    _fill(uri)
    out, text = build_report(uri, out_root=folder / "reports")
    return out, text, uri


def _table(section: str, first_header: str) -> list[list[str]]:
    """The cells of the first table whose header starts with `first_header` (header row first)."""
    lines = section.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        if not set(line) <= set("|-: "):
            rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    return rows


# ------------------------------------------------------------------ regression: lower is better
def test_regression_ranks_lowest_mae_first(report):
    mosi = _section(report[1], "mosi")
    table = _table(mosi, "rank")
    header = table[0]
    assert header[4:10] == ["test MAE (mean ± 95% CI)", "seeds (n)", "RMSE", "Pearson r", "acc-2 (sign accuracy)",
                            "robustness"], header
    order = [(row[0], row[1]) for row in table[1:]]
    # ranked by mean MAE ascending: low_mae 0.71, steady 0.76, concat 0.80, text 0.85, audio 1.20; stuck
    # (MAE 0.50, collapsed) unranked after them, then the constant reference
    assert order == [("1", "low_mae"), ("2", "steady"), ("3", "concat"), ("4", "unimodal[text]"),
                     ("5", "unimodal[audio]"), ("—", "stuck"), ("ref.", "constant (training mean) (reference)")]
    assert table[1][4].startswith("0.710 ± ") and table[1][6:9] == ["0.910", "0.600", "0.750"]
    assert table[-1][4] == "1.300" and table[-1][6] == "1.500"
    assert "lower is better, so the lowest comes first" in mosi and "Task: regression." in mosi


def test_regression_gain_picks_and_tuning_follow_direction(report):
    mosi = _section(report[1], "mosi")
    gain = {row[0]: row for row in _table(mosi, "strategy")[1:]}  # the fusion gain table comes first
    # best unimodal = the lowest MAE (text, 0.85): low_mae improves on it by 0.85 - 0.71 = +0.140
    assert gain["low_mae"][3] == "unimodal[text]" and gain["low_mae"][4] == "+0.140"
    assert gain["concat"][4] == "+0.050" and gain["steady"][4] == "+0.090"
    # paired Δ vs concat is the raw MAE difference: 0.71 - 0.80 = -0.090
    assert gain["low_mae"][5].startswith("-0.090")
    runs = fetch_matrix(report[2], MATRIX)
    v = dataset_verdicts(next(a for a in analyse_matrix(runs.ok, runs.problems) if a.name == "mosi"))
    assert not v.scoring.higher_is_better and v.scoring.ranking == "mae"
    assert v.best.config.variant == "low_mae" and v.best.score.mean == pytest.approx(0.71)
    assert v.best.marked_better == 1 and v.best.marked_best_score == pytest.approx(0.5)  # stuck: marked
    # at 90% missing: low_mae 0.71 + 0.36 = 1.070, concat 1.160, steady 0.760 -> steady is the most robust
    assert v.when_missing.config.variant == "steady" and v.when_missing.rate == 90
    assert v.when_missing.value == pytest.approx(0.76) and v.when_missing.best_overall_value == pytest.approx(1.07)
    # median throughput of the 6 configurations = 5,500: text, audio and stuck (marked) are at or above it
    budget = v.within_budget
    assert budget.config.variant == "unimodal[text]" and budget.median_throughput == 5500
    assert budget.score == pytest.approx(0.85) and budget.throughput == 9000
    assert (v.fusion.beats, v.fusion.of, v.fusion.some_marked) == (3, 3, True)
    assert v.fusion.top.variant == "low_mae" and v.fusion.top_gain == pytest.approx(0.14)
    claims = {line[4:line.index("**", 4)].rstrip(":"): line for line in _summary(report[1], "mosi").splitlines()
              if line.startswith("- **")}
    assert "(lower is better)" in claims["Best overall"]
    assert "1 marked configuration(s) score better (down to 0.500)" in claims["Best overall"]
    assert "lowest MAE at 90% missing: 0.760" in claims["Best when a modality is often missing"]
    # tuning: default MAE = tuned + 0.05, so tuning helped by +0.050 on every seed
    assert "| low_mae | 0.2 | 0.760 | 0.710 | +0.050 ± 0.000 | 3 |" in mosi
    assert "default − tuned (MAE: lower is better" in mosi
    # the robustness table is in MAE, lowest at 90% first
    robust = _table(mosi[mosi.index("Robustness to missing"):], "strategy")
    assert robust[0][2:5] == ["MAE 0% missing", "MAE 60% missing", "MAE 90% missing"], robust[0]
    # at 90%: steady 0.76, text 0.85, low_mae 1.07, concat 1.16, audio 1.20; stuck (marked) last
    assert [row[0] for row in robust[1:]] == ["steady", "unimodal[text]", "low_mae", "concat", "unimodal[audio]",
                                              "stuck"]


def test_regression_data_rows_table(report):
    mosi = _section(report[1], "mosi")
    rows = _table(mosi, "modalities present")
    assert rows[0] == ["modalities present", "train", "validation", "test"]
    assert rows[1:] == [["audio + text", "80", "18", "27"], ["audio", "5", "0", "1"], ["text", "15", "2", "2"],
                        ["all rows", "100", "20", "30"]]
    assert mosi.index("modalities present") < mosi.index("### Leaderboard")


def test_full_rows_are_one_sentence(report):
    memes = _section(report[1], "memes")
    assert "every row has all its modalities present (image + text; rows: train 600, validation 100, test 300)" \
        in memes
    assert "| modalities present |" not in memes
    imdb = _section(report[1], "imdb")  # no data_rows logged: nothing to show
    assert "| modalities present |" not in imdb and "**Data:**" not in imdb


# ------------------------------------------------------------------ binary and multilabel
def test_binary_ranked_by_auroc_with_its_columns(report):
    memes = _section(report[1], "memes")
    table = _table(memes, "rank")
    assert table[0][4:8] == ["test AUROC (mean ± 95% CI)", "seeds (n)", "F1", "accuracy"], table[0]
    assert [row[1] for row in table[1:5]] == ["fancy", "concat", "acc_high", "unimodal[text]"]
    assert table[1][4].startswith("0.800 ± ") and table[1][6:8] == ["0.610", "0.700"]
    assert table[-1][:8] == ["ref.", "constant (training prevalence) (reference)", "reference", "—", "0.500", "—",
                             "0.000", "0.640"]
    best = next(line for line in _summary(report[1], "memes").splitlines() if "**Best overall:**" in line)
    assert best.startswith("- **Best overall:** `fancy` (train dropout 0.2), test AUROC 0.800 ± ")
    assert "Fusion gain" in memes and "+0.180" in memes  # fancy 0.80 - text 0.62
    assert "AUROC 90% missing" in memes  # robustness table in the ranking metric


def test_multilabel_ranked_by_micro_f1_with_its_columns(report):
    imdb = _section(report[1], "imdb")
    table = _table(imdb, "rank")
    assert table[0][4:8] == ["test micro-F1 (mean ± 95% CI)", "seeds (n)", "macro-F1", "mAP"], table[0]
    assert [row[1] for row in table[1:4]] == ["fancy", "concat", "unimodal[text]"]
    assert table[1][6:8] == ["0.420", "0.560"]
    assert "micro-F1 90% missing" in imdb


def test_figures_for_every_task(report):
    folder, text, _ = report
    pngs = {p.name for p in folder.glob("*.png")}
    for dataset in DATASETS:
        for stem in ("robustness_heatmap", "missing_curves", "accuracy_vs_throughput", "tuning_gain"):
            assert f"{dataset}_{stem}.png" in pngs, (dataset, stem, sorted(pngs))
    assert "MAE against cost" in text and "AUROC against cost" in text


def test_runs_without_task_param_are_multiclass(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    tracker = MatrixTracker(uri, "old", {}, "cpu")
    for variant, acc in (("concat", 0.7), ("fancy", 0.8)):
        run_id = start_version1_cell(tracker, variant, f"old · {variant} · dropout 0 · seed 0", {"dataset": "old"})
        tracker.finish_cell(run_id, {"dataset": "old", "strategy": variant, "variant": variant, "family": "early",
                                     "seed": "0", "modality_dropout": "0", "device": "cpu"},
                            {"test_accuracy": acc, "test_macro_f1": acc - 0.1}, {}, {})
    tracker.finish_matrix({})
    _, text = build_report(uri, out_root=tmp_path / "reports")
    table = _table(_section(text, "old"), "rank")
    assert table[0][4:7] == ["test accuracy (mean ± 95% CI)", "seeds (n)", "macro-F1"]
    assert [row[1] for row in table[1:]] == ["fancy", "concat"]


# ------------------------------------------------------------------ the empty report is refused
def test_empty_report_is_refused_and_latest_kept(tmp_path, monkeypatch, capsys):
    uri = f"sqlite:///{tmp_path}/mlruns.db"
    reports = tmp_path / "reports"
    monkeypatch.setenv("FUSEBENCH_REPORTS", str(reports))
    good = MatrixTracker(uri, "good", {}, "cpu")
    run_id = good.start_cell("a", "d · concat · dropout 0 · seed 0", cell_tags("d", "concat", "concat", "early", 0, 0))
    good.finish_cell(run_id, {"dataset": "d", "strategy": "concat", "variant": "concat", "family": "early",
                              "seed": "0", "modality_dropout": "0", "device": "cpu"}, {"test_accuracy": 0.7}, {}, {})
    good.finish_matrix({})
    assert main(["report", "--tracking-uri", uri, "--matrix-id", "good", "--no-log"]) == 0
    assert os.readlink(reports / "latest") == "good"
    capsys.readouterr()

    bad = MatrixTracker(uri, "bad", {}, "cpu")  # its only cell failed while loading data
    run_id = bad.start_cell("b", "d · concat · dropout 0 · seed 0", cell_tags("d", "concat", "concat", "early", 0, 0))
    bad.fail_cell(run_id, "DataError: card.yaml: label column 'y' not found\nTraceback ...", "DataError")
    assert main(["report", "--tracking-uri", uri, "--matrix-id", "bad", "--no-log"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "matrix bad has no finished cell run" in err and "1 failed, 0 unfinished" in err
    assert "still points at good" in err and "label column 'y' not found" in err
    assert os.readlink(reports / "latest") == "good"
    assert not (reports / "bad").exists()
    with pytest.raises(EmptyReport):
        build_report(uri, "bad", out_root=tmp_path / "other")
    assert not (tmp_path / "other").exists() or not any((tmp_path / "other").iterdir())


def test_bench_with_no_finished_cell_ends_without_report(tmp_path, monkeypatch):
    """The end of `fusebench bench` when every cell failed: no report, latest untouched, parent run closed."""
    from benchmark.run.coordinator import BenchSummary, finish_bench

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    reports = tmp_path / "reports"
    monkeypatch.setenv("FUSEBENCH_REPORTS", str(reports))
    reports.mkdir()
    os.symlink("earlier", reports / "latest")
    tracker = MatrixTracker(uri, "allfail", {}, "cpu")
    run_id = tracker.start_cell("c", "d · concat · dropout 0 · seed 0", cell_tags("d", "concat", "concat", "early", 0, 0))
    tracker.fail_cell(run_id, "DataError: card.yaml: no rows", "DataError")
    lines = []
    assert finish_bench(BenchSummary("allfail", cells=1), uri, "cpu", log=lines.append) is None
    assert any(line.startswith("no report: matrix allfail has no finished cell run") for line in lines), lines
    assert os.readlink(reports / "latest") == "earlier" and not (reports / "allfail").exists()
    parent = tracker.client.get_run(tracker.parent_id)
    assert parent.info.status == "FINISHED"
