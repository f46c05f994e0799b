"""One contract test, parametrised over every registered strategy (built-in and plugin)."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from strategies import discover
from strategies.base import AuxiliaryLogits
from strategies.search_space import defaults

REGISTRY = discover()
MODALITY_DIMS = {"audio": 12, "image": 20, "text": 16}  # three modalities, deliberately not sorted by dim
TOKENS = {"audio": 3, "image": 4, "text": 5}
BATCH, CLASSES = 6, 5


def make_batch(strategy_cls, dims, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs, token_mask = {}, {}
    for m, d in dims.items():
        if strategy_cls.consumes_tokens:
            inputs[m] = torch.randn(BATCH, TOKENS[m], d, generator=g)
            mask = torch.ones(BATCH, TOKENS[m], dtype=torch.bool)
            mask[::2, -1] = False  # ragged lengths: every other row has one padding token
            token_mask[m] = mask
        else:
            inputs[m] = torch.randn(BATCH, d, generator=g)
    names = sorted(dims)
    present = torch.ones(BATCH, len(names), dtype=torch.bool)
    for row in range(BATCH):  # a mix of rows with all and with some modalities missing
        if row % 3 == 1:
            present[row, row % len(names)] = False
        if row % 3 == 2 and len(names) > 1:
            present[row, :] = False
            present[row, row % len(names)] = True
    return inputs, present, (token_mask or None)


def dims_for(strategy_cls):
    limit = strategy_cls.max_modalities or len(MODALITY_DIMS)
    count = max(strategy_cls.min_modalities, min(limit, len(MODALITY_DIMS)))
    return dict(sorted(MODALITY_DIMS.items())[:count])


def build(name):
    cls = REGISTRY.get(name)
    dims = dims_for(cls)
    torch.manual_seed(0)
    return cls(dims, CLASSES, **defaults(cls.search_space)), cls, dims


@pytest.fixture(params=REGISTRY.names())
def strategy_name(request):
    return request.param


def test_metadata(strategy_name):
    cls = REGISTRY.get(strategy_name)
    assert cls.family and cls.description and cls.paper
    assert cls.__doc__ and len(cls.__doc__.strip()) > 20, "docstring must cite the source paper"
    assert isinstance(cls.search_space, dict) and cls.search_space


def test_logits_shape_and_finite(strategy_name):
    model, cls, dims = build(strategy_name)
    model.eval()
    inputs, present, token_mask = make_batch(cls, dims)
    logits = model(inputs, present, token_mask)
    assert logits.shape == (BATCH, CLASSES)
    assert torch.isfinite(logits).all()


def training_loss(model, inputs, present, token_mask, targets):
    """The loss the one training loop computes: the logits' cross-entropy plus every auxiliary
    classifier's weighted cross-entropy over the rows it counts (skipped when none)."""
    logits, aux = model.forward_with_aux(inputs, present, token_mask)
    loss = torch.nn.functional.cross_entropy(logits, targets)
    for entry in aux:
        if entry.rows.any():
            loss = loss + entry.weight * torch.nn.functional.cross_entropy(entry.logits[entry.rows], targets[entry.rows])
    return loss


def test_every_parameter_gets_a_gradient(strategy_name):
    model, cls, dims = build(strategy_name)
    model.train()
    inputs, present, token_mask = make_batch(cls, dims)
    loss = training_loss(model, inputs, present, token_mask, torch.arange(BATCH) % CLASSES)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_absent_modality_values_do_not_change_output(strategy_name):
    model, cls, dims = build(strategy_name)
    model.eval()
    inputs, present, token_mask = make_batch(cls, dims)
    before = model(inputs, present, token_mask)
    after = model(perturb_absent(inputs, present, dims), present, token_mask)
    assert torch.allclose(before, after, atol=1e-5), (before - after).abs().max()


def perturb_absent(inputs, present, dims):
    """The inputs with large noise added to every absent modality's values."""
    perturbed = {}
    for i, m in enumerate(sorted(dims)):
        absent = ~present[:, i]
        shape = (-1,) + (1,) * (inputs[m].dim() - 1)
        noise = torch.randn_like(inputs[m]) * 100.0
        perturbed[m] = torch.where(absent.view(shape), inputs[m] + noise, inputs[m])
    return perturbed


def test_forward_with_aux_returns_forward_logits_and_well_formed_aux(strategy_name):
    model, cls, dims = build(strategy_name)
    model.eval()
    inputs, present, token_mask = make_batch(cls, dims)
    logits, aux = model.forward_with_aux(inputs, present, token_mask)
    assert torch.equal(logits, model(inputs, present, token_mask))
    assert isinstance(aux, list)
    for entry in aux:
        assert isinstance(entry, AuxiliaryLogits)
        assert entry.logits.shape == (BATCH, CLASSES) and torch.isfinite(entry.logits).all()
        assert entry.rows.dtype == torch.bool and entry.rows.shape == (BATCH,)
        assert isinstance(entry.weight, (int, float)) and math.isfinite(entry.weight) and entry.weight >= 0


