"""Evaluation runs every test condition (full input, each modality subset, each missing rate,
each per-modality curve) in one batched pass over the rows; it must give what scoring each
condition on its own gives, in every metric and condition."""

from __future__ import annotations

import pytest
import torch

from benchmark.train.batching import random_presence, subset_presence
from benchmark.train.evaluation import MISSING_RATES, References, evaluate, logits_under, scored_rows, subsets
from benchmark.train.model import build_model
from benchmark.train.modality_curves import modality_missing_masks
from benchmark.train.tasks import Task
from tests.test_stacked_training import _deterministic_hparams, _features


def _one_by_one(model, split, modalities, mask):
    """The outputs of one condition, scored on its own (a pass over the rows for this mask alone)."""
    return logits_under(model, split, modalities, [mask])[0]


@pytest.mark.parametrize("strategy", ["concat", "cross_attention"])
def test_batched_evaluation_equals_each_condition_scored_alone(strategy):
    features = _features()
    split, modalities = features.splits["test"], features.modalities
    task = Task.of(features)
    model = build_model(strategy, features, _deterministic_hparams(strategy), seed=3)
    references = References.of(features.splits["train"].labels, split.labels, features.num_classes, task)
    result = evaluate(model, split, modalities, references, seed=11)
    n, labels = len(split), split.labels

    assert result.scores == task.scores(_one_by_one(model, split, modalities,
                                                    subset_presence(n, modalities, tuple(modalities), "cpu")), labels)
    for subset in subsets(modalities):
        mask = subset_presence(n, modalities, subset, "cpu")
        scored = scored_rows(mask, split.available)
        alone = _one_by_one(model, split, modalities, mask)[scored]
        assert result.subset_scores["+".join(subset)] == task.scores(alone, labels[scored]), subset
    generator = torch.Generator().manual_seed(11)
    for rate in MISSING_RATES:
        mask = random_presence(n, len(modalities), rate, generator, "cpu", split.available)
        assert result.missing_scores[rate] == task.scores(_one_by_one(model, split, modalities, mask), labels), rate
    curves = modality_missing_masks(n, modalities, MISSING_RATES, split.available, 11)
    assert set(result.modality_missing_scores) == set(modalities)
    for modality, by_rate in curves.items():
        for rate, mask in by_rate.items():
            alone = result.scores if mask is None else task.scores(_one_by_one(model, split, modalities, mask), labels)
            assert result.modality_missing_scores[modality][rate] == alone, (modality, rate)


@pytest.mark.parametrize("strategy", ["concat", "cross_attention"])
def test_batched_outputs_match_one_condition_at_a_time(strategy):
    features = _features()
    split, modalities = features.splits["test"], features.modalities
    model = build_model(strategy, features, _deterministic_hparams(strategy), seed=5)
    generator = torch.Generator().manual_seed(0)
    masks = [random_presence(len(split), len(modalities), 0.5, generator) for _ in range(7)]
    together = logits_under(model, split, modalities, masks)
    for mask, batched in zip(masks, together):
        torch.testing.assert_close(batched, _one_by_one(model, split, modalities, mask), rtol=1e-5, atol=1e-6)
