"""CLIP (Radford et al. 2021, "Learning Transferable Visual Models From Natural Language
Supervision") for online users: ``hf-clip:<model id>`` embeds an image or a text modality
with ``transformers`` ``CLIPModel`` / ``CLIPProcessor`` (the option ``input: image`` or
``input: text`` says which). :class:`ClipTower` is what every CLIP family shares (this one and
``open_clip:``, benchmark/features/openclip.py): the ``input`` option and the class-name prompt
(:func:`prompt_text`) that the zero-shot baseline embeds with the text tower
(benchmark/features/class_prompts.py). No CLIP weights ship in any package reachable offline:
the model id is a hub id (online) or a local folder written by ``save_pretrained``.

Either family takes the option ``adapt:`` (true, or a mapping of benchmark/features/clip_adaptation.py's
``AdaptSettings``): the model is first fine-tuned on the card's own image-text pairs
(benchmark/features/adapted_clip.py), and both towers then encode with the adapted weights."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from benchmark.data.loading import DataError
from benchmark.features.base import ENCODERS, Encoded, Encoder, EncodingError, batches
from benchmark.features.clip_adaptation import AdaptSettings, adaptation_code_version
from benchmark.features.image import decode_image
from benchmark.features.media import MediaInput
from benchmark.features.model_cache import cached_model

INPUTS = ("image", "text")
PROMPT = "a photo of a {}"  # the zero-shot prompt of each class name (CLIP's ImageNet template)


def load_clip(model_id: str, revision: str | None = None):
    """(processor, model) for ``model_id``, loaded once per process."""
    from transformers import CLIPModel, CLIPProcessor

    def load():
        try:
            return (CLIPProcessor.from_pretrained(model_id, revision=revision),
                    CLIPModel.from_pretrained(model_id, revision=revision).eval())
        except (OSError, ValueError) as exc:  # hub unreachable (HF_HUB_OFFLINE), bad or unknown id, folder without a model
            raise DataError(f"hf-clip:{model_id}: cannot load a CLIP model and processor from {model_id!r} "
                          f"(a hub id needs the network; offline, name a folder written by save_pretrained): "
                          f"{str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__}") from None

    return cached_model(("hf-clip", model_id, revision), load)


def text_embeddings(processor, model, texts: list[str], batch_size: int = 32, progress=None) -> Encoded:
    """CLIP text embeddings: pooled = the projected embedding, L2-normalised (N, P); tokens = the
    last hidden states (N, T, D) padded to the longest text, with its attention mask (N, T)."""
    tokenizer = processor.tokenizer
    limit = text_limit(processor, model)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True, max_length=limit)["input_ids"]]
    width = max(lengths) if lengths else 1
    pooled, tokens, masks = [], [], []
    with torch.no_grad():
        for start, stop in batches(len(texts), batch_size):
            batch = tokenizer(texts[start:stop], padding="max_length", truncation=True, max_length=width,
                              return_tensors="pt")
            out = model.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            projected = model.text_projection(out.pooler_output)  # (b, P)
            pooled.append(torch.nn.functional.normalize(projected, dim=-1))
            tokens.append(out.last_hidden_state)  # (b, T, D)
            masks.append(batch["attention_mask"].bool())  # (b, T)
            if progress:
                progress(stop - start)
    return Encoded(torch.cat(pooled), torch.cat(tokens), torch.cat(masks))


def text_limit(processor, model) -> int:
    """The most tokens a text keeps: the tokenizer's and the model's limit, whichever is smaller."""
    return min(int(processor.tokenizer.model_max_length), int(model.config.text_config.max_position_embeddings))


class ClipTower(MediaInput):
    """One tower of a CLIP model (image or text, the option ``input``), whose pooled embedding
    shares one space with the other tower's: the zero-shot baseline embeds the class-name prompts
    with the text tower of the encoder that embeds the images (benchmark/features/class_prompts.py).
    Subclasses name the model and encode; the ``input`` option and the absent-value rules live here."""

    input_kind = "image|text"
    family = ""  # the encoder name's prefix, in errors
    # Set by benchmark/features/adapted_clip.py when the option ``adapt`` is given: the card's pairs and
    # the key of the adapted weights. None: the model's own weights.
    adaptation = None

    def __init__(self, *, input: str | None = None, adapt: Any = None) -> None:
        super().__init__()
        self.input = input
        if self.input not in INPUTS:
            raise ValueError(f"{self.family} needs the option 'input: image' or 'input: text' (which CLIP tower "
                             f"embeds this column), got {self.input!r}")
        self.adapt = AdaptSettings.of(adapt)

    @property
    def model_identity(self) -> str:
        """The model's weights as given (before any adaptation), e.g. "hf-clip:<id>:<revision>"."""
        raise NotImplementedError

    @property
    def version(self) -> str:  # type: ignore[override]
        """The model, the tower and (adapted) a digest of the settings and of the adaptation code. The
        pairs the weights are adapted on are part of the data's identity (the feature-cache key holds
        the data's revision and ``state``)."""
        frozen = f"{self.model_identity}:{self.input}:v1"
        return frozen + (f":adapted-{self.adaptation_identity()}" if self.adapt else "")

    def adaptation_identity(self) -> str:
        """A digest of the adaptation settings and code (what changes the adapted weights beside the
        model and the pairs)."""
        blob = json.dumps({"settings": self.adapt.as_dict(), "code": adaptation_code_version()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def state(self) -> dict[str, Any]:
        return {"adaptation": self.adaptation.key} if self.adaptation is not None else {}

    def base_model(self) -> torch.nn.Module:
        """The model with its own weights, loaded once per process (shared: never trained in place)."""
        raise NotImplementedError

    def network(self) -> torch.nn.Module:
        """The model that encodes: the base model, or its adapted copy (trained or read from the store on
        first use)."""
        if self.adapt is None:
            return self.base_model()
        if self.adaptation is None:
            raise RuntimeError(f"{self.family}: an encoder with the option 'adapt' encodes only once the card's "
                               f"image-text pairs are bound to it (benchmark/features/adapted_clip.py)")
        return self.adaptation.model(self)

    def image_embeddings(self, model: torch.nn.Module, images: Sequence[Any]) -> torch.Tensor:
        """The projected image embeddings (B, P) of raw image values, not normalised, with gradients
        (the adaptation's training loop: benchmark/features/clip_adaptation.py)."""
        raise NotImplementedError

    def text_embeddings(self, model: torch.nn.Module, texts: Sequence[str]) -> torch.Tensor:
        """The projected text embeddings (B, P), not normalised, with gradients."""
        raise NotImplementedError

    def decoded(self, values: Sequence[Any]) -> list:
        return [decode_image(v, i, self.base_dir) for i, v in enumerate(values)]

    def is_absent(self, value: Any) -> bool:
        return Encoder.is_absent(self, value) if self.input == "text" else super().is_absent(value)

    def referenced_file(self, value: Any):
        return None if self.input == "text" else super().referenced_file(value)

    @staticmethod
    def texts(values) -> list[str]:
        """The column's values as strings; a row that holds anything else is an EncodingError."""
        for row, value in enumerate(values):
            if not isinstance(value, str):
                raise EncodingError(row, f"expected a string, got {type(value).__name__} {value!r}")
        return list(values)


@ENCODERS.register("hf-clip:")
class HFClip(ClipTower):
    """CLIP image or text embeddings of any ``transformers`` CLIPModel (hub id online, or a local
    folder); option ``input: image`` or ``input: text``. Pooled = projected embedding (L2-normalised)."""

    name = "hf-clip"
    family = "hf-clip"

    def __init__(self, *, model_id: str, input: str | None = None, revision: str | None = None,
                 adapt: Any = None) -> None:
        super().__init__(input=input, adapt=adapt)

    @property
    def model_identity(self) -> str:
        return f"hf-clip:{self.options['model_id']}:{self.options.get('revision', 'main')}"

    def _processor(self):
        return load_clip(self.options["model_id"], self.options.get("revision"))[0]

    def base_model(self) -> torch.nn.Module:
        return load_clip(self.options["model_id"], self.options.get("revision"))[1]

    def encode(self, values, progress=None):
        processor, model = self._processor(), self.network()
        if self.input == "text":
            return text_embeddings(processor, model, self.texts(values), self.batch_size, progress)
        pooled, tokens = [], []
        with torch.no_grad():
            for start, stop in batches(len(values), self.batch_size):
                images = [decode_image(v, start + i, self.base_dir) for i, v in enumerate(values[start:stop])]
                pixels = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]  # (b, 3, S, S)
                out = model.vision_model(pixel_values=pixels)
                projected = model.visual_projection(out.pooler_output)  # (b, P)
                pooled.append(torch.nn.functional.normalize(projected, dim=-1))
                tokens.append(out.last_hidden_state)  # (b, 1 + patches, D): class token, then patches in raster order
                if progress:
                    progress(stop - start)
        tokens_t = torch.cat(tokens)
        return Encoded(torch.cat(pooled), tokens_t, torch.ones(tokens_t.shape[:2], dtype=torch.bool))

    def image_embeddings(self, model, images):
        pixels = self._processor().image_processor(images=self.decoded(images), return_tensors="pt")["pixel_values"]
        device = model.logit_scale.device
        return model.visual_projection(model.vision_model(pixel_values=pixels.to(device)).pooler_output)  # (B, P)

    def text_embeddings(self, model, texts):
        processor = self._processor()
        batch = processor.tokenizer(list(texts), padding=True, truncation=True, max_length=text_limit(processor, model),
                                    return_tensors="pt").to(model.logit_scale.device)
        out = model.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return model.text_projection(out.pooler_output)  # (B, P)


@dataclass(frozen=True)
class ZeroShotPrompts:
    """The zero-shot classifier of a dataset: the image modality whose pooled CLIP embeddings it
    reads, and one prompt embedding per class (C, P), L2-normalised, in class-id order
    (built by benchmark/features/class_prompts.py)."""

    modality: str
    prompts: torch.Tensor  # (C, P)
    template: str = PROMPT
    adapted: bool = False  # the model was adapted to the card's pairs (option adapt): another reference row


def prompt_text(class_name: str, template: str = PROMPT) -> str:
    """"hot_dog" -> "a photo of a hot dog"."""
    return template.format(str(class_name).replace("_", " "))
