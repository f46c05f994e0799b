"""Audio encoders (issue 15, item 2): the hand-made front ends' pooled statistics (mean, sd and
mean |delta| over frames) and their standardisation fitted on the training split only, and the
pretrained ``aisfx`` network whose weights ship in the aisfx wheel. Every clip is a real WAV file
written with soundfile; the end-to-end check goes through a card, parquet files and the feature
cache."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from benchmark.data.cards import load_card
from benchmark.features import cache as feature_cache
from benchmark.features import model_cache
from benchmark.features.audio import log_mel_spectrogram
from benchmark.features.catalog import get_encoder
from benchmark.features.tensors import build_features
from tests.test_media_inputs import write_dataset

soundfile = pytest.importorskip("soundfile")

ENCODERS = {  # name -> (options, pooled width, token width)
    "log_mel": ({"sample_rate": 16000, "n_mels": 32, "max_tokens": 40}, 3 * 32, 32),
    "mfcc": ({"sample_rate": 16000, "n_mfcc": 13, "max_tokens": 40}, 3 * 13, 13),
    "aisfx": ({"max_tokens": 8}, 512, 512),
}


def clip(freq: float, seconds: float, rate: int, seed: int, gain: float = 0.4) -> np.ndarray:
    """A tone with a little noise and an amplitude envelope (so frames differ over time)."""
    t = np.arange(int(rate * seconds)) / rate
    noise = np.random.default_rng(seed).standard_normal(t.size)
    envelope = 0.5 + 0.5 * np.sin(2 * math.pi * 2.0 * t + seed)
    return (gain * envelope * np.sin(2 * math.pi * freq * t) + 0.02 * noise).astype(np.float32)


def write_clips(folder, prefix: str, specs) -> list[str]:
    """WAV files written by soundfile (PCM 16-bit), at 16 kHz and 22.05 kHz; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (freq, seconds, gain) in enumerate(specs):
        rate = 16000 if i % 2 else 22050
        path = folder / f"{prefix}{i}.wav"
        soundfile.write(str(path), clip(freq, seconds, rate, seed=i, gain=gain), rate, subtype="PCM_16")
        paths.append(str(path))
    return paths


TRAIN = [(f, s, 0.4) for f, s in zip((220, 330, 440, 660, 880, 1320, 1760, 2640, 300, 500),
                                      (0.3, 0.6, 0.9, 0.4, 1.2, 0.5, 0.7, 0.35, 3.0, 0.8))]
TEST = [(f, 0.5, 0.9) for f in (3000, 3500, 4000)]  # louder and higher than anything in train


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_audio_encoder_on_wav_files_fits_standardisation_on_train_only(name, tmp_path, fusebench_home):
    options, pooled_width, token_width = ENCODERS[name]
    train = write_clips(tmp_path, "train", TRAIN)
    test = write_clips(tmp_path, "test", TEST)
    encoder = get_encoder(name, **options)
    with pytest.raises(RuntimeError, match="fit"):
        encoder.encode(train[:1])  # standardising needs the training statistics first
    encoder.fit(train)
    fitted = encoder.state()
    out = encoder.encode(train)
    assert out.pooled.shape == (len(train), pooled_width)
    assert out.tokens.shape[0] == len(train) and out.tokens.shape[2] == token_width and out.tokens.shape[1] == options["max_tokens"]
    assert torch.isfinite(out.pooled).all() and torch.isfinite(out.tokens).all()
    assert not out.mask[0].all() and out.mask[8].all()  # the 0.3 s clip has fewer tokens than the 3 s one (31 frames; aisfx: 2 steps of 186 ms)
    assert float(out.tokens[~out.mask].abs().sum()) == 0.0  # padding stays zero after scaling
    varying = out.pooled.std(0, unbiased=False) > 1e-3  # (P,): dimensions not constant on train
    assert varying.sum() > pooled_width // 2
    assert out.pooled.mean(0).abs().max() < 1e-4  # train: mean 0 ...
    assert torch.allclose(out.pooled.std(0, unbiased=False)[varying], torch.ones(int(varying.sum())), atol=1e-3)  # ... sd 1
    real = out.tokens[out.mask]  # (R, D): every real training token
    assert real.mean(0).abs().max() < 1e-4

    # test: scaled with the training statistics, never re-fitted on its own rows
    raw = get_encoder(name, **options, standardize=False)
    raw_train, raw_test = raw.encode(train).pooled.double(), raw.encode(test).pooled.double()
    sd = raw_train.std(0, unbiased=False)
    expected = ((raw_test - raw_train.mean(0)) / torch.where(sd > 1e-6, sd, torch.ones_like(sd))).float()
    scaled_test = encoder.encode(test)
    assert torch.allclose(scaled_test.pooled, expected, atol=1e-3)
    assert scaled_test.pooled.mean(0).abs().max() > 0.5  # a re-fit on test would centre it at 0
    assert encoder.state() == fitted  # encoding test changed no statistics

    # the statistics are part of the cache key: other training clips, another key
    other = get_encoder(name, **options)
    other.fit(train[:6])
    assert other.state() != fitted


