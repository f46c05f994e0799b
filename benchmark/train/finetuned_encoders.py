"""Fine-tuned pretrained encoders: the networks in front of the strategy for a modality whose
encoder is fine-tuned (benchmark/features/finetune.py says what is cached for each mode).

Each starts from a copy of the pretrained weights (the frozen encoder's model, loaded once per
process, is never touched) and returns what the frozen encoder would have cached, so a strategy
sees the same widths and token counts frozen or fine-tuned: ``forward(x, tokens)`` -> (pooled
``(B, D)`` and None, or tokens ``(B, T, D)`` and their mask ``(B, T)``).

Batch normalisation keeps its pretrained running statistics in training too (its scale and shift
still train): batch statistics would let one row's input change another row's output, and are
noisy at the batch sizes of this benchmark."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn import functional as F

from benchmark.features.base import FrontEnd
from benchmark.features.finetune import EFFICIENTNET_FULL, EFFICIENTNET_LAST_BLOCK, MINILM_FULL, MINILM_LAST_LAYER
from benchmark.features.image import EfficientNetLite0
from benchmark.features.text import MiniLMText

CROP_SCALE = (0.7, 1.0)  # ``full``: share of the image a training crop keeps (random resized crop)


class _FrozenStatistics(nn.Module):
    """A module whose batch-norm layers stay in eval mode (pretrained running statistics) whatever
    mode the model is put in."""

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        return self


def _image_outputs(fmap: torch.Tensor, grid: int, tokens: bool,
                   budget_grid: int | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """EfficientNet's feature map as the frozen encoder pools it: (B, C, h, w) -> pooled (B, C), or
    (B, g*g, C) raster-order tokens with an all-true mask: the map pooled to the encoder's ``grid``,
    then to ``budget_grid`` where the token budget pools frozen tokens further."""
    if not tokens:
        return fmap.mean(dim=(2, 3)), None  # (B, C)
    pooled = F.adaptive_avg_pool2d(fmap, grid)  # (B, C, grid, grid)
    if budget_grid is not None:
        pooled = F.adaptive_avg_pool2d(pooled, budget_grid)  # (B, C, g, g)
    side = pooled.shape[-1]
    mask = torch.ones(fmap.shape[0], side * side, dtype=torch.bool, device=fmap.device)  # (B, g*g)
    return pooled.flatten(2).transpose(1, 2), mask  # (B, g*g, C)


def _pretrained_efficientnet() -> nn.Module:
    return copy.deepcopy(EfficientNetLite0()._load())


class EfficientNetLastBlock(_FrozenStatistics):
    """EfficientNet-Lite0's last MBConv block and 1x1 head (about 1.0 M parameters) on the cached
    activations entering it: (B, 49*192) or (B, 49, 192) -> 1280-d pooled vector or 3x3 tokens."""

    def __init__(self, grid: int = 3, budget_grid: int | None = None) -> None:
        super().__init__()
        model = _pretrained_efficientnet()
        self.block, self.head, self.norm, self.act = model._blocks[-1], model._conv_head, model._bn1, model._swish
        self.grid, self.budget_grid, self.channels = grid, budget_grid, model._blocks[-1]._block_args.input_filters

    def forward(self, x: torch.Tensor, tokens: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        rows = x.reshape(x.shape[0], -1, self.channels)  # (B, 49, 192), raster order
        side = int(rows.shape[1] ** 0.5)
        fmap = rows.transpose(1, 2).reshape(x.shape[0], self.channels, side, side)  # (B, 192, 7, 7)
        fmap = self.act(self.norm(self.head(self.block(fmap))))  # (B, 1280, 7, 7); no skip: no drop connect
        return _image_outputs(fmap, self.grid, tokens, self.budget_grid)


def random_resized_crops(images: torch.Tensor, size: int, scale: tuple[float, float] = CROP_SCALE) -> torch.Tensor:
    """A random crop of each image (its own share of the area in ``scale``, aspect ratio 3/4 to 4/3,
    anywhere inside the image) resized to ``size``, drawn from the global generator (which the loop
    seeds per run). (B, C, S, S) -> (B, C, size, size)"""
    b = images.shape[0]
    area = torch.empty(b).uniform_(*scale)  # (B,)
    ratio = torch.exp(torch.empty(b).uniform_(torch.log(torch.tensor(3 / 4)).item(), torch.log(torch.tensor(4 / 3)).item()))
    width, height = (area * ratio).sqrt().clamp(max=1.0), (area / ratio).sqrt().clamp(max=1.0)  # shares of the side
    shift_x = (torch.rand(b) * 2 - 1) * (1 - width)  # centre, in [-1, 1] coordinates
    shift_y = (torch.rand(b) * 2 - 1) * (1 - height)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = width, shift_x, height, shift_y
    grid = F.affine_grid(theta.to(images.device, images.dtype), [b, images.shape[1], size, size], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class EfficientNetFull(_FrozenStatistics):
    """The whole EfficientNet-Lite0 (4.0 M parameters in its feature extractor) on cached pixels
    (B, 3*S*S) or (B, 3, S*S): in training a random resized crop of each image, in evaluation the
    whole image, resized to the encoder's ``size``."""

    def __init__(self, grid: int = 3, pixels: int = 128, size: int = 224, budget_grid: int | None = None) -> None:
        super().__init__()
        self.net = _pretrained_efficientnet()
        self.net._fc = None  # the classifier is not used (extract_features stops before it)
        self.grid, self.pixels, self.size, self.budget_grid = grid, pixels, size, budget_grid

    def forward(self, x: torch.Tensor, tokens: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        images = x.reshape(x.shape[0], 3, self.pixels, self.pixels)  # (B, 3, S, S)
        if self.training:
            images = random_resized_crops(images, self.size)  # (B, 3, 224, 224)
        else:
            images = F.interpolate(images, size=self.size, mode="bilinear", align_corners=False)  # (B, 3, 224, 224)
        return _image_outputs(self.net.extract_features(images), self.grid, tokens, self.budget_grid)  # (B, 1280, 7, 7) map


def _pretrained_text(options: dict) -> nn.Module:
    encoder = MiniLMText(**{k: v for k, v in (("model_id", options.get("model_id")),
                                              ("revision", options.get("revision"))) if v is not None})
    return copy.deepcopy(encoder._load()[1])


def window_means(states: torch.Tensor, mask: torch.Tensor, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked means over consecutive windows of ``window`` tokens, as the token budget pools frozen
    token states (benchmark/features/token_budget.py, ``pool_windows``), differentiable; a row with
    no real token keeps one valid zero token (no strategy meets a row without keys).
    (B, T, D), bool (B, T) -> (B, ceil(T / w), D), bool (B, ceil(T / w))"""
    b, length, width = states.shape
    count = -(-length // window)
    pad = count * window - length
    real = F.pad(mask.to(states.dtype), (0, pad)).reshape(b, count, window, 1)  # (B, K, w, 1)
    chunks = F.pad(states, (0, 0, 0, pad)).reshape(b, count, window, width)  # (B, K, w, D)
    counts = real.sum(dim=2)  # (B, K, 1)
    means = (chunks * real).sum(dim=2) / counts.clamp(min=1)  # (B, K, D)
    valid = counts.squeeze(-1) > 0  # (B, K)
    valid[:, 0] |= ~valid.any(dim=1)
    return means, valid


def _text_outputs(states: torch.Tensor, mask: torch.Tensor, window: int, tokens: bool):
    """The last hidden states as the frozen MiniLM encoder gives them: the masked mean, L2-normalised
    (B, D), or the token states pooled in windows of ``window`` with their mask."""
    if not tokens:
        weights = mask.unsqueeze(-1).to(states.dtype)  # (B, T, 1)
        mean = (states * weights).sum(1) / weights.sum(1).clamp(min=1)  # (B, D)
        return F.normalize(mean, dim=-1), None
    return window_means(states, mask, window)


def _additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """A transformer layer's additive attention mask: 0 for real keys, the dtype's lowest value for
    padding. bool (B, T) -> (B, 1, 1, T)"""
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)[:, None, None, :]


class MiniLMLastLayer(nn.Module):
    """MiniLM's last transformer layer (1.8 M parameters; its dropout as pretrained) on the cached
    hidden states entering it, (B, T*385) or (B, T, 385) with the attention mask as the last channel."""

    def __init__(self, length: int, window: int = 1, **source) -> None:
        super().__init__()
        model = _pretrained_text(source)
        self.layer = model.encoder.layer[-1]
        self.width, self.length, self.window = model.config.hidden_size, length, window

    def forward(self, x: torch.Tensor, tokens: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        rows = x.reshape(x.shape[0], -1, self.width + 1)[:, : self.length]  # (B, L, D+1): past L, padding only
        states, mask = rows[..., :-1], rows[..., -1] > 0.5  # (B, L, D), (B, L)
        out = self.layer(states, attention_mask=_additive_mask(mask, states.dtype))
        out = out[0] if isinstance(out, tuple) else out  # (B, L, D)
        return _text_outputs(out, mask, self.window, tokens)


class MiniLMFull(nn.Module):
    """The whole MiniLM (22.7 M parameters) on cached token ids, (B, T*3) or (B, T, 3): the id's
    high and low bytes and the attention mask."""

    def __init__(self, length: int, window: int = 1, **source) -> None:
        super().__init__()
        self.net = _pretrained_text(source)
        self.length, self.window = length, window

    def forward(self, x: torch.Tensor, tokens: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        rows = x.reshape(x.shape[0], -1, 3)[:, : self.length].round().long()  # (B, L, 3)
        ids, mask = rows[..., 0] * 256 + rows[..., 1], rows[..., 2] > 0  # (B, L), (B, L)
        states = self.net(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # (B, L, D)
        return _text_outputs(states, mask, self.window, tokens)


def build_finetuned(front_end: FrontEnd) -> nn.Module:
    """The fine-tuned network a pretrained :class:`FrontEnd` names."""
    o = front_end.options
    source = {"model_id": o.get("model_id"), "revision": o.get("revision")}
    budget_grid = int(o["budget_grid"]) if o.get("budget_grid") else None
    builders = {
        EFFICIENTNET_LAST_BLOCK: lambda: EfficientNetLastBlock(int(o["grid"]), budget_grid),
        EFFICIENTNET_FULL: lambda: EfficientNetFull(int(o["grid"]), int(o["pixels"]), int(o["size"]), budget_grid),
        MINILM_LAST_LAYER: lambda: MiniLMLastLayer(int(o["length"]), int(o["window"]), **source),
        MINILM_FULL: lambda: MiniLMFull(int(o["length"]), int(o["window"]), **source),
    }
    if front_end.kind not in builders:
        raise ValueError(f"unknown fine-tuned encoder {front_end.kind!r}; known: {sorted(builders)}")
    return builders[front_end.kind]()


FINETUNED_KINDS = (EFFICIENTNET_LAST_BLOCK, EFFICIENTNET_FULL, MINILM_LAST_LAYER, MINILM_FULL)
