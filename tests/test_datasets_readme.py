"""The dataset card example in README.md ("A dataset card"), run exactly as written on generated data."""

from __future__ import annotations

import re

import numpy as np

from benchmark.paths import REPO_ROOT


def readme_card() -> str:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    after = text.split("<!-- dataset-example -->", 1)[1]
    return re.search(r"```yaml\n(.*?)```", after, re.S).group(1)


CATEGORIES = ["garden", "kitchen", "toys"]


def _write_products(cards) -> None:
    """The README card in ``cards`` with 60 generated rows in ``cards/data/products.csv``."""
    import pandas as pd

    (cards / "products.yaml").write_text(readme_card())
    rng = np.random.default_rng(0)
    rows = []
    for i in range(60):
        category = CATEGORIES[i % 3]
        rows.append({"description": f"a {category} item number {i}", "price": float(rng.uniform(1, 100)),
                     "stock": int(rng.integers(0, 50)), "brand": ["acme", "globex"][i % 2], "category": category})
    (cards / "data").mkdir()
    pd.DataFrame(rows).to_csv(cards / "data" / "products.csv", index=False)


def test_readme_dataset_example_builds_features(fusebench_home):
    from benchmark.data.cards import find_card
    from benchmark.features.tensors import build_features

    _write_products(fusebench_home / "cards")
    features = build_features(find_card("products"), log=lambda s: None)
    assert features.modalities == ["shop", "text"] and features.class_names == CATEGORIES
    dims = features.input_dims()
    assert dims == {"shop": 6, "text": 384}  # price, stock: z-score + missing flag; brand: 2-way one-hot
    sizes = {s: len(t) for s, t in features.splits.items()}
    assert sum(sizes.values()) == 60 and sizes["validation"] > 0 and sizes["test"] > 0
    assert features.splits["train"].tokens["shop"].shape[1] == 3  # one token per column


def test_readme_dataset_example_benches_from_its_path(fusebench_home, tmp_path, monkeypatch):
    """As the README says: the card can live anywhere and `bench --datasets path/to/products.yaml` runs it."""
    import os

    from benchmark.cli import main
    from tests.helpers_runs import cell_runs

    elsewhere = tmp_path / "my_cards"
    elsewhere.mkdir()
    _write_products(elsewhere)
    monkeypatch.chdir(tmp_path)
    bench = ["bench", "--profile", "smoke", "--datasets", "my_cards/products.yaml", "--strategies", "concat",
             "--trials", "1", "--epochs", "2", "--seeds", "0", "--dropout", "0", "--device", "cpu", "--no-report"]
    assert main(bench) == 0
    runs = cell_runs(os.environ["MLFLOW_TRACKING_URI"])
    assert [(r.data.tags["dataset"], r.info.status) for r in runs] == [("products", "FINISHED")]
    assert 0.0 <= runs[0].data.metrics["test_accuracy"] <= 1.0
