"""The training protocol: early stopping restores the best epoch, the cap is reported as not
converged, warm-up and plateau decay of the learning rate, auxiliary losses, collapse detection
against the majority-class predictor, the robustness score above that baseline, tuning seeds."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from benchmark.features.tensors import FeatureSet, SplitTensors
from benchmark.vocabulary import STOP_CAP, STOP_PLATEAU
from benchmark.train import loop as loop_module
from benchmark.train.evaluation import References, evaluate, robustness_score
from benchmark.train.loop import TrainConfig, train, training_loss
from benchmark.train.model import build_model
from benchmark.train.seeds import TUNING_SEED_BASE, tuning_seed
from benchmark.train.tasks import MULTICLASS


def _features(n: int = 96, classes: int = 3, seed: int = 0) -> FeatureSet:
    generator = torch.Generator().manual_seed(seed)

    def split(rows):
        labels = torch.randint(classes, (rows,), generator=generator)
        a = nn.functional.one_hot(labels, classes).float() + 0.3 * torch.randn(rows, classes, generator=generator)
        b = torch.randn(rows, 4, generator=generator)
        return SplitTensors(pooled={"a": a, "b": b}, tokens={"a": a.unsqueeze(1), "b": b.unsqueeze(1)},
                            token_mask={"a": torch.ones(rows, 1, dtype=torch.bool),
                                        "b": torch.ones(rows, 1, dtype=torch.bool)}, labels=labels)

    return FeatureSet("toy", ["a", "b"], [str(c) for c in range(classes)],
                      {"train": split(n), "validation": split(n // 2), "test": split(n // 2)})


def _scripted_validation(monkeypatch, scores: list[float], losses: list[float] | None = None) -> None:
    """The real loop, with the validation score (and loss) of epoch k replaced by scores[k] (losses[k])."""
    sequence = iter(zip(scores, losses or [1.0] * len(scores)))
    monkeypatch.setattr(loop_module, "validation_scores", lambda *args, **kwargs: next(sequence))


def test_early_stopping_restores_the_best_epoch(monkeypatch):
    features = _features()
    model = build_model("concat", features, {}, seed=0)
    _scripted_validation(monkeypatch, [0.5, 0.7, 0.9, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    snapshots = {}

    def remember(epoch, score):
        snapshots[epoch + 1] = {k: v.clone() for k, v in model.state_dict().items()}

    config = TrainConfig(epochs=20, batch_size=16, patience=3, modality_dropout=0.0, min_epochs=1)
    stats = train(model, features.splits["train"], features.modalities, config,
                  val_split=features.splits["validation"], on_epoch=remember)
    assert (stats.best_epoch, stats.epochs_run, stats.stop_reason) == (3, 6, STOP_PLATEAU)
    assert stats.best_score == 0.9 and stats.converged
    final = model.state_dict()
    assert all(torch.equal(final[k], snapshots[3][k]) for k in final)  # the best epoch's weights
    assert not all(torch.equal(final[k], snapshots[6][k]) for k in final)  # not the last epoch's
    assert stats.val_score == [0.5, 0.7, 0.9, 0.6, 0.5, 0.4] and len(stats.train_loss) == 6 == len(stats.lr)


def test_ties_on_the_score_are_broken_by_the_validation_loss(monkeypatch):
    features = _features()
    model = build_model("concat", features, {}, seed=0)
    _scripted_validation(monkeypatch, [0.5, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8], [2.0, 1.0, 0.9, 0.95, 0.95, 0.95, 0.95])
    stats = train(model, features.splits["train"], features.modalities, TrainConfig(epochs=10, patience=3, min_epochs=1),
                  val_split=features.splits["validation"])
    assert (stats.best_epoch, stats.best_loss, stats.epochs_run) == (3, 0.9, 6)


def test_no_plateau_before_min_epochs(monkeypatch):
    features = _features()
    model = build_model("concat", features, {}, seed=0)
    _scripted_validation(monkeypatch, [0.5] + [0.4] * 11)
    stats = train(model, features.splits["train"], features.modalities,
                  TrainConfig(epochs=12, patience=2, lr_patience=1, min_epochs=8), val_split=features.splits["validation"])
    assert (stats.best_epoch, stats.epochs_run, stats.stop_reason) == (1, 8, STOP_PLATEAU)
    assert stats.lr[:7] == pytest.approx([1e-3] * 7) and stats.lr[7] == pytest.approx(5e-4)  # no decay before epoch 8


def test_stopping_at_the_cap_while_improving_is_not_converged(monkeypatch):
    features = _features()
    model = build_model("concat", features, {}, seed=0)
    _scripted_validation(monkeypatch, [0.1 * k for k in range(1, 6)])
    stats = train(model, features.splits["train"], features.modalities, TrainConfig(epochs=5, patience=3),
                  val_split=features.splits["validation"])
    assert (stats.epochs_run, stats.best_epoch, stats.stop_reason) == (5, 5, STOP_CAP)
    assert not stats.converged


def test_learning_rate_warms_up_then_halves_on_a_plateau(monkeypatch):
    features = _features()
    model = build_model("concat", features, {}, seed=0)
    _scripted_validation(monkeypatch, [0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6])
    rates = []
    original = torch.optim.AdamW.step

    def spy(self, *args, **kwargs):
        rates.append(self.param_groups[0]["lr"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", spy)
    config = TrainConfig(epochs=7, batch_size=32, lr=1e-2, patience=10, lr_patience=2, min_epochs=1)
    stats = train(model, features.splits["train"], features.modalities, config, val_split=features.splits["validation"])
    steps = 3  # 96 rows / 32
    assert rates[0] == pytest.approx(1e-3)  # warm-up starts at a tenth of the rate
    assert rates[:steps] == sorted(rates[:steps]) and rates[steps] == pytest.approx(1e-2)
    # epochs 3 and 4 do not improve on epoch 2: the rate is halved after epoch 4, again after epoch 6
    assert stats.lr == pytest.approx([1e-2, 1e-2, 1e-2, 5e-3, 5e-3, 2.5e-3, 2.5e-3])


def test_gradients_are_clipped(monkeypatch):
    features = _features()
    model = build_model("concat", features, {}, seed=0)
    norms = []
    original = nn.utils.clip_grad_norm_

    def spy(parameters, max_norm, *args, **kwargs):
        parameters = list(parameters)
        total = original(parameters, max_norm, *args, **kwargs)
        norms.append(float(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in parameters]))))
        return total

    monkeypatch.setattr(nn.utils, "clip_grad_norm_", spy)
    train(model, features.splits["train"], features.modalities, TrainConfig(epochs=1, lr=10.0, clip_norm=0.05))
    assert norms and max(norms) <= 0.05 + 1e-6


def test_auxiliary_losses_are_added_over_their_rows():
    features = _features()
    model = build_model("network_merge", features, {"aux_weight": 0.5}, seed=0).eval()  # no dropout noise
    data = features.splits["train"]
    inputs = {m: data.pooled[m][:16] for m in features.modalities}
    present = torch.tensor([[True, True], [True, False], [False, True], [True, True]] * 4)
    labels = data.labels[:16]
    logits, auxiliary = model.forward_with_aux(inputs, present)
    assert len(auxiliary) == 2
    expected = nn.functional.cross_entropy(logits, labels) + sum(
        a.weight * nn.functional.cross_entropy(a.logits[a.rows], labels[a.rows]) for a in auxiliary)
    assert training_loss(model, inputs, present, None, labels).item() == pytest.approx(expected.item())
    assert training_loss(model, inputs, present, None, labels).item() > nn.functional.cross_entropy(
        logits, labels).item()


class _Constant(nn.Module):
    """Always answers ``label``."""

    consumes_tokens = False

    def __init__(self, label: int, classes: int) -> None:
        super().__init__()
        self.label, self.classes = label, classes

    def forward(self, inputs, present, token_mask=None):
        rows = next(iter(inputs.values())).shape[0]
        return nn.functional.one_hot(torch.full((rows,), self.label), self.classes).float()  # (B, C)


class _Oracle(nn.Module):
    """Reads the label off modality "a" (one-hot plus noise), whatever is missing."""

    consumes_tokens = False

    def forward(self, inputs, present, token_mask=None):
        return inputs["a"]  # (B, C)


def test_a_constant_predictor_is_collapsed_and_has_no_robustness_score():
    features = _features()
    train_split, test = features.splits["train"], features.splits["test"]
    references = References.of(train_split.labels, test.labels, 3)
    constant = evaluate(_Constant(references.majority_class, 3), test, features.modalities, references)
    assert constant.collapsed and constant.largest_class_share == 1.0
    assert constant.accuracy == pytest.approx(references.majority_accuracy)
    assert math.isnan(constant.robustness)
    oracle = evaluate(_Oracle(), test, features.modalities, references)
    assert not oracle.collapsed and oracle.accuracy > 0.9
    assert oracle.robustness == pytest.approx(1.0)  # the oracle ignores presence: no loss at any rate
    assert references.chance_accuracy == pytest.approx(1 / 3)


def test_macro_f1_no_better_than_the_majority_is_collapsed_even_with_several_classes_predicted():
    labels = torch.tensor([0] * 6 + [1] * 2 + [2] * 2)
    references = References.of(labels, labels, 3)
    wrong_spread = torch.tensor([1, 2, 1, 2, 1, 2, 0, 0, 0, 0])  # three classes, mostly wrong

    def collapsed(pred):  # the rule evaluate() applies (Task.collapsed), on logits that predict `pred`
        logits = nn.functional.one_hot(pred, 3).float()  # (N, 3)
        return MULTICLASS.collapsed(logits, labels, MULTICLASS.scores(logits, labels), references.all_scores())

    assert collapsed(wrong_spread)
    assert not collapsed(labels)


def test_robustness_score_is_relative_to_the_majority_baseline():
    rates = [round(0.1 * i, 1) for i in range(10)]
    assert robustness_score({r: 1.0 for r in rates}, 0.5) == pytest.approx(1.0)
    assert math.isnan(robustness_score({r: 0.5 for r in rates}, 0.5))  # a constant predictor: undefined
    assert robustness_score({r: 0.9 - (0.4 if r > 0 else 0.0) for r in rates}, 0.5) == pytest.approx(
        0.5 * 0.1 / 0.9, abs=1e-9)  # falls to the majority baseline right after r = 0


def test_robustness_is_undefined_for_a_lead_too_small_to_measure():
    rates = [round(0.1 * i, 1) for i in range(10)]
    # a 0.001 lead over the majority would turn these accuracies into scores in the tens
    assert math.isnan(robustness_score({r: 0.554 if r == 0 else 0.57 for r in rates}, 0.553))
    assert robustness_score({r: 0.565 for r in rates}, 0.553) == pytest.approx(1.0)  # a 0.012 lead counts


def test_robustness_is_measured_in_the_ranking_metric():
    features = _features()
    train_split, test = features.splits["train"], features.splits["test"]
    references = References.of(train_split.labels, test.labels, 3)
    result = evaluate(_Oracle(), test, features.modalities, references, metric="macro_f1")
    assert set(result.missing_curve_macro_f1) == set(result.missing_curve)
    assert result.robustness == pytest.approx(robustness_score(result.missing_curve_macro_f1,
                                                                references.majority_macro_f1))


def test_tuning_seeds_are_never_evaluation_seeds(tmp_path):
    from benchmark.cli import main
    from benchmark.run.config import ProfileError, load_profile

    assert tuning_seed(0) == TUNING_SEED_BASE and tuning_seed(9) == TUNING_SEED_BASE + 9
    profile = tmp_path / "clash.yaml"
    profile.write_text(f"datasets: [emoji]\nseeds: [0, {TUNING_SEED_BASE}]\n")
    with pytest.raises(ProfileError, match="seeds"):
        load_profile(str(profile))
    with pytest.raises(SystemExit) as refused:  # a flag error: argparse exits 2 before any work
        main(["bench", "--profile", "smoke", "--seeds", str(TUNING_SEED_BASE + 3), "--dry-run"])
    assert refused.value.code == 2
