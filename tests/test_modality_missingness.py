"""Imbalanced missingness (issue 14, items 2 and 4): per-modality training dropout from the profile
and the CLI, per-modality test-time missing curves logged to MLflow and reported, and the fusion
gain against the best unimodal baseline at any training dropout."""

from __future__ import annotations

import os
from dataclasses import asdict

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from benchmark.cli import main
from benchmark.reporting.analysis import _fusion_gain, _fusion_gain_any_dropout
from benchmark.run.config import load_profile
from benchmark.vocabulary import EXPERIMENT, modality_missing_metric, modality_robustness_metric
from benchmark.train.batching import presence_rates, random_presence
from benchmark.train.evaluation import MISSING_RATES
from benchmark.train.results import Cell


# ------------------------------------------------------------------ training masks
def test_per_modality_rates_drop_each_modality_at_its_own_rate():
    rates = presence_rates((("a", 0.5), ("c", 0.1)), ["a", "b", "c"])  # b not named: never dropped
    assert rates.tolist() == pytest.approx([0.5, 0.0, 0.1])
    present = random_presence(100_000, 3, rates, torch.Generator().manual_seed(0))  # (N, 3)
    missing = (~present).float().mean(0)
    assert missing.tolist() == pytest.approx([0.5, 0.0, 0.1], abs=0.01)
    assert bool(present.any(1).all())


def test_per_modality_rates_keep_one_modality_in_every_row():
    # both rates high: 0.9 * 0.8 of the rows lose both, and get one back chosen uniformly
    present = random_presence(100_000, 2, presence_rates((("a", 0.9), ("b", 0.8)), ["a", "b"]),
                              torch.Generator().manual_seed(1))
    assert bool(present.any(1).all())
    both_lost = 0.9 * 0.8
    assert (~present).float().mean(0).tolist() == pytest.approx([0.9 - both_lost / 2, 0.8 - both_lost / 2], abs=0.01)


def test_a_float_rate_keeps_todays_draws_and_hash():
    draw = random_presence(500, 2, 0.3, torch.Generator().manual_seed(7))
    again = random_presence(500, 2, presence_rates(0.3, ["image", "text"]), torch.Generator().manual_seed(7))
    vector = random_presence(500, 2, torch.tensor([0.3, 0.3]), torch.Generator().manual_seed(7))
    assert torch.equal(draw, again) and torch.equal(draw, vector)
    cell = Cell("toy", "concat", "concat", 0.3, 0)
    assert asdict(cell)["dropout"] == 0.3 and cell.study_name("t1") == "toy/concat/drop0.3/t1"
    mapped = Cell("toy", "concat", "concat", (("image", 0.5), ("text", 0.1)), 0)
    assert mapped.study_name("t1") == "toy/concat/dropimage=0.5,text=0.1/t1"


def test_a_rate_for_an_unknown_modality_is_refused():
    with pytest.raises(ValueError, match="audio"):
        presence_rates((("audio", 0.5),), ["image", "text"])


# ------------------------------------------------------------------ profile and CLI
def test_a_profile_mapping_is_parsed_into_sorted_pairs(fusebench_home, toy_card, capsys):
    profile = fusebench_home / "mixed.yaml"
    profile.write_text("datasets: [toy]\nstrategies: [concat]\ndropout_rates: [0, 0.3, {text: 0.1, image: 0.5}]\n"
                       "trials: 0\nepochs: 2\n")
    config = load_profile(str(profile))
    assert config.dropout_rates == (0, 0.3, (("image", 0.5), ("text", 0.1)))
    assert main(["bench", "--profile", str(profile), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "toy · concat · dropout image=0.5,text=0.1 · seed 0" in out and "3 cells" in out


def test_a_profile_mapping_with_an_unknown_modality_exits_2_naming_it(fusebench_home, toy_card, capsys):
    profile = fusebench_home / "bad.yaml"
    profile.write_text("datasets: [toy]\ndropout_rates: [0.3, {audio: 0.5}]\n")
    assert main(["bench", "--profile", str(profile), "--dry-run"]) == 2
    line = capsys.readouterr().err.strip()
    assert len(line.splitlines()) == 1, line
    for part in (str(profile), "dropout_rates", "'audio'", "toy", "['image', 'text']"):
        assert part in line, line
    assert not (fusebench_home / "mlruns.db").exists()


@pytest.mark.parametrize("flag, expected", [("image=0.5:audio=0.2", "'audio'"), ("image=1.5", "rates in [0, 1)"),
                                             ("image=x", "image=0.5:text=0.1")])
def test_a_bad_per_modality_flag_exits_2_naming_the_flag(flag, expected, fusebench_home, toy_card, capsys):
    try:
        code = main(["bench", "--profile", "smoke", "--datasets", "toy", "--dropout", flag, "--dry-run"])
    except SystemExit as exit_:  # argparse refuses the syntax and the range
        code = exit_.code
    assert code == 2
    line = capsys.readouterr().err.strip()
    assert "--dropout" in line and expected in line, line


# ------------------------------------------------------------------ end to end: train, log, report
@pytest.mark.slow
def test_bench_with_per_modality_dropout_logs_and_reports_per_modality_curves(toy_card, fusebench_home, capsys):
    uri = os.environ["MLFLOW_TRACKING_URI"]
    args = ["bench", "--profile", "smoke", "--datasets", "toy", "--strategies", "concat,unimodal", "--trials", "0",
            "--epochs", "6", "--patience", "2", "--seeds", "0", "--dropout", "image=0.5:text=0.1", "--device", "cpu"]
    assert main(args) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], "tags.`fusebench.kind` = 'cell'")
    assert len(runs) == 3  # concat, unimodal[image], unimodal[text]
    for run in runs:
        m = run.data.metrics
        assert run.data.params["modality_dropout"] == "image=0.5,text=0.1"
        for modality in ("image", "text"):
            for rate in MISSING_RATES:
                for metric in ("accuracy", "macro_f1"):
                    assert modality_missing_metric(modality, rate, metric) in m, (modality, rate, metric)
            # rate 0 removes nothing: the full-input score
            assert m[modality_missing_metric(modality, 0.0)] == m["test_accuracy"]
            if m["collapsed"] == 0.0 and m["test_accuracy"] > m["majority_accuracy"] + 0.01:
                assert modality_robustness_metric(modality) in m
        if run.data.params["variant"] == "unimodal[image]":  # removing text cannot change an image-only model
            assert all(m[modality_missing_metric("text", r)] == m["test_accuracy"] for r in MISSING_RATES)
    assert "### Robustness when one modality goes missing" in out
    assert "robustness (image missing)" in out and "robustness (text missing)" in out
    assert "| concat | image=0.5,text=0.1 |" in out
    report = sorted((fusebench_home / "reports").glob("*/toy_modality_missing_curves.png"))
    assert report and report[0].stat().st_size > 10_000


