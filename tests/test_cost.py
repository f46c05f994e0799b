"""The tensor-accounting memory figure: checked by hand on a one-layer model, and sane for
every registered strategy."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark.train.cost import training_step_tensor_mb
from benchmark.features.tensors import SplitTensors
from strategies import discover
from strategies.search_space import defaults

ROWS, CLASSES = 40, 3
DIMS = {"image": 6, "text": 10}
TOKENS = 4


def _split() -> SplitTensors:
    g = torch.Generator().manual_seed(0)
    return SplitTensors(
        pooled={m: torch.randn(ROWS, d, generator=g) for m, d in DIMS.items()},
        tokens={m: torch.randn(ROWS, TOKENS, d, generator=g) for m, d in DIMS.items()},
        token_mask={m: torch.ones(ROWS, TOKENS, dtype=torch.bool) for m in DIMS},
        labels=torch.arange(ROWS) % CLASSES)


class OneLinear(nn.Module):
    consumes_tokens = False

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(sum(DIMS.values()), CLASSES)

    def forward(self, inputs, present, token_mask=None):
        return self.head(torch.cat([inputs[m] for m in sorted(inputs)], dim=-1))


def test_one_linear_layer_by_hand():
    # weights 16x3 + 3 float32, counted 4x (weights, gradients, two AdamW moments);
    # autograd saves only the layer's input: batch 32 x 16 float32. A frozen layer counts 1x.
    model = OneLinear()
    figures = training_step_tensor_mb(model, _split(), sorted(DIMS), batch_size=32)
    assert figures["activation_mb"] * 2**20 == 32 * 16 * 4
    assert figures["train_step_tensor_mb"] * 2**20 == 4 * (16 * 3 + 3) * 4 + 32 * 16 * 4
    model.head.bias.requires_grad_(False)
    figures = training_step_tensor_mb(model, _split(), sorted(DIMS), batch_size=32)
    assert figures["train_step_tensor_mb"] * 2**20 == 4 * (16 * 3) * 4 + 3 * 4 + 32 * 16 * 4
    assert model.training  # left as it was


@pytest.mark.parametrize("name", discover().names())
def test_every_strategy_has_a_tensor_memory_figure(name):
    cls = discover().get(name)
    if cls.min_modalities > len(DIMS):
        pytest.skip(f"{name} needs {cls.min_modalities} modalities")
    dims = dict(sorted(DIMS.items())[: (cls.max_modalities or len(DIMS))])
    torch.manual_seed(0)
    model = cls(dims, CLASSES, **defaults(cls.search_space)).eval()
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    small = training_step_tensor_mb(model, _split(), sorted(dims), batch_size=8)
    large = training_step_tensor_mb(model, _split(), sorted(dims), batch_size=32)
    assert small["activation_mb"] > 0 and not model.training
    assert small["train_step_tensor_mb"] * 2**20 >= weights + small["activation_mb"] * 2**20
    assert large["activation_mb"] > small["activation_mb"]  # activations grow with the batch
