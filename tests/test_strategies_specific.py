"""Strategy-specific checks, beyond the shared contract in test_strategy_contract.py."""

from __future__ import annotations

import math

import pytest
import torch

from strategies import discover
from strategies.attention import AdditiveAttention, GatedCrossAttention
from strategies.film import FiLMFusion
from strategies.fused_attention import MaskedAttention, SelfAttentionLayer
from strategies.gmu import GatedMultimodalUnit
from strategies.hybrid import HybridFusion
from strategies.late import LateWeighted, ProbabilityAverage
from strategies.low_rank import LowRankFusion
from strategies.merges import HarmonicMerge, ProductMerge, SumMerge, harmonic_mean
from strategies.network_merge import NetworkMerge
from strategies.positions import sinusoidal_positions
from strategies.search_space import defaults
from strategies.tensor_fusion import TensorFusion
from strategies.unimodal import Unimodal

DIMS = {"audio": 6, "image": 7, "text": 5}
B, C = 8, 4
# Rows: all present, each single modality, each pair (a mix of every subset).
PRESENT = torch.tensor(
    [[1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=torch.bool
)


def pooled_inputs(dims=DIMS, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(B, d, generator=g) for m, d in dims.items()}


def token_inputs(dims=DIMS, seed=0, length=4):
    g = torch.Generator().manual_seed(seed)
    inputs = {m: torch.randn(B, length, d, generator=g) for m, d in dims.items()}
    mask = {m: torch.ones(B, length, dtype=torch.bool) for m in dims}
    for m in dims:
        mask[m][1::2, -1] = False
    return inputs, mask


# ---------------------------------------------------------------- merges

def test_harmonic_mean_of_equal_inputs_is_that_input():
    x = torch.rand(B, 1, 10) + 0.1  # (B, 1, H) positive
    stacked = x.expand(B, 3, 10).clone()  # (B, M, H) all modalities equal
    assert torch.allclose(harmonic_mean(stacked, PRESENT), x.squeeze(1), rtol=1e-6)
    # through the strategy's merge: equal projections give softplus(p) + eps
    model = HarmonicMerge(DIMS, C)
    p = torch.randn(B, 1, 10)
    merged = model.merge(p.expand(B, 3, 10), PRESENT)
    assert torch.allclose(merged, torch.nn.functional.softplus(p.squeeze(1)) + model.eps, rtol=1e-5)


def test_harmonic_mean_uses_present_modalities_only():
    values = torch.rand(B, 3, 5) + 0.1
    values_changed = torch.where(PRESENT.unsqueeze(-1), values, torch.full_like(values, 1e-6))
    expected = torch.stack([
        PRESENT[b].sum() / (1.0 / values[b, PRESENT[b]]).sum(dim=0) for b in range(B)
    ])  # (B, H) by the definition n / sum(1 / x)
    assert torch.allclose(harmonic_mean(values, PRESENT), expected, rtol=1e-5)
    assert torch.allclose(harmonic_mean(values_changed, PRESENT), expected, rtol=1e-5)


def test_product_merge_multiplies_tanh_projections_and_uses_one_for_absent_modalities():
    model = ProductMerge(DIMS, C)
    projected = torch.randn(B, 3, 5)
    expected = torch.stack([torch.tanh(projected[b, PRESENT[b]]).prod(dim=0) for b in range(B)])  # (B, H)
    assert torch.allclose(model.merge(projected, PRESENT), expected)
    # a single present modality passes through as tanh(W x + b) (the others are the identity 1)
    single = PRESENT.sum(dim=1) == 1
    idx = PRESENT[single].float().argmax(dim=1)
    assert torch.equal(model.merge(projected, PRESENT)[single], torch.tanh(projected[single, idx]))
    # Antol et al.: tanh(W_1 x_1) * tanh(W_2 x_2) ... on the strategy's own projections
    inputs = pooled_inputs()
    merged = model.merge(model.project(inputs), PRESENT[:1].expand(B, 3))  # all present
    by_hand = math.prod(torch.tanh(model.projections[m](inputs[m])) for m in sorted(DIMS))  # (B, H)
    assert torch.allclose(merged, by_hand, atol=1e-6)


def test_sum_merge_is_a_linear_layer_on_the_zero_filled_concatenation():
    """sum_m (W_m x_m + b_m) over present m == [W_1 .. W_M] [x_1; ..; x_M] + [b_1 .. b_M] flags."""
    model = SumMerge(DIMS, C)
    inputs = pooled_inputs()
    clean = [torch.where(PRESENT[:, i : i + 1], inputs[m], 0.0) for i, m in enumerate(sorted(DIMS))]
    merged = model.merge(model.project(dict(zip(sorted(DIMS), clean))), PRESENT)  # (B, H)
    weight = torch.cat([model.projections[m].weight for m in sorted(DIMS)], dim=1)  # (H, sum D_m)
    biases = torch.stack([model.projections[m].bias for m in sorted(DIMS)], dim=1)  # (H, M)
    expected = torch.cat(clean, dim=1) @ weight.T + PRESENT.float() @ biases.T  # (B, H)
    assert torch.allclose(merged, expected, atol=1e-5)


# ---------------------------------------------------------------- late fusion

def test_late_weights_sum_to_one_over_present_modalities():
    model = LateWeighted(DIMS, C)
    with torch.no_grad():
        model.weight_logits.copy_(torch.tensor([0.3, -1.0, 2.0]))
    w = model.modality_weights(PRESENT)  # (B, M)
    assert torch.allclose(w.sum(dim=1), torch.ones(B))
    assert torch.all(w[~PRESENT] == 0)
    assert torch.all(w[PRESENT] > 0)


def test_prob_average_is_log_of_mean_probabilities():
    model = ProbabilityAverage(DIMS, C).eval()
    inputs = pooled_inputs()
    out = model(inputs, PRESENT)
    probs = torch.stack([torch.softmax(model.classifiers[m](inputs[m]), dim=-1) for m in sorted(DIMS)], dim=1)
    expected = torch.stack([probs[b, PRESENT[b]].mean(dim=0) for b in range(B)]).log()  # (B, C)
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(B), atol=1e-5)


# ---------------------------------------------------------------- attention

def test_gated_cross_attention_equals_its_base_at_init():
    model = GatedCrossAttention(DIMS, C).eval()
    inputs, mask = token_inputs()
    assert torch.equal(model(inputs, PRESENT, mask), model.base_logits(inputs, PRESENT, mask))
    # the base really is "tokens + positions -> pool per modality -> mean over present -> head": by hand
    pooled = []
    for i, m in enumerate(sorted(DIMS)):
        tokens = model.projections[m](inputs[m])  # (B, T, H)
        tokens = tokens + sinusoidal_positions(tokens.shape[1], tokens.shape[2])  # (B, T, H)
        keep = mask[m].unsqueeze(-1).float()
        pooled.append((tokens * keep).sum(1) / keep.sum(1))
    stacked = torch.stack(pooled, dim=1)  # (B, M, H)
    fused = torch.stack([stacked[b, PRESENT[b]].mean(dim=0) for b in range(B)])
    assert torch.allclose(model(inputs, PRESENT, mask), model.head(fused), atol=1e-5)
    # opening the gates must change the output, otherwise the check above proves nothing
    with torch.no_grad():
        model.attn_gate.fill_(0.5)
    assert not torch.allclose(model(inputs, PRESENT, mask), model.base_logits(inputs, PRESENT, mask))


def test_masked_attention_is_multihead_attention_with_zero_rows_for_no_valid_key():
    """Same parameters (names, count, initial values per seed) and outputs as
    nn.MultiheadAttention with a key padding mask; a row with no valid key gets exactly zero, and
    non-finite values behind the mask change nothing."""
    torch.manual_seed(0)
    reference = torch.nn.MultiheadAttention(16, 4, batch_first=True)
    torch.manual_seed(0)
    attention = MaskedAttention(16, 4)
    assert reference.state_dict().keys() == attention.state_dict().keys()
    assert all(torch.equal(v, attention.state_dict()[k]) for k, v in reference.state_dict().items())
    query, keys = torch.randn(3, 5, 16), torch.randn(3, 7, 16)  # (B, T_q, H), (B, T_k, H)
    valid = torch.ones(3, 7, dtype=torch.bool)
    valid[1, -3:] = False
    valid[2] = False  # no valid key
    out = attention(query, keys, valid)  # (3, 5, 16)
    expected, _ = reference(query[:2], keys[:2], keys[:2], key_padding_mask=~valid[:2])
    assert torch.allclose(out[:2], expected, atol=1e-6)
    assert torch.equal(out[2], torch.zeros(5, 16))
    hidden_inf = torch.where(valid.unsqueeze(-1), keys, torch.full_like(keys, float("inf")))
    assert torch.equal(attention(query, hidden_inf, valid), out)
    unmasked, _ = reference(query, keys, keys)
    assert torch.allclose(attention(query, keys), unmasked, atol=1e-6)


def test_self_attention_layer_is_a_pre_norm_transformer_encoder_layer():
    torch.manual_seed(0)
    reference = torch.nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=True)
    torch.manual_seed(0)
    layer = SelfAttentionLayer(16, 4, 32, 0.0)
    assert reference.state_dict().keys() == layer.state_dict().keys()
    assert all(torch.equal(v, layer.state_dict()[k]) for k, v in reference.state_dict().items())
    x = torch.randn(3, 6, 16)  # (B, T, H)
    valid = torch.ones(3, 6, dtype=torch.bool)
    valid[0, -2:] = False
    expected = reference(x, src_key_padding_mask=~valid)
    assert torch.allclose(layer(x, valid)[valid], expected[valid], atol=1e-5)
    assert torch.allclose(layer(x), reference(x), atol=1e-5)


