"""Naturally missing modalities (issue 13, item 6): null cells, empty paths and (with
``missing: allowed``) missing files make a row's modality absent; zeros in the features,
``present`` cached with them, ``SplitTensors.available`` ANDed into every presence mask in
training and evaluation, and the counts of rows per combination logged with every cell run.
Real parquet, PNG and WAV files; a real MLflow store for the end-to-end run."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from benchmark.data.cards import CardError, load_card
from benchmark.data.loading import DataError
from benchmark.features import cache as feature_cache
from benchmark.features.tensors import build_features
from benchmark.vocabulary import data_rows_metric
from benchmark.train.batching import random_presence, subset_presence
from benchmark.train.evaluation import References, evaluate, logits_of
from benchmark.train.model import build_model
from strategies import discover
from strategies.search_space import defaults
from tests.test_media_inputs import COLOURS, png_bytes, sine, wav_bytes, write_dataset

SPLITS = ("train", "validation", "test")
SIZES = {"train": 36, "validation": 12, "test": 12}
TONES = (300.0, 700.0, 1500.0)
MODALITIES = ("  audio: {column: sound, encoder: log_mel, sample_rate: 8000, n_mels: 16, max_tokens: 4}\n"
              "  image: {column: picture, encoder: raw_pixels, size: 16, patch: 4, channels: 3, missing: allowed}\n")


def absence(i: int) -> str:
    """Which modality row i lacks, and how: 0/5 none; 1 a null image; 2 a null audio; 3 a missing
    image file; 4 an empty image path."""
    return {1: "null image", 2: "null audio", 3: "missing file", 4: "empty path"}.get(i % 6, "")


def make_gappy(folder, modalities: str = MODALITIES, both_null_row: int | None = None):
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for k, colour in enumerate(COLOURS):
        (folder / "images" / f"c{k}.png").write_bytes(png_bytes(colour))
    rows = {}
    for split in SPLITS:
        rows[split] = []
        for i in range(SIZES[split]):
            label = i % 3
            gap = absence(i)
            picture = {"null image": None, "missing file": "images/gone.png", "empty path": ""}.get(gap, f"images/c{label}.png")
            sound = None if gap == "null audio" else wav_bytes(sine(TONES[label], 8000, 0.25), 8000)
            if split == "train" and i == both_null_row:
                picture = sound = None
            rows[split].append({"picture": picture, "sound": sound, "label": label})
    return write_dataset(folder, "gappy", rows, modalities)


def expected_available(split: str) -> torch.Tensor:
    """bool (N, 2): columns audio, image (sorted)."""
    gaps = [absence(i) for i in range(SIZES[split])]
    return torch.tensor([[g != "null audio", g not in ("null image", "missing file", "empty path")] for g in gaps])


@pytest.fixture
def gappy_card(fusebench_home):
    return make_gappy(fusebench_home / "cards")


def test_null_cells_empty_paths_and_allowed_missing_files_are_absent_and_cached(gappy_card):
    features = build_features(load_card(gappy_card), log=lambda *_: None)
    assert features.cache_misses == 6
    for split in SPLITS:
        tensors = features.splits[split]
        assert torch.equal(tensors.available, expected_available(split))
        absent_image = ~tensors.available[:, 1]
        assert bool(absent_image.any()) and float(tensors.pooled["image"][absent_image].abs().sum()) == 0.0
        assert float(tensors.pooled["image"][~absent_image].abs().sum()) > 0
        absent_audio = ~tensors.available[:, 0]
        assert float(tensors.tokens["audio"][absent_audio].abs().sum()) == 0.0
        assert bool(tensors.token_mask["audio"][absent_audio, 0].all())  # one valid (zero) token
    again = build_features(load_card(gappy_card), log=lambda *_: None)
    assert again.cache_hits == 6 and again.cache_misses == 0
    assert torch.equal(again.splits["test"].available, expected_available("test"))
    entries = feature_cache.list_entries()
    assert len(entries) == 6
    assert all("present" in feature_cache.load_entry(e["key"]) for e in entries)
    # data_rows counts: train has 36 rows, 6 of each absence kind
    counts = features.data_row_counts()
    assert counts[data_rows_metric("train", ["audio", "image"])] == 12
    assert counts[data_rows_metric("train", ["audio"])] == 18  # null image, missing file, empty path
    assert counts[data_rows_metric("train", ["audio"])] + counts[data_rows_metric("train", ["image"])] + \
        counts[data_rows_metric("train", ["image", "audio"])] == 36
    assert data_rows_metric("test", ["image", "audio"]) == "data_rows.test.audio-image"


def test_missing_file_without_missing_allowed_names_row_file_and_the_remedy(fusebench_home):
    card = make_gappy(fusebench_home / "cards", MODALITIES.replace(", missing: allowed", ""))
    with pytest.raises(DataError, match=r"split 'train'.*modality 'image'.*row 3: file not found: .*gone\.png.*"
                                        r"missing: allowed"):
        build_features(load_card(card), log=lambda *_: None)


def test_missing_field_takes_allowed_only(fusebench_home):
    card = make_gappy(fusebench_home / "cards", MODALITIES.replace("missing: allowed", "missing: yes"))
    with pytest.raises(CardError, match=r"modalities\.image\.missing.*expected 'allowed'"):
        load_card(card)


def test_a_row_with_no_modality_is_an_error_naming_it(fusebench_home):
    card = make_gappy(fusebench_home / "cards", both_null_row=6)
    with pytest.raises(DataError, match=r"split 'train': row 6 has no modality present"):
        build_features(load_card(card), log=lambda *_: None)


def test_random_presence_never_shows_an_absent_modality_and_keeps_one():
    generator = torch.Generator().manual_seed(0)
    available = torch.rand(500, 3, generator=generator) > 0.5
    available[~available.any(1), 2] = True  # (500, 3), every row holds one
    present = random_presence(500, 3, 0.6, generator, available=available)  # (500, 3)
    assert not bool((present & ~available).any())
    assert bool(present.any(1).all())
    # rows holding one modality only always keep it
    single = available.sum(1) == 1
    assert torch.equal(present[single], available[single])
    # with everything available, the draws are those of a complete dataset (seeds reproduce)
    a = random_presence(64, 3, 0.5, torch.Generator().manual_seed(3))
    b = random_presence(64, 3, 0.5, torch.Generator().manual_seed(3), available=torch.ones(64, 3, dtype=torch.bool))
    assert torch.equal(a, b)


def _strategies_for_two():
    registry = discover()
    names = []
    for name in registry.names():
        cls = registry.get(name)
        if cls.min_modalities <= 2 and (cls.max_modalities is None or cls.max_modalities >= 2):
            names.append(name)
    return registry, names


def test_absent_rows_get_the_same_logits_whatever_their_zeroed_features_hold(gappy_card):
    """Evaluation ANDs the data's presence into the mask: noise put into the features of rows whose
    modality is null does not change any logit, for every strategy."""
    features = build_features(load_card(gappy_card), log=lambda *_: None)
    split = features.splits["test"]
    registry, names = _strategies_for_two()
    assert len(names) >= 5
    noisy = _with_noise_where_absent(split)
    full = subset_presence(len(split), features.modalities, tuple(features.modalities), "cpu")
    for name in names:
        model = build_model(name, features, defaults(registry.get(name).search_space), seed=0).eval()
        before = logits_of(model, split, features.modalities, full)
        after = logits_of(model, noisy, features.modalities, full)
        assert torch.allclose(before, after, atol=1e-4), (name, (before - after).abs().max())
    # the check can fail: fed straight to a model with every modality marked present, the noise shows
    model = build_model("concat", features, defaults(registry.get("concat").search_space), seed=0).eval()
    with torch.no_grad():
        clean = model({m: split.pooled[m].float() for m in features.modalities}, full)
        dirty = model({m: noisy.pooled[m].float() for m in features.modalities}, full)
    assert not torch.allclose(clean, dirty, atol=1e-4)


def _with_noise_where_absent(split):
    from benchmark.features.tensors import SplitTensors

    pooled, tokens = {}, {}
    for j, m in enumerate(sorted(split.pooled)):
        absent = ~split.available[:, j]  # (N,)
        pooled[m] = split.pooled[m].clone()
        pooled[m][absent] = (torch.randn_like(pooled[m][absent].float()) * 100).to(pooled[m].dtype)
        tokens[m] = split.tokens[m].clone()
        tokens[m][absent] = (torch.randn_like(tokens[m][absent].float()) * 100).to(tokens[m].dtype)
    return SplitTensors(pooled, tokens, dict(split.token_mask), split.labels, split.available)


def test_subset_scores_count_only_rows_holding_the_subset(gappy_card):
    features = build_features(load_card(gappy_card), log=lambda *_: None)
    split = features.splits["test"]
    model = build_model("concat", features, defaults(discover().get("concat").search_space), seed=0).eval()
    references = References.of(features.splits["train"].labels, split.labels, features.num_classes)
    result = evaluate(model, split, features.modalities, references, curve=False)
    for j, m in enumerate(features.modalities):
        rows = split.available[:, j]  # rows whose data holds m
        pred = logits_of(model, split, features.modalities,
                         subset_presence(len(split), features.modalities, (m,), "cpu")).argmax(dim=-1)  # (N,)
        expected = float((pred[rows] == split.labels[rows]).float().mean())
        assert result.subset_accuracy[m] == pytest.approx(expected)
        assert int(rows.sum()) < len(split)


@pytest.mark.slow
def test_bench_with_null_cells_trains_and_logs_data_rows(gappy_card, fusebench_home, capsys):
    from mlflow.tracking import MlflowClient

    from benchmark.cli import main
    from benchmark.vocabulary import EXPERIMENT

    args = ["bench", "--profile", "smoke", "--datasets", "gappy", "--strategies", "concat,cross_attention",
            "--trials", "1", "--epochs", "10", "--patience", "2", "--seeds", "0", "--dropout", "0.3", "--device", "cpu"]
    assert main(args) == 0, capsys.readouterr()
    client = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], "tags.`fusebench.kind` = 'cell'")
    assert len(runs) == 2
    for run in runs:
        m = run.data.metrics
        assert run.data.tags["fusebench.status"] == "ok"
        for split in SPLITS:
            available = expected_available(split)
            both = int(available.all(1).sum())
            assert m[f"data_rows.{split}.audio-image"] == both
            assert m[f"data_rows.{split}.audio"] == int((available[:, 0] & ~available[:, 1]).sum())
            assert m[f"data_rows.{split}.image"] == int((~available[:, 0] & available[:, 1]).sum())
        assert np.isfinite(m["test_accuracy"]) and 0.0 <= m["test_accuracy"] <= 1.0
        assert "test_accuracy_subset.image" in m and "test_accuracy_subset.audio" in m
