"""Audio front end written with plain torch (torchaudio is not needed): a Slaney-style
triangular mel filterbank on the HTK mel scale, log-mel spectrograms from ``torch.stft`` and
MFCCs (orthonormal DCT-II of the log-mel bands).

Encoders ``log_mel`` and ``mfcc`` accept, per row, a datasets ``Audio`` dict
(``{"array", "sampling_rate"}``), an encoded file (WAV, FLAC, OGG: whatever libsndfile reads
through ``soundfile``; PCM WAV also with the standard-library ``wave`` module) as raw bytes,
as a path (relative paths resolve against the card's folder) or as an undecoded ``Audio``
struct ``{"bytes", "path"}``, or a plain list/array of samples at the card's ``sample_rate``.
Audio at any other rate is resampled to ``sample_rate`` (polyphase, ``scipy.signal.resample_poly``).
Pooled = per-utterance statistics of the frames, ``3 * D`` wide (D = ``n_mels`` or ``n_mfcc``):
the mean over frames, the standard deviation over frames, and the mean absolute frame-to-frame
delta (the signed mean of deltas telescopes to (last - first) / frames and says little). Tokens
= frames averaged into at most ``max_tokens`` equal segments in time order (padding masked); token
strategies add time positions to them (strategies/positions.py). With ``standardize: true`` (the
default) pooled vectors and tokens are z-scored per dimension with statistics fitted on the
training split only (benchmark/features/standardize.py; part of the cache key)."""

from __future__ import annotations

import hashlib
import io
import math
import wave
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.features import cache as feature_cache
from benchmark.features.base import ENCODERS, Encoded, EncodingError
from benchmark.features.media import MediaInput
from benchmark.features.standardize import TrainStatistics, fit_cached
from benchmark.features.wav_header import TruncatedAudio, check_complete


def hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def mel_filterbank(n_mels: int, n_fft: int, sample_rate: int, fmin: float = 0.0, fmax: float | None = None) -> torch.Tensor:
    """Triangular filters, area-normalised (Slaney). -> (n_mels, n_fft // 2 + 1)"""
    fmax = fmax or sample_rate / 2.0
    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2))  # (n_mels + 2,)
    lower = (freqs[None, :] - edges[:-2, None]) / np.maximum(edges[1:-1, None] - edges[:-2, None], 1e-9)
    upper = (edges[2:, None] - freqs[None, :]) / np.maximum(edges[2:, None] - edges[1:-1, None], 1e-9)
    bank = np.maximum(0.0, np.minimum(lower, upper))
    bank *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    return torch.tensor(bank, dtype=torch.float32)


def dct_matrix(n_mfcc: int, n_mels: int) -> torch.Tensor:
    """Orthonormal DCT-II basis. -> (n_mfcc, n_mels)"""
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    basis = np.cos(math.pi / n_mels * (n + 0.5) * k) * math.sqrt(2.0 / n_mels)
    basis[0] *= 1.0 / math.sqrt(2.0)
    return torch.tensor(basis, dtype=torch.float32)


def log_mel_spectrogram(wave_: torch.Tensor, sample_rate: int, n_mels: int = 64, n_fft: int = 400,
                        hop: int = 160, eps: float = 1e-6) -> torch.Tensor:
    """(samples,) -> log-mel power (frames, n_mels)."""
    if wave_.numel() < n_fft:
        wave_ = torch.nn.functional.pad(wave_, (0, n_fft - wave_.numel()))
    spec = torch.stft(wave_, n_fft=n_fft, hop_length=hop, window=torch.hann_window(n_fft), center=True,
                      return_complex=True)  # (n_fft/2+1, frames)
    power = spec.abs() ** 2
    mel = mel_filterbank(n_mels, n_fft, sample_rate) @ power  # (n_mels, frames)
    return torch.log(mel + eps).T


def mfcc(wave_: torch.Tensor, sample_rate: int, n_mfcc: int = 20, n_mels: int = 64, **kwargs) -> torch.Tensor:
    """(samples,) -> MFCC (frames, n_mfcc)."""
    return log_mel_spectrogram(wave_, sample_rate, n_mels=n_mels, **kwargs) @ dct_matrix(n_mfcc, n_mels).T


def read_audio(data: bytes | str | Path) -> tuple[np.ndarray, int]:
    """An encoded audio file (bytes or path) -> (mono float32 samples in [-1, 1], sample rate):
    through ``soundfile`` (WAV, FLAC, OGG, ...) when it is installed, else PCM WAV only."""
    try:
        import soundfile
    except ImportError:  # pragma: no cover - soundfile is a dependency; the wave module still reads WAV
        return read_wav(data)
    try:
        samples, rate = soundfile.read(io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else str(data),
                                       dtype="float32", always_2d=True)  # (frames, channels)
    except soundfile.LibsndfileError as exc:
        raise ValueError(str(exc)) from None
    check_complete(data, samples.shape[0], int(rate))  # libsndfile reads a cut-short WAV silently
    return samples.mean(axis=1), int(rate)