def test_training_statistics_are_cached_and_refitted_when_a_clip_changes(tmp_path, fusebench_home, monkeypatch):
    train = write_clips(tmp_path, "train", TRAIN[:4])
    first = get_encoder("log_mel", sample_rate=16000, n_mels=32)
    first.fit(train)
    stored = sorted(p.name for p in feature_cache.stats_dir().glob("*.safetensors"))
    assert len(stored) == 1

    def no_encoding(self, values, progress=None):
        raise AssertionError("fitted again although the training clips did not change")

    cached = get_encoder("log_mel", sample_rate=16000, n_mels=32)
    with monkeypatch.context() as patch:
        patch.setattr(type(cached), "_encode_raw", no_encoding)
        cached.fit(train)  # from the stored statistics, no clip decoded
    assert cached.state() == first.state()
    soundfile.write(train[0], clip(5000, 0.5, 16000, seed=9), 16000, subtype="PCM_16")  # one clip changes
    refitted = get_encoder("log_mel", sample_rate=16000, n_mels=32)
    refitted.fit(train)
    assert refitted.state() != first.state()
    assert len(list(feature_cache.stats_dir().glob("*.safetensors"))) == 2
    assert feature_cache.list_entries() == []  # statistics are no feature entries ...
    feature_cache.clear()
    assert list(feature_cache.stats_dir().glob("*")) == []  # ... but `cache clear` deletes them


def test_pooled_layout_is_mean_sd_and_mean_abs_delta(tmp_path):
    samples = clip(440, 0.7, 16000, seed=3)
    encoded = get_encoder("log_mel", sample_rate=16000, n_mels=32, standardize=False).encode([samples])
    frames = log_mel_spectrogram(torch.from_numpy(samples), 16000, n_mels=32)  # (F, 32)
    pooled = encoded.pooled[0]  # (96,)
    assert torch.allclose(pooled[:32], frames.mean(0), atol=1e-4)
    assert torch.allclose(pooled[32:64], frames.std(0, unbiased=False), atol=1e-4)
    assert torch.allclose(pooled[64:], (frames[1:] - frames[:-1]).abs().mean(0), atol=1e-4)


def test_version_bump_and_standardize_change_the_cache_key():
    def key(encoder) -> str:
        return feature_cache.cache_key(revision="r", split="train", column="audio", encoder=encoder.name,
                                       version=encoder.version, options={}, state={}, format=2)

    log_mel = get_encoder("log_mel")
    assert log_mel.version.startswith("log_mel:v3:mean+sd+absdelta:z-train")
    # the version before issue 15 (pooled = mean over frames, not standardised)
    before = feature_cache.cache_key(revision="r", split="train", column="audio", encoder="log_mel",
                                     version="log_mel:v2:16000:64:400:160:32", options={}, state={}, format=2)
    assert key(log_mel) != before
    assert key(log_mel) != key(get_encoder("log_mel", standardize=False))
    assert get_encoder("mfcc").version.startswith("mfcc:v3:")
    assert get_encoder("aisfx").version != get_encoder("aisfx", standardize=False).version


