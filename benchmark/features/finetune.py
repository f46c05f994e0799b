"""Fine-tuning the pretrained encoders: what is cached for a fine-tuned modality, and which
trainable network the model puts in front of the strategy for it (a :class:`FrontEnd`, composed
by benchmark/train/model.py exactly as the ``small_cnn`` front end is).

Two modes besides ``frozen`` (the cached features, unchanged):

- ``last_block``: the last block of the encoder trains, everything below it stays frozen. The
  input of that block is a deterministic function of the raw input and the frozen weights, so it
  is cached like features (keyed by the frozen encoder's version plus the cut): EfficientNet-Lite0's
  activations entering its last MBConv block (192 x 7 x 7 at 224 px), MiniLM's hidden states
  entering its last transformer layer (32 x 384, with the attention mask as a 385th channel). Each
  step then runs only the trained part, so the mode is affordable on a CPU. The price: no
  per-batch augmentation (a crop or a flip of the image would change the cached activations).
- ``full``: the whole encoder trains on raw inputs, decoded once and cached (images as pixels at
  :data:`FULL_PIXELS` px, text as token ids), with images augmented per batch in training
  (random resized crops, benchmark/train/finetuned_encoders.py). Meant for a GPU.

What is cached for a fine-tuned modality is never what the trained network computes: the trained
part runs on every batch, so a fine-tuned cell never reads features of another run, and the frozen
variant keeps its own cache entries (a different encoder version, so a different cache key).

The fine-tuned front end gives the strategy what the frozen encoder gives it: the pooled vector
(EfficientNet: the 1280-d map averaged; MiniLM: the masked mean, L2-normalised) and the same tokens
(EfficientNet: the map pooled to the encoder's 3 x 3 grid; MiniLM: the token states, pooled in
windows exactly as the token budget pools the frozen ones, :func:`budget_front_ends`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from benchmark.features.base import Encoded, Encoder, EncodingError, FrontEnd, batches
from benchmark.features.image import EfficientNetLite0
from benchmark.features.text import MiniLMText
from benchmark.features.token_budget import plan_pooling
from benchmark.vocabulary import FINETUNE_FROZEN, FINETUNE_FULL, FINETUNE_LAST_BLOCK, FINETUNE_MODES

FINETUNE_CODE_VERSION = "1"  # bump when the cached inputs or the trained networks of a fine-tuned mode change
FULL_PIXELS = 128  # ``full``: images are cached at this side and resized to the encoder's 224 px per batch

# Front-end kinds (benchmark/train/finetuned_encoders.py builds them)
EFFICIENTNET_LAST_BLOCK, EFFICIENTNET_FULL = "efficientnet_lite0_last_block", "efficientnet_lite0_full"
MINILM_LAST_LAYER, MINILM_FULL = "minilm_last_layer", "minilm_full"


class _FinetunedInput(Encoder):
    """What a fine-tuned modality caches, made from the card's frozen encoder ``frozen`` (whose
    options, absent-value rules and file references it keeps)."""

    cut = ""  # what is cached, part of the version (and so of the cache key)

    def __init__(self, frozen: Encoder) -> None:
        super().__init__()
        self.frozen = frozen
        self.options = dict(frozen.options)
        self.name, self.input_kind, self.batch_size = frozen.name, frozen.input_kind, frozen.batch_size

    @property
    def version(self) -> str:  # type: ignore[override]
        return f"{self.frozen.version}/{self.cut}/finetune-v{FINETUNE_CODE_VERSION}"

    @property
    def base_dir(self) -> Path | None:  # type: ignore[override]
        return self.frozen.base_dir

    @base_dir.setter
    def base_dir(self, value: Path | None) -> None:
        self.frozen.base_dir = value

    def is_absent(self, value: Any) -> bool:
        return self.frozen.is_absent(value)

    def referenced_file(self, value: Any) -> Path | None:
        return self.frozen.referenced_file(value)


def _as_rows(x: torch.Tensor) -> Encoded:
    """Cached network inputs (N, T, D): pooled = each row flattened (N, T*D), tokens = the rows."""
    return Encoded(x.flatten(1), x, torch.ones(x.shape[:2], dtype=torch.bool))


class EfficientNetBelowLastBlock(_FinetunedInput):
    """``last_block`` for EfficientNet-Lite0: the activations entering its last MBConv block,
    (N, 192, 7, 7) cached as 49 raster-order tokens of 192."""

    cut = "below-last-block"

    @torch.no_grad()
    def encode(self, values, progress=None):
        model = self.frozen._load()
        rows = []
        for start, stop in batches(len(values), self.batch_size):
            pixels = self.frozen._pixels(values[start:stop], start)  # (b, 3, 224, 224)
            x = model._swish(model._bn0(model._conv_stem(pixels)))
            count = len(model._blocks)
            for index, block in enumerate(model._blocks[:-1]):  # extract_features' drop-connect rates (eval: unused)
                x = block(x, drop_connect_rate=model._global_params.drop_connect_rate * index / count)
            rows.append(x.flatten(2).transpose(1, 2))  # (b, 49, 192)
            if progress:
                progress(stop - start)
        return _as_rows(torch.cat(rows))

    def front_end(self) -> FrontEnd:
        return FrontEnd(EFFICIENTNET_LAST_BLOCK, {"width": 1280, "grid": self.frozen.grid}, pretrained=True)


class EfficientNetPixels(_FinetunedInput):
    """``full`` for EfficientNet-Lite0: the decoded image at :data:`FULL_PIXELS` px, normalised as
    the encoder wants it, cached as 3 channel tokens of side x side values."""

    cut = f"pixels{FULL_PIXELS}"

    @torch.no_grad()
    def encode(self, values, progress=None):
        rows = []
        for start, stop in batches(len(values), self.batch_size):
            pixels = self.frozen._pixels(values[start:stop], start)  # (b, 3, 224, 224)
            small = torch.nn.functional.interpolate(pixels, size=FULL_PIXELS, mode="bilinear", antialias=True,
                                                    align_corners=False)  # (b, 3, S, S)
            rows.append(small.flatten(2))  # (b, 3, S*S)
            if progress:
                progress(stop - start)
        return _as_rows(torch.cat(rows))

    def front_end(self) -> FrontEnd:
        return FrontEnd(EFFICIENTNET_FULL, {"width": 1280, "grid": self.frozen.grid, "pixels": FULL_PIXELS,
                                            "size": self.frozen.image_size}, pretrained=True)


class _MiniLMInput(_FinetunedInput):
    """Text tokenised to the encoder's ``max_length`` (every split padded to it, so the splits'
    shapes agree) and cached as (N, max_length, C) rows whose last channel is the attention mask."""

    def _texts(self, values) -> list[str]:
        for row, value in enumerate(values):
            if value is None or not isinstance(value, str):
                raise EncodingError(row, f"expected a string, got {type(value).__name__} {value!r}")
        return list(values)

    def _rows(self, tokenizer, model, batch) -> torch.Tensor:
        """(b, T, C) cached rows of one tokenised batch, mask channel last."""
        raise NotImplementedError

    @torch.no_grad()
    def encode(self, values, progress=None):
        tokenizer, model = self.frozen._load()
        texts = self._texts(values)
        rows = []
        for start, stop in batches(len(texts), self.batch_size):
            batch = tokenizer(texts[start:stop], padding="max_length", truncation=True,
                              max_length=self.frozen.max_length, return_tensors="pt")
            rows.append(self._rows(tokenizer, model, batch))
            if progress:
                progress(stop - start)
        return _as_rows(torch.cat(rows))

    def _source(self) -> dict[str, Any]:
        """Where the front end loads the same pretrained model from."""
        return {"model_id": self.options.get("model_id"), "revision": self.options.get("revision")}


class MiniLMBelowLastLayer(_MiniLMInput):
    """``last_block`` for MiniLM (and ``hf-text:`` models): the hidden states entering the last
    transformer layer, zero at padding, with the attention mask as an extra channel (N, T, 385)."""

    cut = "below-last-layer/pad"

    def _rows(self, tokenizer, model, batch):
        states = model(**batch, output_hidden_states=True).hidden_states[-2]  # (b, T, D) entering the last layer
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)  # (b, T, 1)
        return torch.cat([states * mask, mask], dim=-1)  # (b, T, D+1)

    def front_end(self) -> FrontEnd:
        return FrontEnd(MINILM_LAST_LAYER, {"width": 384, **self._source()}, pretrained=True)


class MiniLMTokenIds(_MiniLMInput):
    """``full`` for MiniLM: the token ids, split into two channels below 256 (fp16, the cache's
    dtype, holds integers exactly only up to 2048), and the attention mask: (N, T, 3)."""

    cut = "token-ids/pad"

    def _rows(self, tokenizer, model, batch):
        ids = batch["input_ids"]  # (b, T)
        return torch.stack([ids // 256, ids % 256, batch["attention_mask"]], dim=-1).float()  # (b, T, 3)

    def front_end(self) -> FrontEnd:
        return FrontEnd(MINILM_FULL, {"width": 384, **self._source()}, pretrained=True)


# Which frozen encoder each mode replaces, and with what. Encoders not named here stay frozen.
FINETUNABLE: dict[type, dict[str, type]] = {
    EfficientNetLite0: {FINETUNE_LAST_BLOCK: EfficientNetBelowLastBlock, FINETUNE_FULL: EfficientNetPixels},
    MiniLMText: {FINETUNE_LAST_BLOCK: MiniLMBelowLastLayer, FINETUNE_FULL: MiniLMTokenIds},
}


def finetuned_input(encoder: Encoder, mode: str) -> Encoder | None:
    """What a modality with the card's ``encoder`` caches under fine-tuning ``mode``, or None when
    it stays frozen (the mode is ``frozen``, or the encoder cannot be fine-tuned: CLIP, tabular,
    audio, raw pixels, torchvision and hf-image models)."""
    if mode not in FINETUNE_MODES:
        raise ValueError(f"finetune: expected one of {list(FINETUNE_MODES)}, got {mode!r}")
    if mode == FINETUNE_FROZEN:
        return None
    for base in type(encoder).__mro__:  # hf-text: is a MiniLMText with another model
        if base in FINETUNABLE:
            return FINETUNABLE[base][mode](encoder)
    return None


def can_finetune(encoder: Encoder) -> bool:
    """Whether some fine-tuning mode replaces this frozen encoder."""
    return any(base in FINETUNABLE for base in type(encoder).__mro__)


def budget_front_ends(front_ends: dict[str, FrontEnd], per_split: dict, max_tokens: int | None
                      ) -> tuple[dict[str, FrontEnd], dict[str, str]]:
    """The fine-tuned front ends told how the token budget pools what they give a token strategy, so
    that it sees the same tokens as it does on frozen features (benchmark/features/token_budget.py,
    ``plan_pooling``): an image's grid x grid tokens pooled to the largest square grid within the
    budget; text given the longest real length over every split (the frozen encoder's longest padded
    width) and the window ``w`` of the masked means. ``per_split``: split -> {"tokens": {m: (N, T, C)
    cached rows}}, a text row's last channel its mask. -> (front ends, modality -> what was done,
    for the log and the report)."""
    out, done = dict(front_ends), {}
    for modality, front_end in front_ends.items():
        options = dict(front_end.options)
        if front_end.kind in (EFFICIENTNET_LAST_BLOCK, EFFICIENTNET_FULL):
            grid = int(options["grid"])
            plan = None if max_tokens is None else plan_pooling([grid * grid], True, max_tokens)
            if plan is not None:  # the frozen grid pooled again, as apply_token_budget pools frozen tokens
                options["budget_grid"] = plan[1]
                done[modality] = f"{grid * grid} -> {plan[1] ** 2} tokens ({grid}x{grid} grid pooled to {plan[1]}x{plan[1]}), in the model"
        elif front_end.kind in (MINILM_LAST_LAYER, MINILM_FULL):
            longest = max(1, max(int(parts["tokens"][modality][..., -1].float().sum(dim=1).max().item())
                                 if len(parts["tokens"][modality]) else 1 for parts in per_split.values()))
            plan = None if max_tokens is None else plan_pooling([longest], False, max_tokens)
            window = plan[1] if plan is not None else 1
            options.update(length=longest, window=window)
            if window > 1:
                done[modality] = (f"up to {longest} -> up to {-(-longest // window)} tokens (means of {window}), "
                                  f"in the model")
        out[modality] = FrontEnd(front_end.kind, options, pretrained=front_end.pretrained)
    return out, done
