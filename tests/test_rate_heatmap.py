"""The training-rate by test-rate heat map (reporting/rate_heatmap.py): its values are the logged
curve points (mean over seeds), and the fall-off finding names the configurations that trail their
strategy's best training rate beyond the rate they were trained at."""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmark.reporting.analysis import analyse
from benchmark.reporting.rate_heatmap import finding_text, rate_heatmap, rate_maps
from benchmark.vocabulary import RANKING_METRIC, TASK, missing_metric, missing_prefix

RATES = [0.0, 0.2, 0.4, 0.6, 0.8]
NO_PROBLEMS = pd.DataFrame(columns=["dataset", "variant", "strategy", "family", "dropout", "seed", "status", "error"])


def _score(variant: str, train: float, test: float, seed: int) -> float:
    """Every configuration keeps 0.9 up to its training rate; beyond it `fragile` loses 0.5 per unit of
    rate, `steady` only 0.02. Seeds differ by 0.01 so the mean is not any one run's value."""
    slope = 0.5 if variant == "fragile" else 0.02
    return 0.9 - slope * max(0.0, test - train) + 0.01 * seed


def _runs() -> pd.DataFrame:
    rows = []
    for variant, family in (("fragile", "early"), ("steady", "late")):
        for train in (0.0, 0.4):
            for seed in range(3):
                row = {"dataset": "d", "variant": variant, "strategy": variant, "family": family,
                       "dropout": f"{train:g}", "seed": seed, "device": "cpu", RANKING_METRIC: "macro_f1",
                       TASK: "multiclass", "test_macro_f1": _score(variant, train, 0.0, seed), "test_accuracy": 0.9}
                for rate in RATES:
                    row[missing_metric(rate, missing_prefix("macro_f1"))] = _score(variant, train, rate, seed)
                rows.append(row)
    return pd.DataFrame(rows)


def test_heat_map_values_equal_the_logged_curve_points(tmp_path):
    runs = _runs()
    a = analyse("d", runs, NO_PROBLEMS)
    maps = rate_maps(a)
    assert maps is not None and maps.metric == "macro_f1"  # the ranking metric's curve
    assert {g.variant for g in maps.grids} == {"fragile", "steady"}
    for g in maps.grids:
        assert g.train_rates == ("0", "0.4") and g.test_rates == (0, 20, 40, 60, 80)
        for i, train in enumerate(g.train_rates):
            logged = runs[(runs["variant"] == g.variant) & (runs["dropout"] == train)]
            expected = [logged[missing_metric(r, missing_prefix("macro_f1"))].mean() for r in RATES]
            np.testing.assert_allclose(g.values[i], expected, rtol=0, atol=1e-12)
    assert rate_heatmap(a, maps, tmp_path / "rate.png").stat().st_size > 10_000


def test_the_finding_names_the_configuration_that_falls_off_beyond_its_training_rate():
    maps = rate_maps(analyse("d", _runs(), NO_PROBLEMS))
    # trained at 0: fragile trails its 0.4-trained self by 0.5 * 0.2 = 0.1 at 20% and 0.2 at 40%..80%
    assert [(f.variant, f.train_rate) for f in maps.falling] == [("fragile", "0")]
    fall = maps.falling[0]
    assert fall.within == 0.0 and abs(fall.beyond - np.mean([0.1, 0.2, 0.2, 0.2])) < 1e-9
    # steady trails by 0.02 * 0.2 = 0.004 at 20%, 0.008 beyond: under the one-point tolerance
    assert maps.checked == 4  # every configuration has test rates on both sides of its training rate
    text = finding_text(maps)
    assert "falls off beyond the training rate for 1 of 4" in text and "`fragile` trained at 0" in text


def test_one_training_rate_draws_no_map():
    runs = _runs()
    assert rate_maps(analyse("d", runs[runs["dropout"] == "0"], NO_PROBLEMS)) is None