# ------------------------------------------------------------------ fusion gain at any dropout
def _configs() -> pd.DataFrame:
    rows = [  # variant, family, dropout, test accuracy, validation score
        ("unimodal[image]", "unimodal", "0", 0.70, 0.72),
        ("unimodal[image]", "unimodal", "0.6", 0.55, 0.58),
        ("unimodal[text]", "unimodal", "0", 0.60, 0.61),
        ("unimodal[text]", "unimodal", "0.6", 0.66, 0.74),  # best by validation, not by test
        ("concat", "early", "0", 0.75, 0.76),
        ("concat", "early", "0.6", 0.68, 0.70),
    ]
    return pd.DataFrame([{"variant": v, "family": f, "dropout": d, "accuracy": s, "val_score": val, "n": 3,
                          "marked": False, "n_collapsed": 0, "n_not_converged": 0} for v, f, d, s, val in rows])


def test_fusion_gain_at_any_dropout_uses_the_unimodal_best_on_validation():
    configs = _configs()
    _fusion_gain(configs, "accuracy")
    _fusion_gain_any_dropout(configs, "accuracy")
    concat = configs.set_index(["variant", "dropout"]).loc["concat"]
    # same dropout: 0.75 - 0.70 at 0, 0.68 - 0.66 at 0.6
    assert concat.loc["0", "fusion_gain"] == pytest.approx(0.05)
    assert concat.loc["0.6", "fusion_gain"] == pytest.approx(0.02)
    # any dropout: unimodal[text] at 0.6 has the best validation score (0.74), test 0.66
    assert set(configs["best_unimodal_any"]) == {"unimodal[text] (train dropout 0.6)"}
    assert concat.loc["0", "fusion_gain_any"] == pytest.approx(0.09)
    assert concat.loc["0.6", "fusion_gain_any"] == pytest.approx(0.02)


def test_fusion_gain_at_any_dropout_is_absent_without_validation_scores():
    configs = _configs().drop(columns="val_score")
    _fusion_gain_any_dropout(configs, "accuracy")
    assert configs["fusion_gain_any"].isna().all()


# ------------------------------------------------------------------ report: per-modality table from a store's columns
def _runs(with_curves: bool) -> pd.DataFrame:
    """Two configurations as fetch_matrix gives them: concat leans on image, the text baseline ignores it."""
    rows = []
    for variant, family, full, image_drop in (("concat", "early", 0.9, 0.3), ("unimodal[text]", "unimodal", 0.6, 0.0)):
        for seed in (0, 1):
            row = {"dataset": "d", "variant": variant, "strategy": variant.split("[")[0], "family": family,
                   "dropout": "0.3", "seed": seed, "test_accuracy": full, "test_macro_f1": full,
                   "best_val_score": full, "majority_accuracy": 0.5, "robustness": 0.8}
            if with_curves:
                for m, drop in (("image", image_drop), ("text", 0.1)):
                    for rate in MISSING_RATES:
                        row[modality_missing_metric(m, rate)] = full - drop * rate
                    row[modality_robustness_metric(m)] = 1 - drop
            rows.append(row)
    return pd.DataFrame(rows)


def test_the_report_reads_per_modality_curves_and_skips_old_stores():
    from benchmark.reporting.analysis import analyse
    from benchmark.reporting.modality_missing import modality_missing

    empty = pd.DataFrame(columns=["dataset", "variant", "strategy", "family", "dropout", "seed", "status", "error"])
    assert modality_missing(analyse("d", _runs(False), empty)) is None  # an old store: no section
    curves = modality_missing(analyse("d", _runs(True), empty))
    assert curves.modalities == ["image", "text"] and curves.rates == [round(r * 100) for r in MISSING_RATES]
    concat = curves.configs[curves.configs["variant"] == "concat"].iloc[0]
    assert concat["image:90"] == pytest.approx(0.9 - 0.3 * 0.9) and concat["robustness:image"] == pytest.approx(0.7)
    uni = curves.configs[curves.configs["variant"] == "unimodal[text]"].iloc[0]
    assert uni["robustness:image"] == pytest.approx(1.0) and uni["text:50"] == pytest.approx(0.6 - 0.05)