def test_absent_modality_values_do_not_change_aux_losses(strategy_name):
    """The rows an auxiliary loss counts must not see the values of absent modalities either."""
    model, cls, dims = build(strategy_name)
    model.eval()
    inputs, present, token_mask = make_batch(cls, dims)
    _, before = model.forward_with_aux(inputs, present, token_mask)
    _, after = model.forward_with_aux(perturb_absent(inputs, present, dims), present, token_mask)
    assert len(before) == len(after)
    for b, a in zip(before, after):
        assert torch.equal(b.rows, a.rows)
        assert torch.allclose(b.logits[b.rows], a.logits[a.rows], atol=1e-5), (b.logits - a.logits)[b.rows].abs().max()


def test_present_modality_values_do_change_output(strategy_name):
    """Guard against a strategy that ignores its inputs (which would pass the test above)."""
    model, cls, dims = build(strategy_name)
    model.eval()
    inputs, present, token_mask = make_batch(cls, dims)
    before = model(inputs, present, token_mask)
    changed = {m: x + torch.randn_like(x) for m, x in inputs.items()}
    assert not torch.allclose(before, model(changed, present, token_mask))


def test_two_modalities_supported(strategy_name):
    cls = REGISTRY.get(strategy_name)
    if cls.min_modalities > 2:
        pytest.skip(f"{strategy_name} declares min_modalities={cls.min_modalities}")
    dims = dict(sorted(MODALITY_DIMS.items())[:2])
    model = cls(dims, CLASSES, **defaults(cls.search_space)).eval()
    inputs, present, token_mask = make_batch(cls, dims)
    assert model(inputs, present, token_mask).shape == (BATCH, CLASSES)


# Strategies that cannot run under torch.func.vmap without a change of behaviour: name -> reason.
VMAP_INCOMPATIBLE: dict[str, str] = {}


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.xfail(reason=VMAP_INCOMPATIBLE[n], strict=True)) if n in VMAP_INCOMPATIBLE
     else n for n in REGISTRY.names()],
)
def test_vmap_over_stacked_seeds_matches_each_model(name):
    """Several seeds of one model trained at once: parameters stacked with
    torch.func.stack_module_state, forward through torch.func.vmap(functional_call) with
    randomness="different". Needs forwards without data-dependent Python control flow
    (no ``if tensor.any()``, ``.item()`` or boolean-mask indexing). With dropout 0 (or in eval
    mode when there is no dropout to set) each slice must equal that model run alone."""
    cls = REGISTRY.get(name)
    dims = dims_for(cls)
    hparams = defaults(cls.search_space)
    has_dropout = "dropout" in cls.search_space
    if has_dropout:
        hparams["dropout"] = 0.0
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(cls(dims, CLASSES, **hparams).train(has_dropout))
    params, buffers = torch.func.stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    inputs, present, token_mask = make_batch(cls, dims)

    def run(p, b, x, pr, tm):
        return torch.func.functional_call(base, (p, b), (x, pr, tm))

    batched = torch.func.vmap(run, in_dims=(0, 0, None, None, None), randomness="different")
    stacked = batched(params, buffers, inputs, present, token_mask)  # (2, B, C)
    assert stacked.shape == (2, BATCH, CLASSES)
    for i, model in enumerate(models):
        alone = model(inputs, present, token_mask)  # (B, C)
        assert torch.allclose(stacked[i], alone, atol=1e-5), (name, i, (stacked[i] - alone).abs().max())
    assert not torch.allclose(stacked[0], stacked[1])  # the seeds really differ
    # With its default (non-zero) dropout in train mode it must run too, each member drawing its own masks.
    if has_dropout:
        torch.manual_seed(2)
        noisy = [cls(dims, CLASSES, **defaults(cls.search_space)).train() for _ in range(2)]
        params, buffers = torch.func.stack_module_state(noisy)
        base = copy.deepcopy(noisy[0]).to("meta")
        assert torch.isfinite(batched(params, buffers, inputs, present, token_mask)).all()


# The task dimension: each task's output width (FeatureSet.output_dim) and its labels.
TASK_WIDTHS = {"multiclass": CLASSES, "binary": 1, "multilabel": 4, "regression": 1}


