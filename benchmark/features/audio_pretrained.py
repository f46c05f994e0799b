"""Pretrained audio encoder ``aisfx``: the sound-effects embedding network of Ma and Lerch,
"Representation Learning for the Automatic Indexing of Sound Effects Libraries", ISMIR 2022
(model X-Sequential-CE: a 9-layer CNN, the DCASE cross-task baseline of Kong et al. 2018,
trained across nine sound-effects libraries). Its weights ship inside the PyPI wheel
``aisfx==0.1.2`` (code MIT, weights CC BY 4.0), installed without its pinned dependencies
(``pip install --no-deps aisfx==0.1.2``; ``make install`` does it): this module reads only the
wheel's ``models/checkpoint.pth``, loaded with ``torch.load(weights_only=True)`` and one old
numpy name allow-listed, and rebuilds the network and its front end in plain torch (no librosa).

Front end, as the package's librosa path: 44.1 kHz mono, peak-normalised; power mel spectrogram
(n_fft = window 2048, hop 1024 = 23 ms, 96 HTK-mel bands 0-22.05 kHz, each filter summing to 1);
``log10(1e4 * mel + 1)`` divided by the package's training maximum 9.4578. Clips shorter than
the model's 100-frame block (2.3 s) are zero-padded to it, as the package's blocking does.

Outputs (512-d): pooled = the network's embedding (mean over frequency, max over time of the last
conv block), identical to the package's for clips up to 2.3 s (longer clips: the max over the
whole clip instead of one embedding per 2.3 s block); tokens = the last block's map over time
(one step per 8 frames, 186 ms; only the steps over real audio, not the padding) averaged into
at most ``max_tokens`` segments, in time order.
Option ``standardize`` (default true) z-scores both with training-split statistics."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from benchmark.features.audio import _AudioEncoder, mel_filterbank
from benchmark.features.base import ENCODERS
from benchmark.features.model_cache import cached_model

AISFX_VERSION = "0.1.2"
AISFX_INSTALL = f'pip install --no-deps "aisfx=={AISFX_VERSION}"'
SPEC_MAX = 9.457798957824707  # the package's 'original' min-max normalisation (min 0)
FRONT_END = {"sample_rate": 44100, "n_mels": 96, "n_fft": 2048, "hop": 1024}  # what the network was trained on
BLOCK_FRAMES = 100  # the model's input block (EMB_BLOCK_LENGTH)


class _ConvBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels_out)
        self.bn2 = nn.BatchNorm2d(channels_out)

    def forward(self, x: torch.Tensor, pool: int) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))  # (B, C, T, F)
        x = F.relu(self.bn2(self.conv2(x)))  # (B, C, T, F)
        return F.max_pool2d(x, pool) if pool > 1 else x  # (B, C, T / pool, F / pool)


class AisfxNet(nn.Module):
    """The package's ``EmbeddingNet('max', 3, 1, 64)``: four conv blocks 64-128-256-512 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv_block1, self.conv_block2 = _ConvBlock(1, 64), _ConvBlock(64, 128)
        self.conv_block3, self.conv_block4 = _ConvBlock(128, 256), _ConvBlock(256, 512)

    def time_map(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, frames, 96) -> (B, 512, frames / 8): the last block averaged over frequency."""
        x = spec.unsqueeze(1)  # (B, 1, T, 96)
        x = self.conv_block3(self.conv_block2(self.conv_block1(x, 2), 2), 2)  # (B, 256, T/8, 12)
        return self.conv_block4(x, 1).mean(dim=3)  # (B, 512, T/8)

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, frames, 96) -> (B, 512) embedding (max over time)."""
        return self.time_map(spec).amax(dim=2)  # (B, 512)