def read_wav(data: bytes | str | Path) -> tuple[np.ndarray, int]:
    """PCM WAV (bytes or path) -> (mono float32 samples in [-1, 1], sample rate)."""
    with wave.open(io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else str(data), "rb") as handle:
        width, channels, rate = handle.getsampwidth(), handle.getnchannels(), handle.getframerate()
        declared = handle.getnframes()
        raw = handle.readframes(declared)
    dtype = {1: np.uint8, 2: np.int16, 4: np.int32}.get(width)
    if dtype is None:
        raise ValueError(f"unsupported WAV sample width {width} bytes")
    if len(raw) < declared * width * channels:
        raise TruncatedAudio(declared, len(raw) // (width * channels), rate)
    samples = np.frombuffer(raw, dtype=dtype).astype(np.float32)
    samples = (samples - 128.0) / 128.0 if width == 1 else samples / float(np.iinfo(dtype).max)
    return samples.reshape(-1, channels).mean(axis=1), rate


def resample(samples: np.ndarray, source: int, target: int) -> np.ndarray:
    """Polyphase resampling with an anti-aliasing filter (scipy.signal.resample_poly); the
    output holds round(len * target / source) samples."""
    if source == target or len(samples) == 0:
        return samples
    from scipy.signal import resample_poly

    common = math.gcd(int(source), int(target))
    return resample_poly(samples, int(target) // common, int(source) // common).astype(np.float32)


class _AudioEncoder(MediaInput):
    input_kind = "audio"

    def __init__(self, *, sample_rate: int = 16000, n_mels: int = 64, n_fft: int = 400, hop: int = 160,
                 max_tokens: int = 32, standardize: bool = True) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.n_mels = int(n_mels)
        self.n_fft = int(n_fft)
        self.hop = int(hop)
        self.max_tokens = int(max_tokens)
        self.standardize = standardize
        if not isinstance(self.standardize, bool):
            raise ValueError(f"option 'standardize': expected true or false, got {self.standardize!r}")
        self.statistics: TrainStatistics | None = None  # fitted on the training split (fit)

    def _samples(self, value: Any, row: int) -> np.ndarray:
        source = None
        try:
            if isinstance(value, dict) and value.get("array") is not None:
                samples, rate = np.asarray(value["array"], dtype=np.float32), int(value.get("sampling_rate") or self.sample_rate)
            elif isinstance(value, (list, tuple, np.ndarray)):
                samples, rate = np.asarray(value, dtype=np.float32), self.sample_rate
            else:
                source = self.source(value, row)  # encoded bytes, or an existing file
                if source is None:
                    raise EncodingError(row, f"expected audio (samples, an Audio dict, encoded WAV/FLAC bytes or a "
                                             f"file path), got {type(value).__name__}")
                samples, rate = read_audio(source)
        except EncodingError:  # a missing file, or no audio at all: already says so and names the row
            raise
        except TruncatedAudio as exc:
            what = f"file {source}" if isinstance(source, Path) else "audio"
            raise EncodingError(row, f"{what} is truncated: {exc}") from None
        except (wave.Error, EOFError, OSError, ValueError) as exc:
            what = f"file {source}" if isinstance(source, Path) else "audio"
            raise EncodingError(row, f"unreadable or corrupted {what} ({exc.__class__.__name__}: {exc})") from None
        if samples.ndim > 1:
            samples = samples.mean(axis=-1) if samples.shape[-1] <= 8 else samples.mean(axis=0)
        if samples.size == 0 or not np.isfinite(samples).all():
            raise EncodingError(row, "audio is empty or contains NaN/inf samples")
        return resample(samples, rate, self.sample_rate)

    def _pooling(self) -> str:
        """The pooled layout and scaling, in the version (cached features and result identities change with it)."""
        return "mean+sd+absdelta" + (":z-train" if self.standardize else ":raw")

    def _frames(self, samples: np.ndarray) -> torch.Tensor:
        return log_mel_spectrogram(torch.from_numpy(samples), self.sample_rate, self.n_mels, self.n_fft, self.hop)

    def _clip(self, samples: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """One clip -> (pooled (3D,): mean, sd and mean |delta| over frames; tokens (T_i, D))."""
        frames = self._frames(samples)  # (F, D)
        deltas = (frames[1:] - frames[:-1]).abs() if frames.shape[0] > 1 else torch.zeros_like(frames)  # (F-1, D)
        pooled = torch.cat([frames.mean(0), frames.std(0, unbiased=False), deltas.mean(0)])  # (3D,)
        segments = torch.tensor_split(frames, min(self.max_tokens, frames.shape[0]))
        return pooled, torch.stack([s.mean(0) for s in segments])  # (3D,), (T_i, D)

    def fit(self, train_values) -> None:
        """Standardisation statistics from the training split's clips (no-op without ``standardize``).
        When they must be computed, the raw encoding of the training clips is kept until ``encode``
        is given the same clips (the training split), so no clip is decoded and encoded twice."""
        self.statistics = None
        self._fitted_raw = None
        if self.standardize:
            digest = self._content_digest(train_values)
            key = feature_cache.cache_key(kind="audio train statistics", version=self.version,
                                          options=self.options, rows=digest)
            raw: list[Encoded] = []

            def encode_train() -> Encoded:
                raw.append(self._encode_raw(train_values))
                return raw[0]

            self.statistics = fit_cached(key, encode_train, self.version)
            self._fitted_raw = (digest, raw[0]) if raw else None

    def _content_digest(self, values) -> str:
        """A hash of the clips' content: the bytes or samples a cell holds, or for a file its
        resolved path, size and modification time (cheaper than decoding every clip)."""
        hasher = hashlib.sha256()
        for value in values:
            if isinstance(value, dict):  # decoded samples first: a decoded Audio dict's "path" is only a name
                value = ((value["array"], value.get("sampling_rate")) if value.get("array") is not None
                         else value.get("bytes") or value.get("path"))
            if isinstance(value, tuple):  # (samples, rate) of an Audio dict
                hasher.update(np.asarray(value[0], dtype=np.float32).tobytes() + repr(value[1]).encode())
            elif isinstance(value, (bytes, bytearray, memoryview)):
                hasher.update(hashlib.sha256(bytes(value)).digest())
            elif isinstance(value, (str, Path)):
                path = self.referenced_file(value)
                stat = path.stat() if path is not None and path.is_file() else None
                hasher.update(f"{path}|{stat.st_size if stat else -1}|{stat.st_mtime_ns if stat else -1}".encode())
            else:
                hasher.update(np.asarray(value, dtype=np.float32).tobytes())
            hasher.update(b"\0")
        return hasher.hexdigest()

    def state(self) -> dict[str, Any]:
        return {"standardize": self.statistics.digest() if self.statistics is not None else ""}

    @torch.no_grad()
    def encode(self, values, progress=None):
        if self.standardize and self.statistics is None:
            raise RuntimeError(f"{self.name} encoder: fit(train_values) must run before encode when standardize "
                               f"is on (or give the option standardize: false)")
        fitted = getattr(self, "_fitted_raw", None)
        if fitted is not None and self._content_digest(values) == fitted[0]:
            encoded, self._fitted_raw = fitted[1], None  # the training clips, encoded once by fit
        else:
            encoded = self._encode_raw(values, progress)
        return self.statistics.apply(encoded) if self.statistics is not None else encoded

    @torch.no_grad()
    def _encode_raw(self, values, progress=None) -> Encoded:
        pooled, tokens = [], []
        for row, value in enumerate(values):
            vector, segments = self._clip(self._samples(value, row))  # (P,), (T_i, D)
            pooled.append(vector)
            tokens.append(segments)
            if progress:
                progress(1)
        if not tokens:
            raise ValueError("no audio clip to encode")
        width = max(t.shape[0] for t in tokens)
        padded = torch.zeros(len(tokens), width, tokens[0].shape[1])
        mask = torch.zeros(len(tokens), width, dtype=torch.bool)
        for i, t in enumerate(tokens):
            padded[i, : t.shape[0]] = t
            mask[i, : t.shape[0]] = True
        return Encoded(torch.stack(pooled), padded, mask)


@ENCODERS.register("log_mel")
class LogMel(_AudioEncoder):
    """Log-mel spectrogram (torch.stft + own mel filterbank; options sample_rate, n_mels, n_fft, hop, max_tokens, standardize)."""

    name = "log_mel"

    @property
    def version(self) -> str:  # type: ignore[override]
        return f"log_mel:v3:{self._pooling()}:{self.sample_rate}:{self.n_mels}:{self.n_fft}:{self.hop}:{self.max_tokens}"


@ENCODERS.register("mfcc")
class MFCC(_AudioEncoder):
    """MFCCs: orthonormal DCT-II of the log-mel bands (option n_mfcc, default 20, plus those of log_mel)."""

    name = "mfcc"

    def __init__(self, *, n_mfcc: int = 20, **log_mel_options: Any) -> None:
        super().__init__(**log_mel_options)
        self.n_mfcc = int(n_mfcc)

    @property
    def version(self) -> str:  # type: ignore[override]
        return f"mfcc:v3:{self._pooling()}:{self.sample_rate}:{self.n_mfcc}:{self.n_mels}:{self.n_fft}:{self.hop}:{self.max_tokens}"

    def _frames(self, samples):
        return super()._frames(samples) @ dct_matrix(self.n_mfcc, self.n_mels).T