def test_additive_attention_weights_over_present_only():
    model = AdditiveAttention(DIMS, C).eval()
    z = model.embed(pooled_inputs(), PRESENT)
    w = model.attention_weights(z, PRESENT)
    assert torch.allclose(w.sum(dim=1), torch.ones(B))
    assert torch.all(w[~PRESENT] == 0)


# ---------------------------------------------------------------- CentralNet

def test_network_merge_heads_classify_each_tower_on_rows_where_it_is_present():
    model = NetworkMerge(DIMS, C, aux_weight=0.25).eval()
    inputs = pooled_inputs()
    logits, aux = model.forward_with_aux(inputs, PRESENT)
    assert torch.equal(logits, model(inputs, PRESENT))
    assert len(aux) == len(DIMS)
    for i, (m, entry) in enumerate(zip(sorted(DIMS), aux)):
        assert torch.equal(entry.rows, PRESENT[:, i]) and entry.weight == 0.25
        # the head sees only its own tower: recompute the tower by hand
        state = inputs[m]
        for layer in model.towers[m]:
            state = torch.nn.functional.gelu(layer(state))  # (B, H)
        expected = model.tower_heads[m](state)  # (B, C)
        assert torch.allclose(entry.logits[entry.rows], expected[entry.rows], atol=1e-6)