def checkpoint_path() -> Path:
    """The wheel's checkpoint file, found without importing the package (its imports need librosa)."""
    spec = importlib.util.find_spec("aisfx")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"encoder 'aisfx' needs the aisfx package (weights in its wheel): {AISFX_INSTALL}")
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "checkpoint.pth"
    if not path.is_file():
        raise ValueError(f"encoder 'aisfx': no checkpoint at {path}; reinstall with {AISFX_INSTALL}")
    return path


def load_aisfx(path: Path) -> AisfxNet:
    """The embedding network with the checkpoint's weights (the classifier heads are dropped)."""
    allowed = [(np._core.multiarray.scalar, "numpy.core.multiarray.scalar"), np.dtype,
               type(np.dtype("int64"))]  # the checkpoint pickles its dataset indices as numpy int64
    with torch.serialization.safe_globals(allowed):
        weights, _ = torch.load(path, map_location="cpu", weights_only=True)
    prefix = "embedding_net."
    state = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    net = AisfxNet()
    net.load_state_dict(state)
    return net.eval()


@ENCODERS.register("aisfx")
class Aisfx(_AudioEncoder):
    """aiSFX sound-effects CNN embeddings, 512-d (ISMIR 2022; aisfx wheel); options max_tokens (16), standardize."""

    name = "aisfx"
    option_notes = {option: "the aisfx network was trained on a fixed front end (44.1 kHz, 96 mel bands, n_fft "
                            "2048, hop 1024); remove the option" for option in FRONT_END}

    def __init__(self, *, max_tokens: int = 16, standardize: bool = True) -> None:
        super().__init__(max_tokens=max_tokens, standardize=standardize, **FRONT_END)
        # The options as they always were here (the training statistics' cache key holds them).
        self.options = {**self.options, "max_tokens": max_tokens, **FRONT_END}

    @property
    def version(self) -> str:  # type: ignore[override]
        scaling = "z-train" if self.standardize else "raw"
        return f"aisfx:{AISFX_VERSION}:v1:{scaling}:{self.max_tokens}"

    def _net(self) -> AisfxNet:
        path = checkpoint_path()
        return cached_model(("aisfx", str(path)), lambda: load_aisfx(path))  # once per process

    def _spectrogram(self, samples: np.ndarray) -> tuple[torch.Tensor, int]:
        """(samples,) at 44.1 kHz -> (the network's input (max(frames, 100), 96), real frames)."""
        wave_ = torch.from_numpy(samples)
        peak = float(wave_.abs().max())
        wave_ = wave_ / (peak if peak > 0 else 1.0)
        if wave_.numel() < self.n_fft:
            wave_ = F.pad(wave_, (0, self.n_fft - wave_.numel()))
        spec = torch.stft(wave_, n_fft=self.n_fft, hop_length=self.hop, window=torch.hann_window(self.n_fft),
                          center=True, pad_mode="constant", return_complex=True)  # (1025, frames)
        bank = mel_filterbank(self.n_mels, self.n_fft, self.sample_rate)  # (96, 1025)
        bank = bank / bank.sum(1, keepdim=True).clamp_min(1e-12)  # each filter sums to 1 (librosa norm=1)
        mel = bank @ (spec.abs() ** 2)  # (96, frames)
        frames = (torch.log10(mel * 1e4 + 1.0) / SPEC_MAX).T  # (frames, 96)
        real = frames.shape[0]
        if real < BLOCK_FRAMES:
            frames = F.pad(frames, (0, 0, 0, BLOCK_FRAMES - real))  # (100, 96)
        return frames, real

    def _clip(self, samples: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        spec, real = self._spectrogram(samples)  # (max(F, 100), 96)
        steps = self._net().time_map(spec.unsqueeze(0))[0].T  # (T/8, 512)
        covered = steps[: max(1, math.ceil(real / 8))]  # (T_i', 512): the steps over real audio, not the padding
        segments = torch.tensor_split(covered, min(self.max_tokens, covered.shape[0]))
        return steps.amax(0), torch.stack([s.mean(0) for s in segments])  # (512,), (T_i, 512)
