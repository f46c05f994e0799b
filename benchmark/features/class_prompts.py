"""The class-name prompts of the zero-shot CLIP baseline, for any CLIP family (``hf-clip:``,
``open_clip:``): the card's first (sorted) image modality whose encoder is a :class:`ClipTower`
names the model, and the same encoder with ``input: text`` embeds "a photo of a {class name}"
for each class. One code path for every family: the text tower is the encoder the card could
name for a text column, so its pooled output is what the images are compared with. A model adapted
to the card's pairs (option ``adapt``) embeds the prompts with its adapted text tower. Scored by
benchmark/train/zero_shot.py."""

from __future__ import annotations

import torch

from benchmark.data.loading import LoadedDataset
from benchmark.features import cache as feature_cache
from benchmark.features.adapted_clip import bind_adaptation
from benchmark.features.catalog import get_encoder
from benchmark.features.clip import ClipTower, ZeroShotPrompts, prompt_text

# Part of the prompts' cache key: 2 since the key holds the text tower's version (any CLIP family).
PROMPTS_FORMAT = 2


def zero_shot_prompts(loaded: LoadedDataset, log=print) -> ZeroShotPrompts | None:
    """The class-name prompts embedded by the text tower of the card's first (sorted) image
    modality that a CLIP family encodes; None when none does or the task is not multiclass.
    Cached like features (keyed by the encoder, its text tower's version and the prompts, and for
    a model adapted to the card's pairs the key of its adapted weights)."""
    card = loaded.card
    if card.task != "multiclass":
        return None
    for spec in sorted(card.modalities, key=lambda m: m.name):
        options = {k: v for k, v in spec.options.items() if k != "missing"}
        if options.get("input") != "image":
            continue
        image_tower = get_encoder(spec.encoder, **options)
        if isinstance(image_tower, ClipTower):
            text_tower = get_encoder(spec.encoder, **{**options, "input": "text"})
            bind_adaptation(text_tower, loaded, spec, log)
            return _embedded(card, spec, text_tower, loaded.class_names)
    return None


def _embedded(card, spec, text_tower: ClipTower, class_names: list[str]) -> ZeroShotPrompts:
    texts = [prompt_text(name) for name in class_names]
    key = feature_cache.cache_key(kind="zero-shot-prompts", encoder=spec.encoder, version=text_tower.version,
                                  prompts=texts, format=PROMPTS_FORMAT, **text_tower.state())
    entry = feature_cache.load_entry(key)
    if entry is None:  # stored as a feature entry: the prompts' pooled (C, P), tokens and mask
        encoded = text_tower.encode(texts)
        entry = {"pooled": encoded.pooled, "tokens": encoded.tokens, "mask": encoded.mask.to(torch.uint8)}
        feature_cache.save_entry(key, entry, {"dataset": card.name, "encoder": spec.encoder, "kind": "zero-shot prompts"})
    return ZeroShotPrompts(spec.name, entry["pooled"].float().clone(), adapted=text_tower.adapt is not None)  # (C, P)
