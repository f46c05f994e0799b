"""open_clip (Ilharco et al. 2021, "OpenCLIP"; the model: Radford et al. 2021, CLIP) as an
encoder family: ``open_clip:<architecture>[:<pretrained tag or checkpoint file>]`` embeds an image
or a text modality (option ``input: image`` or ``input: text``) with one of open_clip's built-in
architectures (``open_clip.list_models()``: RN50, ViT-B-32, ...).

The weights are named by the part after the architecture:
- a pretrained tag of that architecture (``open_clip.list_pretrained_tags_by_model``, e.g.
  ``RN50:openai``): downloaded by open_clip on first use (the Hugging Face hub), so it needs the
  network once; offline it fails at once with a message saying so;
- a checkpoint file (``RN50:/models/rn50.pt``, ``.safetensors`` too): loaded by open_clip's
  ``load_checkpoint`` with ``weights_only=True`` (torch.load refuses pickled code; a
  TorchScript archive such as OpenAI's original ``RN50.pt`` is refused), strictly (every key of
  the architecture);
- nothing (``open_clip:RN50``): random weights, initialised under a fixed seed so that every
  process builds the same model (the cached features, the prompts and a rerun agree). A warning
  says so once per process: such features are for testing the path, not for a verdict.

The identity (``version``, part of the feature-cache key and of the cell fingerprint) holds the
architecture, the tag, or the checkpoint file's sha256 (not its path), and for random weights
the seed and open_clip's version (its initialisation code decides the weights). The option
``adapt:`` fine-tunes the model on the card's image-text pairs first (benchmark/features/clip.py).

Outputs, both towers from one model loaded once per process:
- image: pooled = the projected image embedding, L2-normalised (N, P) (RN50: P = 1024, the
  attention pool's output); tokens = the last stage's feature map before the attention pool,
  in raster order (N, h*w, C) (RN50 at 224 px: (N, 49, 2048), the 7x7 grid); a ViT gives its
  patch tokens the same way (no class token);
- text: pooled = the projected text embedding, L2-normalised (N, P); tokens = the per-token
  states of the text transformer after its final layer norm (N, T, W) (RN50: W = 512), T the
  longest tokenised text of the column (start and end tokens included, at most the context
  length, 77), masked after each text's end token."""

from __future__ import annotations

import difflib
import hashlib
import warnings
from functools import lru_cache
from pathlib import Path

import torch

from benchmark.data.loading import DataError
from benchmark.features.base import ENCODERS, Encoded, batches
from benchmark.features.clip import ClipTower
from benchmark.features.image import decode_image
from benchmark.features.model_cache import cached_model
from strategies.registry import RegistryError

RANDOM_SEED = 0  # random weights are initialised under this seed: the same model in every process
NAME_FORM = "open_clip:<architecture>[:<pretrained tag or checkpoint file>]"


class RandomWeightsWarning(UserWarning):
    """An open_clip model built without pretrained weights (its features carry no knowledge)."""


def architectures() -> list[str]:
    import open_clip

    return list(open_clip.list_models())


def check_architecture(architecture: str) -> None:
    """Raise RegistryError, one line with the close matches, for an architecture open_clip lacks."""
    known = architectures()
    if architecture in known:
        return
    close = difflib.get_close_matches(architecture, known, n=5, cutoff=0.5)
    hint = f"close matches: {', '.join(close)}" if close else f"e.g. {', '.join(known[:5])}"
    raise RegistryError(f"unknown open_clip architecture {architecture!r}; {hint} "
                        f"({len(known)} in open_clip.list_models())")


def pretrained_tags(architecture: str) -> list[str]:
    import open_clip

    return list(open_clip.list_pretrained_tags_by_model(architecture))