def test_network_merge_heads_are_trained_by_the_aux_losses_only():
    model = NetworkMerge(DIMS, C).train()
    model(pooled_inputs(), PRESENT).sum().backward()
    assert all(p.grad is None for p in model.tower_heads.parameters())
    _, aux = model.forward_with_aux(pooled_inputs(), PRESENT)
    sum(entry.weight * entry.logits[entry.rows].sum() for entry in aux).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.tower_heads.parameters())
    assert NetworkMerge.search_space["aux_weight"].default == 0.5


# ---------------------------------------------------------------- literature fusions

@pytest.mark.parametrize("dims,embed", [(DIMS, 4), ({"audio": 6, "image": 7}, 6)])
def test_tfn_fused_width_is_product_of_augmented_widths(dims, embed):
    model = TensorFusion(dims, C, embed=embed)
    expected = math.prod(model.embed_dims[m] + 1 for m in sorted(dims))
    assert expected == (embed + 1) ** len(dims)
    assert model.fused_width == expected
    present = PRESENT[:, : len(dims)] | ~PRESENT[:, : len(dims)].any(dim=1, keepdim=True)
    fused = model.fuse(pooled_inputs(dims), present)
    assert fused.shape == (B, expected)
    assert model.head[0].in_features == expected


def test_tfn_absent_modality_is_identity_of_outer_product():
    model = TensorFusion(DIMS, C, embed=3)
    inputs = pooled_inputs()
    fused = model.fuse(inputs, PRESENT).view(B, 4, 4, 4)
    row = 4  # audio + image present, text absent
    assert PRESENT[row].tolist() == [True, True, False]
    za = model.embedders["audio"](inputs["audio"][row])
    zi = model.embedders["image"](inputs["image"][row])
    za, zi = torch.cat([za, za.new_ones(1)]), torch.cat([zi, zi.new_ones(1)])
    assert torch.allclose(fused[row, :, :, -1], torch.outer(za, zi))
    assert torch.all(fused[row, :, :, :-1] == 0)


