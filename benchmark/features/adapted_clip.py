"""A CLIP encoder adapted to the card's own image-text pairs (the option ``adapt:`` of ``hf-clip:`` and
``open_clip:``): which pairs, the key of the adapted weights, and the store that keeps them.

The pairs: the card's image modality and text modality that name the same CLIP encoder with the same
``adapt`` settings (one of each); the rows of the training split where both are present train, those
of the validation split stop the training (benchmark/features/clip_adaptation.py). The test split is
never read. The weights' key is a digest of the model as given, the data's revision and the two
columns, the settings and the adaptation code, so a second run (and the other tower, and the
zero-shot prompts) reads the weights from ``<models dir>/clip-adapted/<key>.pt`` (a state dict
written by ``torch.save``, read back with ``weights_only=True``), and any change adapts again. The
key is also the adapted tower's ``state()``, part of its feature-cache key: features of the adapted
model and of the frozen one never share an entry."""

from __future__ import annotations

import copy
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from benchmark.data.cards import CardError, DatasetCard, ModalitySpec
from benchmark.data.loading import LoadedDataset
from benchmark.features import cache as feature_cache
from benchmark.features.catalog import get_encoder
from benchmark.features.clip import ClipTower
from benchmark.features.clip_adaptation import AdaptSettings, Pairs, adapt_clip, trainable_copy
from benchmark.features.columns import column_values
from benchmark.features.model_cache import cached_model
from benchmark.paths import models_dir

ADAPTED_FORMAT = 1  # part of the weights' key: the layout of the stored file


def pair_modalities(card: DatasetCard, spec: ModalitySpec) -> tuple[ModalitySpec, ModalitySpec]:
    """(image modality, text modality) whose pairs adapt ``spec``'s encoder: those naming the same
    encoder with the same ``adapt`` settings. CardError unless there is exactly one of each."""
    adapt = spec.options.get("adapt")
    same = [m for m in sorted(card.modalities, key=lambda m: m.name)
            if m.encoder == spec.encoder and m.options.get("adapt") == adapt]
    found = {kind: [m for m in same if m.options.get("input") == kind] for kind in ("image", "text")}
    for kind, modalities in found.items():
        if len(modalities) != 1:
            names = f" ({', '.join(m.name for m in modalities)})" if modalities else ""
            raise CardError(card.path, f"modalities.{spec.name}.adapt",
                            f"adapting {spec.encoder!r} needs the image-text pairs of one image and one text modality "
                            f"that name this encoder with the same 'adapt' settings; found {len(modalities)} with "
                            f"'input: {kind}'{names}")
    return found["image"][0], found["text"][0]


def _options(spec: ModalitySpec) -> dict:
    return {k: v for k, v in spec.options.items() if k != "missing"}


@dataclass
class Adaptation:
    """The adaptation of one model to one card's pairs: its key, and the adapted model on first use
    (read from the store, or trained and stored when the store lacks it)."""

    key: str
    loaded: LoadedDataset
    image: ModalitySpec
    text: ModalitySpec
    settings: AdaptSettings
    log: Callable[[str], None]

    @property
    def weights_path(self) -> Path:
        return models_dir() / "clip-adapted" / f"{self.key}.pt"

    def model(self, tower: ClipTower) -> torch.nn.Module:
        """The adapted model, loaded once per process; trained first when the store lacks its weights
        (outside the model cache's lock: training encodes with the tower, which loads through it)."""
        base = tower.base_model()
        if not self.weights_path.is_file():
            self._adapt(tower, base, self.weights_path)
        return cached_model(("clip-adapted", self.key), lambda: self._load(base))

    def _load(self, base: torch.nn.Module) -> torch.nn.Module:
        self.log(f"[{self.loaded.card.name}] {self.image.encoder}: adapted weights from {self.weights_path}")
        model = copy.deepcopy(base)
        model.load_state_dict(torch.load(self.weights_path, map_location="cpu", weights_only=True))
        return model.eval()

    def _adapt(self, tower: ClipTower, base: torch.nn.Module, path: Path) -> None:
        name = self.loaded.card.name
        train, validation = self.pairs("train"), self.pairs("validation")
        device = "cuda" if torch.cuda.is_available() else "cpu"
        adapted = adapt_clip(trainable_copy(base), tower, train, validation, self.settings,
                             log=lambda line: self.log(f"[{name}] {self.image.encoder} {line}"), device=device)
        record = {"model": tower.model_identity, "dataset": name, "image": self.image.column, "text": self.text.column,
                  "settings": self.settings.as_dict(), "validation_losses": adapted.validation_losses,
                  "train_losses": adapted.train_losses, "best_epoch": adapted.best_epoch,
                  "stop_reason": adapted.stop_reason, "device": device}
        _write_atomically(path, lambda handle: torch.save(adapted.state_dict, handle))
        _write_atomically(path.with_suffix(".json"), lambda handle: handle.write(json.dumps(record, indent=1).encode()))

    def pairs(self, split: str) -> Pairs:
        """The split's rows where both the image and the text are present, as (images, texts)."""
        image_tower = get_encoder(self.image.encoder, **_options(self.image))
        text_tower = get_encoder(self.text.encoder, **_options(self.text))
        image_tower.base_dir = self.loaded.card.path.resolve().parent
        dataset = self.loaded.splits[split]
        images = column_values(self.loaded, dataset, self.image, split, None)
        texts = column_values(self.loaded, dataset, self.text, split, None)
        rows = [i for i, (image, text) in enumerate(zip(images, texts))
                if not image_tower.is_absent(image) and not text_tower.is_absent(text)
                and _file_there(image_tower.referenced_file(image))]
        return Pairs([images[i] for i in rows], ClipTower.texts([texts[i] for i in rows]))


def _file_there(path: Path | None) -> bool:
    return path is None or path.is_file()


def _write_atomically(path: Path, write: Callable) -> None:
    """Write to a temporary file beside ``path``, then rename it into place: an interrupted write
    never leaves weights a later run trusts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False)
    try:
        with handle:
            write(handle)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def adaptation_key(tower: ClipTower, loaded: LoadedDataset, image: ModalitySpec, text: ModalitySpec) -> str:
    """The digest that names the adapted weights: the model as given, the pairs (the data's revision,
    which fingerprints every split's content, and the two columns), the settings and the code."""
    return feature_cache.cache_key(kind="clip-adapted", model=tower.model_identity, data=loaded.revision,
                                   image=image.column, text=text.column, adaptation=tower.adaptation_identity(),
                                   format=ADAPTED_FORMAT)


def bind_adaptation(encoder, loaded: LoadedDataset, spec: ModalitySpec, log: Callable[[str], None] = print) -> None:
    """Give a CLIP tower with the option ``adapt`` the card's pairs and the key of its adapted weights
    (no training yet: that happens on its first encode, if the features are not cached); any other
    encoder is left as it is."""
    if not isinstance(encoder, ClipTower) or encoder.adapt is None:
        return
    image, text = pair_modalities(loaded.card, spec)
    encoder.adaptation = Adaptation(adaptation_key(encoder, loaded, image, text), loaded, image, text, encoder.adapt, log)
