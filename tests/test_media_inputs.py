"""Images and audio as raw encoded bytes or as file paths in a column (issue 13, item 3): real
PNG/JPEG/WAV/FLAC files and parquet tables written here, a card in a temporary folder, relative
paths resolved against the card's folder whatever the current directory."""

from __future__ import annotations

import io
import math
import re
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark.data.cards import load_card
from benchmark.data.loading import DataError
from benchmark.features.catalog import get_encoder
from benchmark.features.tensors import build_features

SPLITS = ("train", "validation", "test")


def png_bytes(colour, size=16, fmt="PNG") -> bytes:
    from PIL import Image

    pixels = np.full((size, size, 3), 255, dtype=np.uint8)
    pixels[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = colour
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def sine(freq: float, rate: int, seconds: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.5 * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((samples * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def write_dataset(folder: Path, name: str, rows: dict[str, list[dict]], modalities: str) -> Path:
    """One parquet file per split under ``folder/data`` and a card ``folder/<name>.yaml`` naming them
    by relative path; explicit splits keep the rows in their order."""
    import pandas as pd

    (folder / "data").mkdir(parents=True, exist_ok=True)
    for split, records in rows.items():
        pd.DataFrame(records).to_parquet(folder / "data" / f"{split}.parquet")
    files = ", ".join(f"{s}: data/{s}.parquet" for s in rows)
    card = folder / f"{name}.yaml"
    card.write_text(f"name: {name}\nsource:\n  local: {{format: parquet, data_files: {{{files}}}}}\n"
                    f"label: label\nmodalities:\n{modalities}")
    return card


COLOURS = [(220, 30, 30), (30, 200, 40), (30, 60, 220)]


def test_png_bytes_and_relative_paths_give_the_same_features(fusebench_home, monkeypatch):
    """A column of raw PNG bytes and a column of paths relative to the card's folder (read from
    another current directory) give the very features of the images themselves."""
    folder = fusebench_home / "somewhere" / "mycard"
    (folder / "images").mkdir(parents=True)
    rows = {}
    for split in SPLITS:
        rows[split] = []
        for i in range(6):
            data = png_bytes(COLOURS[i % 3])
            (folder / "images" / f"{split}{i}.png").write_bytes(data)
            rows[split].append({"png": data, "path": f"images/{split}{i}.png", "label": i % 3})
    card_path = write_dataset(folder, "media", rows,
                              "  as_bytes: {column: png, encoder: raw_pixels, size: 16, patch: 4, channels: 3}\n"
                              "  as_path: {column: path, encoder: raw_pixels, size: 16, patch: 4, channels: 3}\n")
    elsewhere = fusebench_home / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths must not resolve against the current directory
    features = build_features(load_card(card_path), log=lambda *_: None)
    for split in SPLITS:
        tensors = features.splits[split]
        assert torch.equal(tensors.pooled["as_bytes"], tensors.pooled["as_path"])
        assert bool(tensors.available.all())
        # the colour square is there: red rows have a high red channel at the centre
        expected = get_encoder("raw_pixels", size=16, patch=4, channels=3).encode([png_bytes(COLOURS[0])]).pooled
        assert torch.allclose(tensors.pooled["as_path"][0].float(), expected[0], atol=1e-2)


def test_jpeg_bytes_decode_close_to_the_png(fusebench_home):
    encoder = get_encoder("raw_pixels", size=16, patch=4, channels=3)
    png = encoder.encode([png_bytes(COLOURS[1], size=32)]).pooled  # (1, 768)
    jpeg = encoder.encode([png_bytes(COLOURS[1], size=32, fmt="JPEG")]).pooled
    other = encoder.encode([png_bytes(COLOURS[2], size=32)]).pooled
    assert (png - jpeg).abs().mean() < 0.05 < (png - other).abs().mean()


def test_efficientnet_reads_png_bytes(fusebench_home):
    """The pretrained encoder takes raw bytes too (today's refusal: 'expected an image, got bytes')."""
    encoded = get_encoder("efficientnet_lite0").encode([png_bytes(COLOURS[0], size=32)])
    assert encoded.pooled.shape == (1, 1280) and torch.isfinite(encoded.pooled).all()


def test_wav_at_8k_and_44k_resampled_to_the_encoders_rate(tmp_path):
    """The same tone in WAV files at 8 kHz and 44.1 kHz becomes the same 16 kHz signal and
    nearly the same log-mel features; a different tone does not."""
    for rate in (8000, 44100):
        (tmp_path / f"a{rate}.wav").write_bytes(wav_bytes(sine(440, rate), rate))
    (tmp_path / "b.wav").write_bytes(wav_bytes(sine(1500, 8000), 8000))
    encoder = get_encoder("log_mel", sample_rate=16000, n_mels=32, standardize=False)
    encoder.base_dir = tmp_path
    assert len(encoder._samples("a8000.wav", 0)) == len(encoder._samples("a44100.wav", 0)) == 8000
    pooled = encoder.encode(["a8000.wav", "a44100.wav", "b.wav"]).pooled[:, :32]  # (3, 32): the means over frames
    low_bands = slice(0, 24)  # below 4 kHz, where an 8 kHz file has content
    same = (pooled[0, low_bands] - pooled[1, low_bands]).abs().mean()
    different = (pooled[0, low_bands] - pooled[2, low_bands]).abs().mean()
    assert same < 0.1 * different, (same, different)
    # the tone's band is the loudest one in both
    assert int(pooled[0].argmax()) == int(pooled[1].argmax())


def test_flac_bytes_match_the_wav(tmp_path):
    soundfile = pytest.importorskip("soundfile")
    samples = sine(440, 22050)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, 22050, format="FLAC", subtype="PCM_16")
    encoder = get_encoder("mfcc", sample_rate=16000, standardize=False)
    flac, wav = encoder.encode([buffer.getvalue(), {"bytes": wav_bytes(samples, 22050), "path": None}]).pooled
    assert torch.allclose(flac, wav, atol=1e-2)


def test_unreadable_and_missing_files_name_the_row_and_the_file(fusebench_home):
    folder = fusebench_home / "bad"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "ok.png").write_bytes(png_bytes(COLOURS[0]))
    (folder / "images" / "broken.png").write_bytes(b"not an image at all")
    rows = {s: [{"path": "images/ok.png", "label": i % 2} for i in range(4)] for s in SPLITS}
    rows["validation"][2]["path"] = "images/broken.png"
    card = write_dataset(folder, "bad", rows, "  image: {column: path, encoder: raw_pixels, size: 16, patch: 4}\n")
    with pytest.raises(DataError, match=r"split 'validation'.*row 2: unreadable or corrupted file .*broken\.png"):
        build_features(load_card(card), log=lambda *_: None)

    rows["validation"][2]["path"] = "images/nowhere.png"
    card = write_dataset(folder, "bad", rows, "  image: {column: path, encoder: raw_pixels, size: 16, patch: 4}\n")
    with pytest.raises(DataError, match=r"row 2: file not found: .*nowhere\.png.*add 'missing: allowed'"):
        build_features(load_card(card), log=lambda *_: None)


def test_audio_file_that_is_not_audio_names_the_row(tmp_path):
    (tmp_path / "noise.wav").write_bytes(b"RIFF....garbage")
    encoder = get_encoder("log_mel", standardize=False)
    encoder.base_dir = tmp_path
    from benchmark.features.base import EncodingError

    with pytest.raises(EncodingError, match=r"row 1: unreadable or corrupted file .*noise\.wav"):
        encoder.encode([sine(440, 16000), "noise.wav"])


def test_a_missing_audio_file_is_called_missing_and_its_row_named_once(fusebench_home):
    folder = fusebench_home / "sounds"
    (folder / "audio").mkdir(parents=True)
    (folder / "audio" / "a.wav").write_bytes(wav_bytes(sine(440, 16000), 16000))
    rows = {s: [{"path": "audio/a.wav", "label": i % 2} for i in range(4)] for s in SPLITS}
    rows["test"][2]["path"] = "audio/nowhere.wav"
    card = write_dataset(folder, "sounds", rows, "  sound: {column: path, encoder: log_mel, standardize: false}\n")
    with pytest.raises(DataError) as error:
        build_features(load_card(card), log=lambda *_: None)
    message = str(error.value)
    assert re.search(r"split 'test'.*row 2: file not found: .*nowhere\.wav.*add 'missing: allowed'", message), message
    assert message.count("row ") == 1 and "corrupted" not in message, message
