"""The "Your own dataset" card in README.md, run exactly as written on generated data."""

from __future__ import annotations

import re

import numpy as np

from benchmark.paths import REPO_ROOT


def readme_card() -> str:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    after = text.split("<!-- dataset-example -->", 1)[1]
    return re.search(r"```yaml\n(.*?)```", after, re.S).group(1)


def test_readme_dataset_example_builds_features(fusebench_home):
    import pandas as pd

    from benchmark.data.cards import find_card
    from benchmark.features.tensors import build_features

    cards = fusebench_home / "cards"
    (cards / "products.yaml").write_text(readme_card())
    rng = np.random.default_rng(0)
    categories = ["garden", "kitchen", "toys"]
    rows = []
    for i in range(60):
        category = categories[i % 3]
        rows.append({"description": f"a {category} item number {i}", "price": float(rng.uniform(1, 100)),
                     "stock": int(rng.integers(0, 50)), "brand": ["acme", "globex"][i % 2], "category": category})
    (cards / "data").mkdir()
    pd.DataFrame(rows).to_csv(cards / "data" / "products.csv", index=False)

    features = build_features(find_card("products"), log=lambda s: None)
    assert features.modalities == ["shop", "text"] and features.class_names == categories
    dims = features.input_dims()
    assert dims == {"shop": 6, "text": 384}  # price, stock: z-score + missing flag; brand: 2-way one-hot
    sizes = {s: len(t) for s, t in features.splits.items()}
    assert sum(sizes.values()) == 60 and sizes["validation"] > 0 and sizes["test"] > 0
    assert features.splits["train"].tokens["shop"].shape[1] == 3  # one token per column