def test_lmf_matches_its_defining_formula():
    torch.manual_seed(0)
    model = LowRankFusion(DIMS, C, embed=2, rank=3, hidden=5)
    zs = [torch.cat([torch.randn(B, 2), torch.ones(B, 1)], dim=-1) for _ in DIMS]  # [z_m; 1], (B, 3)
    weight = model.full_weight()  # (3, 3, 3, O)
    assert weight.shape == (3, 3, 3, 5)
    outer = torch.einsum("bi,bj,bk->bijk", *zs)  # (B, 3, 3, 3)
    expected = torch.einsum("ijko,bijk->bo", weight, outer) + model.bias
    assert torch.allclose(model.fuse_augmented(zs), expected, atol=1e-5)


def test_lmf_full_rank_represents_any_weight_tensor():
    # Two modalities with [z; 1] of width 3: every (3, 3) slice of W has rank <= 3, so rank-3
    # factors (per output, from an SVD) reproduce an arbitrary W exactly.
    torch.manual_seed(1)
    dims = {"audio": 4, "image": 5}
    model = LowRankFusion(dims, C, embed=2, rank=3, hidden=2)
    target = torch.randn(3, 3, 2)  # (d_a + 1, d_i + 1, O)
    u, s, vh = torch.linalg.svd(target.permute(2, 0, 1))  # per output o: W_o = U diag(S) V^T
    with torch.no_grad():
        model.factors["audio"].copy_((u * s.unsqueeze(1)).permute(2, 1, 0))  # (r, d_a + 1, O)
        model.factors["image"].copy_(vh.permute(1, 2, 0))  # (r, d_i + 1, O)
        model.rank_weights.fill_(1.0)
    assert torch.allclose(model.full_weight(), target, atol=1e-5)
    zs = [torch.cat([torch.randn(B, 2), torch.ones(B, 1)], dim=-1) for _ in dims]
    expected = torch.einsum("ijo,bi,bj->bo", target, *zs) + model.bias
    assert torch.allclose(model.fuse_augmented(zs), expected, atol=1e-5)


def test_gmu_gates_sum_to_one_over_present():
    model = GatedMultimodalUnit(DIMS, C)
    gates = model.gate_weights(pooled_inputs(), PRESENT)  # (B, M, H)
    assert torch.allclose(gates.sum(dim=1), torch.ones(B, gates.shape[-1]), atol=1e-6)
    assert torch.all(gates[~PRESENT] == 0)