def test_bad_options_name_the_option():
    with pytest.raises(ValueError, match="option 'standardize': expected true or false"):
        get_encoder("log_mel", standardize="yes")
    with pytest.raises(ValueError, match="option 'sample_rate'.*fixed front end"):
        get_encoder("aisfx", sample_rate=16000)


def test_aisfx_network_is_loaded_once_per_process(tmp_path):
    from benchmark.features.audio_pretrained import checkpoint_path

    paths = write_clips(tmp_path, "c", TRAIN[:2])
    key = ("aisfx", str(checkpoint_path()))
    model_cache.clear()
    before = model_cache.loads[key]
    for _ in range(2):  # two encoders (as for two splits or two datasets)
        get_encoder("aisfx", standardize=False).encode(paths)
    assert model_cache.loads[key] == before + 1


def test_build_features_standardises_with_the_training_split(fusebench_home):
    """Through a card: train features are z-scored (mean 0, sd 1), test is shifted by its own
    difference from train (its statistics were not fitted), and both are cached."""
    folder = fusebench_home / "cards"
    train = write_clips(folder / "audio", "train", TRAIN * 2)
    test = write_clips(folder / "audio", "test", TEST * 2)
    rows = {"train": [{"sound": p, "label": i % 2} for i, p in enumerate(train)],
            "validation": [{"sound": p, "label": i % 2} for i, p in enumerate(train[:4])],
            "test": [{"sound": p, "label": i % 2} for i, p in enumerate(test)]}
    card = write_dataset(folder, "tones", rows,
                         "  audio: {column: sound, encoder: mfcc, sample_rate: 16000, n_mfcc: 13, max_tokens: 4}\n")
    features = build_features(load_card(card), log=lambda *_: None)
    pooled = {s: features.splits[s].pooled["audio"].float() for s in ("train", "test")}  # (N, 39) each
    assert pooled["train"].shape[1] == 39
    assert pooled["train"].mean(0).abs().max() < 1e-2  # fp16 cache
    varying = pooled["train"].std(0, unbiased=False) > 1e-2
    assert torch.allclose(pooled["train"].std(0, unbiased=False)[varying], torch.ones(int(varying.sum())), atol=1e-2)
    assert pooled["test"].mean(0).abs().max() > 0.5
    again = build_features(load_card(card), log=lambda *_: None)
    assert again.cache_hits == 3 and again.cache_misses == 0


def test_aisfx_without_its_package_says_how_to_install_it(monkeypatch, tmp_path):
    import benchmark.features.audio_pretrained as pretrained

    monkeypatch.setattr(pretrained.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match=r'aisfx package .*pip install --no-deps "aisfx==0\.1\.2"'):
        get_encoder("aisfx", standardize=False).encode(write_clips(tmp_path, "c", TRAIN[:1]))


def test_fitting_and_encoding_the_training_split_reads_each_clip_once(tmp_path, fusebench_home, monkeypatch):
    """fit computes the statistics from the training clips' raw encoding and keeps it; encoding the
    same clips then reuses it (the training split is decoded and encoded once, not twice)."""
    train = write_clips(tmp_path, "train", TRAIN[:4])
    encoder = get_encoder("log_mel", sample_rate=16000, n_mels=32)
    calls: list[int] = []
    real = type(encoder)._encode_raw
    monkeypatch.setattr(type(encoder), "_encode_raw",
                        lambda self, values, progress=None: calls.append(len(values)) or real(self, values, progress))
    encoder.fit(train)
    once = encoder.encode(train)
    assert calls == [4]
    again = encoder.encode(train)  # a second call encodes again (nothing is held after the first)
    assert calls == [4, 4] and torch.equal(once.pooled, again.pooled)
    encoder.encode(train[:2])
    assert calls == [4, 4, 2]
