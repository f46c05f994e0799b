"""The tabular encoder on wide tables: tokens linear in the column count (a fixed small width
per column token), and the errors a new user meets with tables (issue 13, item 7): `column:`
instead of `columns:`, a vector column given to `tabular`, an unknown column among thousands."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.data.cards import CardError, load_card
from benchmark.data.loading import DataError
from benchmark.features.catalog import get_encoder
from benchmark.features.tensors import build_features


def _rows(n_rows: int, n_columns: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n_rows, n_columns))
    return [{f"x{j}": float(values[i, j]) for j in range(n_columns)} for i in range(n_rows)]


def _encoded(n_columns: int, n_rows: int = 8, **options):
    rows = _rows(n_rows, n_columns)
    encoder = get_encoder("tabular", columns=[f"x{j}" for j in range(n_columns)], **options)
    encoder.fit(rows)
    return encoder.encode(rows)


def test_tokens_grow_linearly_with_the_column_count():
    """Up to max_tokens columns: one token per column of width token_width. Beyond: at most
    max_tokens tokens, of width 2 x the largest group, so T x E stays about 2 C (it was C x P)."""
    small, wide, wider = _encoded(10), _encoded(1000), _encoded(1324)
    assert small.tokens.shape == (8, 10, 32)  # (N, C, E)
    assert wide.tokens.shape == (8, 64, 32)  # 1000 columns in 64 groups of <= 16: E = 32
    assert wider.tokens.shape == (8, 64, 42)  # groups of <= 21: E = 42; 64 x 42 = 2688 ~ 2 x 1324
    assert wide.pooled.shape == (8, 2000)  # z-score + missing flag per numeric column: linear too
    assert wide.mask.shape == (8, 64) and wide.mask.all()
    assert _encoded(10, token_width=16).tokens.shape == (8, 10, 16)
    assert _encoded(100, max_tokens=10).tokens.shape == (8, 10, 32)


def test_grouped_tokens_keep_every_value():
    """A group token is a random linear map of its columns' z-scores (and missing flags) into
    E >= 2k dimensions: the z-scores can be recovered exactly from it."""
    from benchmark.features.tabular import _code

    rows = _rows(8, 1000)
    columns = [f"x{j}" for j in range(1000)]
    encoder = get_encoder("tabular", columns=columns)
    encoder.fit(rows)
    tokens = encoder.encode(rows).tokens.double()  # (8, 64, 32)
    group, width = encoder.token_layout()
    members = [c for c, g in enumerate(group) if g == 5]
    k = len(members)
    weights = np.stack([_code(width, columns[c], "value") for c in members], axis=1)  # (E, k)
    identity = sum(_code(width, columns[c], "column") for c in members)  # (E,)
    target = tokens[:, 5].numpy() * np.sqrt(k) - identity  # (8, E)
    recovered = np.linalg.lstsq(weights, target.T, rcond=None)[0].T  # (8, k)
    expected = np.array([[(row[columns[c]] - encoder.numeric[columns[c]][0]) / encoder.numeric[columns[c]][1]
                          for c in members] for row in rows])
    assert np.allclose(recovered, expected, atol=1e-4)


def test_column_tokens_are_fixed_codes_of_the_value():
    """Token = z * w_c + b_c with frozen codes seeded by the column name: the same in every run
    and whatever the other columns; distinct columns get distinct codes; z is linear in the token."""
    rows = [{"a": 1.0, "b": 5.0, "c": "red"}, {"a": 3.0, "b": 5.0, "c": "blue"}, {"a": 2.0, "b": None, "c": None}]
    encoder = get_encoder("tabular", columns=["a", "b", "c"])
    encoder.fit(rows)
    tokens = encoder.encode(rows).tokens  # (3, 3, 32)
    alone = get_encoder("tabular", columns=["c", "a"])
    alone.fit(rows)
    assert torch.equal(alone.encode(rows).tokens[:, 1], tokens[:, 0])  # column 'a' encoded the same without 'b'
    assert not torch.allclose(tokens[0, 0], tokens[0, 1])  # different columns, different codes
    # row 2 of 'a' is the mean (z = 0): its token is the identity code; the others move along w_a by z
    identity = tokens[2, 0]
    z = torch.tensor([-1.0, 1.0]) * (2 / 3) ** -0.5  # z-scores of 1 and 3 (train mean 2, std sqrt(2/3))
    direction = (tokens[1, 0] - identity) / z[1]
    assert torch.allclose(tokens[0, 0], identity + z[0] * direction, atol=1e-5)
    assert not torch.equal(tokens[2, 1], tokens[0, 1])  # a missing number has its own code
    assert not torch.equal(tokens[2, 2], tokens[0, 2]) and not torch.equal(tokens[0, 2], tokens[1, 2])


CARD = """name: wide
source:
  local: {{format: parquet, data_files: wide.parquet}}
