"""Position information for token strategies (strategies/positions.py): every registered
strategy that consumes tokens must see their order, and still ignore padding."""

from __future__ import annotations

import pytest
import torch

from strategies import discover
from strategies.positions import add_positions, sinusoidal_positions
from strategies.search_space import defaults

REGISTRY = discover()
TOKEN_STRATEGIES = [name for name, cls in REGISTRY.items() if cls.consumes_tokens]
DIMS = {"audio": 6, "image": 7, "text": 5}
TOKENS = {"audio": 3, "image": 9, "text": 5}  # lengths differ by modality
B, C = 8, 4
# Rows: all present, each single modality, each pair.
PRESENT = torch.tensor(
    [[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=torch.bool
)


def token_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = {m: torch.randn(B, TOKENS[m], d, generator=g) for m, d in DIMS.items()}  # (B, T_m, D_m)
    mask = {m: torch.ones(B, TOKENS[m], dtype=torch.bool) for m in DIMS}  # (B, T_m)
    for m in DIMS:
        mask[m][1::2, -1] = False  # every other row has one padding token at the end
    return inputs, mask


def build(name, generic=False):
    """The strategy at its default hyperparameters, in eval mode. ``generic``: every parameter
    moved off its initial value, so that zero-initialised gates (gated cross-attention) do not
    hide what the architecture can see."""
    cls = REGISTRY.get(name)
    torch.manual_seed(0)
    model = cls(DIMS, C, **defaults(cls.search_space)).eval()
    if generic:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.3 * torch.randn_like(p))
    return model


def test_there_are_token_strategies():
    assert {"cross_attention", "gated_cross_attention", "perceiver", "mult"} <= set(TOKEN_STRATEGIES)


@pytest.mark.parametrize("modality", sorted(DIMS))
@pytest.mark.parametrize("name", TOKEN_STRATEGIES)
def test_permuting_a_modalitys_tokens_changes_the_output(name, modality):
    """The same permutation over the T axis of the tokens and of the mask: a bag-of-tokens model
    would not notice it. Every row where the modality is present must change."""
    model = build(name, generic=True)
    inputs, mask = token_batch()
    before = model(inputs, PRESENT, mask)  # (B, C)
    order = torch.roll(torch.arange(TOKENS[modality]), 1)  # a cyclic shift: no token keeps its place
    permuted_inputs = {**inputs, modality: inputs[modality][:, order]}  # (B, T_m, D_m)
    permuted_mask = {**mask, modality: mask[modality][:, order]}  # (B, T_m)
    after = model(permuted_inputs, PRESENT, permuted_mask)  # (B, C)
    here = PRESENT[:, sorted(DIMS).index(modality)]  # (B,)
    change = (after - before).abs().amax(dim=1)  # (B,)
    assert torch.all(change[here] > 1e-4), f"{name}: rows with {modality} present unchanged: {change}"
    assert torch.allclose(after[~here], before[~here], atol=1e-5), "an absent modality's order must not matter"


@pytest.mark.parametrize("name", TOKEN_STRATEGIES)
def test_permuting_tokens_changes_the_output_at_initialisation(name):
    """At the initial parameters too (gated cross-attention's base model mean-pools, so there
    the change comes from the rows whose padding moves)."""
    model = build(name)
    inputs, mask = token_batch()
    before = model(inputs, PRESENT, mask)
    flipped_inputs = {m: x.flip(1) for m, x in inputs.items()}
    flipped_mask = {m: x.flip(1) for m, x in mask.items()}
    after = model(flipped_inputs, PRESENT, flipped_mask)
    assert (after - before).abs().max() > 1e-4  # beyond float noise from a different summation order


@pytest.mark.parametrize("name", TOKEN_STRATEGIES)
def test_padded_token_values_do_not_change_the_output(name):
    model = build(name, generic=True)
    inputs, mask = token_batch()
    before = model(inputs, PRESENT, mask)
    noisy = {m: torch.where(mask[m].unsqueeze(-1), x, x + 100.0 * torch.randn_like(x)) for m, x in inputs.items()}
    assert torch.allclose(model(noisy, PRESENT, mask), before, atol=1e-5)


@pytest.mark.parametrize("name", TOKEN_STRATEGIES)
def test_any_sequence_length_works(name):
    model = build(name)
    for length in (1, 2, 17, 64):
        inputs = {m: torch.randn(B, length, d) for m, d in DIMS.items()}
        mask = {m: torch.ones(B, length, dtype=torch.bool) for m in DIMS}
        out = model(inputs, PRESENT, mask)
        assert out.shape == (B, C) and torch.isfinite(out).all()


# ---------------------------------------------------------------- the encoding itself

@pytest.mark.parametrize("width", [8, 7, 64])
def test_sinusoidal_positions_are_bounded_distinct_and_length_agnostic(width):
    table = sinusoidal_positions(50, width)  # (T, H)
    assert table.shape == (50, width) and table.abs().max() <= 1.0
    assert torch.equal(table[0, 0::2], torch.zeros(len(range(0, width, 2))))  # sin(0)
    assert torch.equal(table[0, 1::2], torch.ones(width // 2))  # cos(0)
    # a shorter sequence gets the first rows of a longer one: positions depend on the index only
    assert torch.allclose(sinusoidal_positions(20, width), table[:20])
    distances = torch.cdist(table, table)  # (T, T)
    assert distances[~torch.eye(50, dtype=torch.bool)].min() > 1e-3, "two indices share a position code"


def test_add_positions_adds_the_table_to_every_row():
    tokens = torch.randn(3, 6, 10)  # (B, T, H)
    out = add_positions(tokens)
    assert torch.allclose(out - tokens, sinusoidal_positions(6, 10).expand(3, 6, 10), atol=1e-6)
    assert add_positions(tokens.double()).dtype == torch.float64
