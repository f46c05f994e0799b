"""The zero-shot CLIP baseline of a cell's test split: no training, each row is predicted as the
class whose prompt ("a photo of a {name}") is most cosine-similar to the row's CLIP image
embedding (benchmark/features/class_prompts.py; hf-clip or open_clip), scored in every metric of the task. A reference like
the majority class: it chooses nothing and is never ranked."""

from __future__ import annotations

import torch

from benchmark.features.tensors import FeatureSet, SplitTensors
from benchmark.train.tasks import Task


def zero_shot_outputs(features: FeatureSet, test: SplitTensors, train: SplitTensors) -> torch.Tensor | None:
    """Cosine similarities (N, C) of each test image with each class prompt; None without a
    zero-shot classifier. A row whose image is absent in the data gets the training split's
    majority class (a one-hot row): zero-shot CLIP has nothing to look at there."""
    shot = features.zero_shot
    if shot is None or features.task != "multiclass":
        return None
    column = features.modalities.index(shot.modality)
    images = test.pooled[shot.modality].float()  # (N, P)
    prompts = shot.prompts.to(images.device)  # (C, P)
    similarity = torch.nn.functional.normalize(images, dim=-1) @ torch.nn.functional.normalize(prompts, dim=-1).T  # (N, C)
    absent = ~test.available[:, column].to(images.device)  # (N,)
    if bool(absent.any()):
        majority = int(torch.bincount(train.labels.cpu(), minlength=features.num_classes).argmax())
        fallback = torch.full_like(similarity, -1.0)  # (N, C)
        fallback[:, majority] = 1.0
        similarity = torch.where(absent.unsqueeze(1), fallback, similarity)  # (N, C)
    return similarity


def zero_shot_scores(features: FeatureSet, splits: dict[str, SplitTensors], task: Task) -> dict[str, float]:
    """metric -> the zero-shot baseline's score on ``splits["test"]`` (empty without one)."""
    outputs = zero_shot_outputs(features, splits["test"], splits["train"])
    if outputs is None:
        return {}
    return task.scores(outputs, splits["test"].labels.to(outputs.device))