def test_film_with_only_one_modality_is_unmodulated():
    model = FiLMFusion(DIMS, C).eval()
    inputs = pooled_inputs()
    single = PRESENT.sum(dim=1) == 1
    out = model(inputs, PRESENT)
    for row in torch.nonzero(single).flatten().tolist():
        m = sorted(DIMS)[int(PRESENT[row].float().argmax())]
        expected = model.head(torch.relu(model.bases[m](inputs[m][row : row + 1])))
        assert torch.allclose(out[row : row + 1], expected, atol=1e-6)
    # with conditioners present the base features are modulated, so the output differs
    m = sorted(DIMS)[0]
    plain = model.head(torch.relu(model.bases[m](inputs[m][:1])))
    assert not torch.allclose(out[:1], plain)


def test_hybrid_branch_weights_sum_to_one():
    model = HybridFusion(DIMS, C)
    w = model.branch_weights(PRESENT)  # (B, 1 + M)
    assert torch.allclose(w.sum(dim=1), torch.ones(B))
    assert torch.all(w[:, 1:][~PRESENT] == 0) and torch.all(w[:, 0] > 0)


# ---------------------------------------------------------------- unimodal

@pytest.mark.parametrize("modality", [None, "text"])
def test_unimodal_ignores_other_modalities(modality):
    kwargs = {} if modality is None else {"modality": modality}
    model = Unimodal(DIMS, C, **kwargs).eval()
    chosen = modality or sorted(DIMS)[0]
    assert model.modality == chosen
    idx = sorted(DIMS).index(chosen)
    inputs = pooled_inputs()
    out = model(inputs, PRESENT)
    others = {m: (x + 100 * torch.randn_like(x) if m != chosen else x) for m, x in inputs.items()}
    assert torch.equal(model(others, PRESENT), out)
    changed = {m: (x + torch.randn_like(x) if m == chosen else x) for m, x in inputs.items()}
    here = PRESENT[:, idx]
    assert not torch.allclose(model(changed, PRESENT)[here], out[here])
    # where the chosen modality is absent: the same constant logits in every such row
    with torch.no_grad():
        model.prior.copy_(torch.arange(C, dtype=torch.float32))
    out = model(inputs, PRESENT)
    assert torch.equal(out[~here], torch.arange(C, dtype=torch.float32).expand(int((~here).sum()), C))


def test_unimodal_rejects_unknown_modality():
    with pytest.raises(ValueError, match="depth"):
        Unimodal(DIMS, C, modality="depth")


# ---------------------------------------------------------------- every strategy

@pytest.mark.parametrize("name", discover().names())
def test_infinite_absent_values_give_finite_outputs_and_gradients(name):
    """Stronger than the contract's perturbation: absent modalities filled with +inf."""
    cls = discover().get(name)
    limit = cls.max_modalities or 3
    dims = dict(sorted(DIMS.items())[: max(cls.min_modalities, min(limit, 3))])
    present = PRESENT[:, : len(dims)] | ~PRESENT[:, : len(dims)].any(dim=1, keepdim=True)
    if cls.consumes_tokens:
        inputs, mask = token_inputs(dims)
    else:
        inputs, mask = pooled_inputs(dims), None
    for i, m in enumerate(sorted(dims)):
        shape = (-1,) + (1,) * (inputs[m].dim() - 1)
        inputs[m] = torch.where((~present[:, i]).view(shape), torch.full_like(inputs[m], float("inf")), inputs[m])
    torch.manual_seed(0)
    model = cls(dims, C, **defaults(cls.search_space)).train()
    out, aux = model.forward_with_aux(inputs, present, mask)
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(entry.logits[entry.rows]).all() for entry in aux)
    loss = out.logsumexp(dim=1).sum() + sum(entry.weight * entry.logits[entry.rows].logsumexp(dim=1).sum() for entry in aux)
    loss.backward()
    bad = [n for n, p in model.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
    assert not bad, f"non-finite gradients: {bad}"