label: y
modalities:
{modalities}
"""


def _wide_card(folder, modalities: str, n_columns: int = 30, extra: dict | None = None):
    import datasets as hf

    rows = _rows(40, n_columns)
    for i, row in enumerate(rows):
        row["y"] = i % 2
        row.update({k: v(i) for k, v in (extra or {}).items()})
    folder.mkdir(parents=True, exist_ok=True)
    hf.Dataset.from_list(rows).to_parquet(str(folder / "wide.parquet"))
    (folder / "wide.yaml").write_text(CARD.format(modalities=modalities))
    return load_card(folder / "wide.yaml")


def test_tabular_given_column_instead_of_columns(fusebench_home):
    card = _wide_card(fusebench_home / "cards", "  table: {column: x0, encoder: tabular}\n"
                                                "  other: {columns: [x1, x2], encoder: tabular}")
    with pytest.raises(CardError) as info:
        build_features(card, log=lambda *_: None)
    message = str(info.value)
    assert "\n" not in message and "wide.yaml" in message and "modalities.table" in message
    assert "'columns: [a, b, ...]'" in message and "RuntimeError" not in message


def test_tabular_given_column_exits_2_from_the_cli(fusebench_home, capsys):
    from benchmark.cli import main

    _wide_card(fusebench_home / "cards", "  table: {column: x0, encoder: tabular}\n"
                                         "  other: {columns: [x1, x2], encoder: tabular}")
    code = main(["bench", "--profile", "smoke", "--datasets", "wide", "--strategies", "concat", "--trials", "1",
                 "--epochs", "1", "--seeds", "0", "--dropout", "0", "--device", "cpu", "--no-report", "--workers", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "modalities.table" in err and "columns: [a, b, ...]" in err
    assert "Traceback" not in err


def test_vector_column_given_to_tabular_points_to_the_vector_encoder(fusebench_home):
    card = _wide_card(fusebench_home / "cards", "  table: {columns: [x0, emb], encoder: tabular}\n"
                                                "  other: {columns: [x1, x2], encoder: tabular}",
                      extra={"emb": lambda i: [float(i), 1.0, 2.0]})
    with pytest.raises(DataError) as info:
        build_features(card, log=lambda *_: None)
    message = str(info.value)
    assert "\n" not in message and "split 'train'" in message and "column 'emb'" in message
    assert "encoder: vector" in message and "free text" not in message


def test_unknown_column_among_thousands_is_listed_briefly(fusebench_home):
    columns = ", ".join(f"x{j}" for j in range(5)) + ", x_missing"
    card = _wide_card(fusebench_home / "cards", f"  table: {{columns: [{columns}], encoder: tabular}}\n"
                                                "  other: {columns: [x1, x2], encoder: tabular}", n_columns=1324)
    with pytest.raises(DataError) as info:
        build_features(card, log=lambda *_: None)
    message = str(info.value)
    assert "column 'x_missing' (modality 'table') not found" in message
    assert "the 1325 columns are ['x0', 'x1'," in message and "... and 1305 more" in message
    assert "modalities.table.columns" in message and "\n" not in message
    assert len(message) < 800, len(message)  # was 16 KB of column names