def _task_targets(task: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    if task == "multiclass":
        return torch.arange(BATCH) % CLASSES  # (B,) int64
    if task == "multilabel":
        return (torch.rand(BATCH, TASK_WIDTHS[task], generator=g) > 0.5).float()  # (B, L)
    if task == "binary":
        return (torch.arange(BATCH) % 2).float()  # (B,)
    return torch.randn(BATCH, generator=g)  # (B,)


@pytest.mark.parametrize("task", sorted(TASK_WIDTHS))
def test_every_task_output_width_and_loss(strategy_name, task):
    """Built with the task's output width, the output has that width, and the task's loss (the
    one the training loop uses, auxiliary heads included) gives finite gradients."""
    from benchmark.train.loop import training_loss as loop_loss
    from benchmark.train.tasks import Task

    cls = REGISTRY.get(strategy_name)
    dims = dims_for(cls)
    torch.manual_seed(0)
    model = cls(dims, TASK_WIDTHS[task], **defaults(cls.search_space))
    model.train()
    inputs, present, token_mask = make_batch(cls, dims)
    logits = model(inputs, present, token_mask)
    assert logits.shape == (BATCH, TASK_WIDTHS[task])
    loss = loop_loss(model, inputs, present, token_mask, _task_targets(task), Task(task))
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# The learned missing-modality embedding (benchmark/train/missing_inputs.py): every strategy can take it.
def build_learned(name):
    from benchmark.train.model import FusionModel

    strategy, cls, dims = build(name)
    return FusionModel(strategy, missing_input="learned"), cls, dims


def absent_somewhere(dims):
    """Presence with every modality absent in some row (and one row with all present)."""
    names = sorted(dims)
    present = torch.ones(BATCH, len(names), dtype=torch.bool)  # (B, M)
    for row in range(1, BATCH):
        present[row, row % len(names)] = False
    return present


def test_learned_missing_input_shape_loss_and_gradients(strategy_name):
    from benchmark.train.loop import training_loss as loop_loss

    model, cls, dims = build_learned(strategy_name)
    model.train()
    inputs, _, token_mask = make_batch(cls, dims)
    present = absent_somewhere(dims)
    logits = model(inputs, present, token_mask)
    assert logits.shape == (BATCH, CLASSES) and torch.isfinite(logits).all()
    loss = loop_loss(model, inputs, present, token_mask, torch.arange(BATCH) % CLASSES)
    assert torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    # the modalities the strategy reads (a unimodal baseline reads one): their vectors learn from absent rows
    used = [model.strategy.modality] if cls.family == "unimodal" else sorted(dims)
    for m in used:
        grad = model.missing.embedding[m].grad
        assert grad is not None and grad.abs().sum() > 0, f"{strategy_name}: no gradient for {m}'s learned vector"


def test_learned_missing_input_ignores_absent_raw_values(strategy_name):
    model, cls, dims = build_learned(strategy_name)
    with torch.no_grad():  # vectors away from their zero start, so that a wrong substitution would show
        for vector in model.missing.embedding.values():
            vector.normal_()
    model.eval()
    inputs, present, token_mask = make_batch(cls, dims)
    before = model(inputs, present, token_mask)
    after = model(perturb_absent(inputs, present, dims), present, token_mask)
    assert torch.allclose(before, after, atol=1e-5), (before - after).abs().max()
    # ... and the learned vectors are what the strategy sees there: changing them changes those rows
    with torch.no_grad():
        for vector in model.missing.embedding.values():
            vector.add_(1.0)
    moved = model(inputs, present, token_mask)
    rows = ~present.all(dim=1)  # (B,) rows with some modality absent
    if cls.family != "unimodal":
        assert not torch.allclose(before[rows], moved[rows])
    assert torch.allclose(before[~rows], moved[~rows], atol=1e-5)  # rows with everything present are untouched


def test_learned_missing_input_vmaps_over_stacked_seeds(strategy_name):
    """The stacked training path (torch.func) runs a learned model: each slice equals the model alone."""
    from benchmark.train.model import FusionModel

    cls = REGISTRY.get(strategy_name)
    dims = dims_for(cls)
    hparams = {**defaults(cls.search_space), **({"dropout": 0.0} if "dropout" in cls.search_space else {})}
    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = FusionModel(cls(dims, CLASSES, **hparams), missing_input="learned").eval()
        with torch.no_grad():
            for vector in model.missing.embedding.values():
                vector.normal_()
        models.append(model)
    params, buffers = torch.func.stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    inputs, present, token_mask = make_batch(cls, dims)

    def run(p, b, x, pr, tm):
        return torch.func.functional_call(base, (p, b), (x, pr, tm))

    stacked = torch.func.vmap(run, in_dims=(0, 0, None, None, None), randomness="different")(
        params, buffers, inputs, present, token_mask)  # (2, B, C)
    for i, model in enumerate(models):
        assert torch.allclose(stacked[i], model(inputs, present, token_mask), atol=1e-5)
