"""Tabular, raw-pixel, trainable-CNN and audio encoders (no pretrained weights needed)."""

from __future__ import annotations

import io
import math
import wave

import numpy as np
import torch

from benchmark.features.catalog import get_encoder
from benchmark.features.image import image_to_patches, patches_to_image


def test_tabular_fits_on_train_only():
    import datasets as hf

    train = hf.Dataset.from_dict({"age": [20, 30, 40, None], "dept": ["a", "b", "a", None]})
    encoder = get_encoder("tabular", columns=["age", "dept"])
    encoder.fit_columns(train, ["age", "dept"])
    assert encoder.numeric["age"][0] == 30.0 and encoder.categories["dept"] == ["a", "b"]
    out = encoder.encode([{"age": 30, "dept": "b"}, {"age": None, "dept": "zzz"}, {"age": 50, "dept": "a"}])
    assert out.pooled.shape == (3, 4) and out.tokens.shape == (3, 2, encoder.token_width) and out.mask.all()
    assert out.pooled[0].tolist() == [0.0, 0.0, 0.0, 1.0]  # mean age -> z 0; 'b' one-hot
    assert out.pooled[1].tolist() == [0.0, 1.0, 0.0, 0.0]  # missing flag; unseen category all-zero
    assert out.pooled[2, 0] > 0  # 50 standardised with the *train* statistics
    # one token per column, of a fixed width: equal values give equal tokens, the identity code differs by column
    assert torch.equal(out.tokens[0, 1], encoder.encode([{"age": 1, "dept": "b"}]).tokens[0, 1])
    assert not torch.equal(out.tokens[0, 0], out.tokens[2, 0])
    state = encoder.state()
    encoder.fit_columns(hf.Dataset.from_dict({"age": [1, 2], "dept": ["c", "c"]}), ["age", "dept"])
    assert encoder.state() != state  # fitted state enters the cache key


def test_raw_pixels_and_patches_roundtrip():
    from PIL import Image

    image = Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8) * 3)
    encoded = get_encoder("raw_pixels", size=8, patch=4, channels=1).encode([image, image])
    assert encoded.pooled.shape == (2, 64) and encoded.tokens.shape == (2, 4, 16)
    assert encoded.pooled.min() >= -1 and encoded.pooled.max() <= 1
    pixels = encoded.pooled.reshape(2, 1, 8, 8)
    assert torch.equal(image_to_patches(pixels, 4), encoded.tokens)
    assert torch.equal(patches_to_image(encoded.tokens, 1, 8, 4), pixels)


def _trainable_features(n=48):
    from benchmark.features.base import FrontEnd
    from benchmark.features.tensors import FeatureSet, SplitTensors

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    images = torch.rand(n, 1, 8, 8, generator=g) - 0.5
    images[labels == 1, :, :4] += 1.0  # class 1: bright top half
    split = SplitTensors(
        pooled={"img": images.flatten(1), "tab": torch.randn(n, 3, generator=g)},
        tokens={"img": image_to_patches(images, 4), "tab": torch.randn(n, 2, 3, generator=g)},
        token_mask={"img": torch.ones(n, 4, dtype=torch.bool), "tab": torch.ones(n, 2, dtype=torch.bool)},
        labels=labels,
    )
    return FeatureSet("t", ["img", "tab"], ["0", "1"], {"train": split, "validation": split, "test": split},
                      front_ends={"img": FrontEnd("small_cnn", {"size": 8, "patch": 4, "channels": 1, "width": 16})})


def test_small_cnn_is_trained_end_to_end():
    from benchmark.train.evaluation import full_score
    from benchmark.train.model import FusionModel
    from benchmark.train.loop import TrainConfig, train
    from benchmark.train.model import build_model

    features = _trainable_features()
    model = build_model("concat", features, {}, seed=0)
    assert isinstance(model, FusionModel) and model.strategy.input_dims == {"img": 16, "tab": 3}
    assert list(model.encoders) == ["img"] and model.family == "early"
    before = [p.detach().clone() for p in model.encoders["img"].parameters()]
    train(model, features.splits["train"], features.modalities, TrainConfig(epochs=15, modality_dropout=0.0))
    after = list(model.encoders["img"].parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after))  # the CNN itself was updated
    assert full_score(model, features.splits["train"], features.modalities, "accuracy") > 0.9


def test_small_cnn_token_strategy_and_absent_modality():
    from benchmark.train.batching import model_inputs
    from benchmark.train.model import build_model

    features = _trainable_features()
    split = features.splits["train"]
    for strategy in ("concat", "cross_attention"):
        model = build_model(strategy, features, {}, seed=0).eval()
        index = torch.arange(6)
        inputs, mask = model_inputs(split, features.modalities, index, model.consumes_tokens)
        present = torch.tensor([[False, True]] * 6)
        out = model(inputs, present, mask)
        inputs["img"] = inputs["img"] * 0 + 7.0  # values of an absent modality must not matter
        assert torch.allclose(out, model(inputs, present, mask), atol=1e-5)
        assert out.shape == (6, 2)


def _wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes((samples * 32000).astype(np.int16).tobytes())
    return buffer.getvalue()


def test_log_mel_and_mfcc_front_end():
    from benchmark.features.audio import hz_to_mel, mel_filterbank, mel_to_hz

    assert np.allclose(mel_to_hz(hz_to_mel([0.0, 440.0, 4000.0])), [0.0, 440.0, 4000.0])
    bank = mel_filterbank(32, 400, 16000)
    assert bank.shape == (32, 201) and (bank >= 0).all() and (bank.sum(1) > 0).all()
    rate = 16000
    t = np.arange(rate // 2) / rate
    low, high = np.sin(2 * math.pi * 300 * t), np.sin(2 * math.pi * 3000 * t)
    encoder = get_encoder("log_mel", sample_rate=rate, n_mels=32, max_tokens=8, standardize=False)
    out = encoder.encode([{"array": low, "sampling_rate": rate}, {"bytes": _wav_bytes(high, 8000), "path": None},
                          low[:1000].tolist()])
    assert out.pooled.shape == (3, 3 * 32) and out.tokens.shape[0] == 3  # mean, sd, mean |delta| and out.tokens.shape[2] == 32
    assert out.mask[0].all() and not out.mask[2].all()  # the short clip has fewer tokens (padding masked)
    assert out.pooled[0, :32].argmax() < out.pooled[1, :32].argmax()  # 300 Hz peaks in a lower band than 3 kHz
    mfcc = get_encoder("mfcc", sample_rate=rate, n_mfcc=13, standardize=False).encode([low])
    assert mfcc.pooled.shape == (1, 3 * 13) and torch.isfinite(mfcc.tokens).all()


def test_audio_errors_name_the_row():
    import pytest

    from benchmark.features.base import EncodingError

    with pytest.raises(EncodingError, match="row 1: unreadable or corrupted audio"):
        get_encoder("log_mel", standardize=False).encode([[0.0] * 500, {"bytes": b"RIFF garbage", "path": None}])