@lru_cache(maxsize=None)
def _file_sha256(path: str, size: int, modified_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of a checkpoint's bytes, read once per process while its size and time stay the same."""
    stat = path.stat()
    return _file_sha256(str(path), stat.st_size, stat.st_mtime_ns)


def load_open_clip(architecture: str, tag: str | None, checkpoint: Path | None):
    """(model, image preprocessing, tokenizer), loaded once per process. Errors say what to do:
    a tag that needs a download offline, a checkpoint that does not fit or is not plain tensors."""
    import open_clip

    name = f"open_clip:{architecture}" + (f":{tag or checkpoint}" if tag or checkpoint else "")

    def load():
        quick_gelu = bool(tag and open_clip.get_pretrained_cfg(architecture, tag).get("quick_gelu", False))
        try:
            with torch.random.fork_rng(devices=[]):  # random weights: the same in every process
                torch.manual_seed(RANDOM_SEED)
                model, _, preprocess = open_clip.create_model_and_transforms(
                    architecture, pretrained=tag or (str(checkpoint) if checkpoint else None),
                    force_quick_gelu=quick_gelu, weights_only=True)
        except RuntimeError as exc:
            if tag and "download" in str(exc).lower():
                raise DataError(f"{name}: the pretrained weights {tag!r} must be downloaded from the Hugging Face hub "
                                f"and it cannot be reached (offline, or HF_HUB_OFFLINE=1). Download them once on a "
                                f"machine that can (open_clip caches them), or name a checkpoint file instead: "
                                f"open_clip:{architecture}:/path/to/weights.safetensors") from None
            raise DataError(f"{name}: the checkpoint does not fit architecture {architecture!r} "
                            f"({_first_line(exc)})") from None
        except Exception as exc:  # noqa: BLE001 - torch.load refusing pickled code, a damaged file
            raise DataError(f"{name}: cannot load the checkpoint {str(checkpoint)!r} with weights_only=True "
                            f"(plain tensors: a state dict or .safetensors; TorchScript archives and pickled "
                            f"objects are refused): {_first_line(exc)}") from None
        if not tag and not checkpoint:
            warnings.warn(f"{name}: no pretrained tag or checkpoint, so its weights are RANDOM (seed {RANDOM_SEED}): "
                          f"its features test the path, they carry no knowledge", RandomWeightsWarning, stacklevel=4)
        return model.eval(), preprocess, open_clip.get_tokenizer(architecture)

    return cached_model(("open_clip", architecture, tag, str(checkpoint) if checkpoint else None), load)


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__


@ENCODERS.register("open_clip:")
class OpenClip(ClipTower):
    """open_clip image or text embeddings (see the module's docstring for names, weights and shapes);
    option ``input: image`` or ``input: text``."""

    name = "open_clip"
    family = "open_clip"

    def __init__(self, *, model_id: str, input: str | None = None, adapt=None) -> None:  # model_id: '<arch>[:<weights>]'
        super().__init__(input=input, adapt=adapt)
        self.architecture, _, weights = model_id.partition(":")
        check_architecture(self.architecture)
        self.tag: str | None = None
        self.checkpoint: Path | None = None
        if weights in pretrained_tags(self.architecture):
            self.tag = weights
        elif weights:
            path = Path(weights).expanduser()
            if not path.is_file():
                tags = ", ".join(pretrained_tags(self.architecture)) or "none"
                raise ValueError(f"open_clip:{model_id}: {weights!r} is neither a pretrained tag of "
                                 f"{self.architecture} ({tags}) nor a checkpoint file ({NAME_FORM})")
            self.checkpoint = path.resolve()

    @property
    def weights(self) -> str:
        """The identity of the weights: the tag, the checkpoint's sha256, or the random initialisation."""
        import open_clip

        if self.tag:
            return f"tag-{self.tag}"
        if self.checkpoint:
            return f"sha256-{file_sha256(self.checkpoint)}"
        return f"random-seed{RANDOM_SEED}-open_clip-{open_clip.__version__}"

    @property
    def model_identity(self) -> str:
        return f"open_clip:{self.architecture}:{self.weights}"

    def _loaded(self):
        return load_open_clip(self.architecture, self.tag, self.checkpoint)

    def base_model(self) -> torch.nn.Module:
        return self._loaded()[0]

    @torch.no_grad()
    def encode(self, values, progress=None):
        _, preprocess, tokenizer = self._loaded()
        model = self.network()
        if self.input == "text":
            return self._encode_texts(model, tokenizer, self.texts(values), progress)
        pooled, tokens = [], []
        for start, stop in batches(len(values), self.batch_size):
            images = [decode_image(v, start + i, self.base_dir) for i, v in enumerate(values[start:stop])]
            pixels = torch.stack([preprocess(image) for image in images])  # (b, 3, S, S)
            out = model.forward_intermediates(image=pixels, image_indices=1, normalize=True)
            pooled.append(out["image_features"])  # (b, P), L2-normalised
            fmap = out["image_intermediates"][-1]  # (b, C, h, w): the last stage, before the attention pool
            tokens.append(fmap.flatten(2).transpose(1, 2))  # (b, h*w, C), raster order
            if progress:
                progress(stop - start)
        tokens_t = torch.cat(tokens)
        return Encoded(torch.cat(pooled), tokens_t, torch.ones(tokens_t.shape[:2], dtype=torch.bool))

    def image_embeddings(self, model, images):
        preprocess = self._loaded()[1]
        pixels = torch.stack([preprocess(image) for image in self.decoded(images)])  # (B, 3, S, S)
        return model.encode_image(pixels.to(model.logit_scale.device))  # (B, P)

    def text_embeddings(self, model, texts):
        ids = self._loaded()[2](list(texts))  # (B, context)
        return model.encode_text(ids.to(model.logit_scale.device))  # (B, P)

    def _encode_texts(self, model, tokenizer, texts: list[str], progress) -> Encoded:
        ids = tokenizer(texts)  # (N, context), padded with 0
        lengths = (ids != 0).sum(1)  # (N,): start token .. end token
        width = int(lengths.max())
        pooled, tokens = [], []
        for start, stop in batches(len(texts), self.batch_size):
            out = model.forward_intermediates(text=ids[start:stop], text_indices=1, normalize=True,
                                              normalize_intermediates=True)
            pooled.append(out["text_features"])  # (b, P), L2-normalised
            tokens.append(out["text_intermediates"][-1][:, :width])  # (b, T, W): causal, so cutting the padding is exact
            if progress:
                progress(stop - start)
        mask = torch.arange(width).unsqueeze(0) < lengths.unsqueeze(1)  # (N, T)
        return Encoded(torch.cat(pooled), torch.cat(tokens), mask)
