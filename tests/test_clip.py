"""CLIP for online users (issue 15, item 3), tested offline with a tiny randomly initialised CLIP
(tests/clip_tiny.py) named by its folder: the ``hf-clip:`` encoder's image and text shapes, the
zero-shot baseline's predictions, and a real bench run (MLflow SQLite store, Optuna) whose report
shows the zero-shot CLIP reference row."""

from __future__ import annotations

import os
import re

import pytest
import torch

from benchmark.data.cards import load_card
from benchmark.data.loading import DataError
from benchmark.features import model_cache
from benchmark.features.catalog import get_encoder
from benchmark.features.clip import prompt_text
from benchmark.features.tensors import build_features, fold_splits
from benchmark.vocabulary import zero_shot_metric
from benchmark.train.tasks import Task
from benchmark.train.zero_shot import zero_shot_outputs, zero_shot_scores
from tests.clip_tiny import save_tiny_clip
from tests.test_media_inputs import COLOURS, png_bytes, write_dataset

NAMES = ("red", "green", "blue")
SIZES = {"train": 25, "validation": 9, "test": 9}  # one more "red": the majority class is not class 0


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return save_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip")


def clip_card(folder, model, missing_image_row: int | None = None):
    """Image (PNG bytes) + caption; label = colour name. ``missing_image_row``: that test row has no image."""
    rows = {}
    for split, n in SIZES.items():
        rows[split] = []
        for i in range(n):
            label = i % 3
            picture = None if split == "test" and i == missing_image_row else png_bytes(COLOURS[label])
            rows[split].append({"picture": picture, "caption": f"a photo of {NAMES[label] if i % 2 else 'a'} thing",
                                "label": NAMES[label]})
    modalities = (f"  image: {{column: picture, encoder: 'hf-clip:{model}', input: image}}\n"
                  f"  text: {{column: caption, encoder: 'hf-clip:{model}', input: text}}\n")
    return write_dataset(folder, "clipped", rows, modalities)


def test_encoder_shapes_for_image_and_text_loaded_once(tiny_clip):
    from PIL import Image

    model_cache.clear()
    image = get_encoder(f"hf-clip:{tiny_clip}", input="image")
    encoded = image.encode([Image.new("RGB", (40, 30), c) for c in COLOURS])
    assert encoded.pooled.shape == (3, 16)  # projection_dim
    assert encoded.tokens.shape == (3, 1 + (32 // 8) ** 2, 24)  # class token + 4x4 patches, vision width
    assert bool(encoded.mask.all())
    assert torch.allclose(encoded.pooled.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert not torch.allclose(encoded.pooled[0], encoded.pooled[1])  # different images, different embeddings

    text = get_encoder(f"hf-clip:{tiny_clip}", input="text")
    encoded = text.encode(["a red photo", "a photo of a blue thing and more words"])
    assert encoded.pooled.shape == (2, 16)
    assert encoded.tokens.shape[0] == 2 and encoded.tokens.shape[2] == 32  # text width
    lengths = encoded.mask.sum(1)
    assert lengths[0] < lengths[1] == encoded.tokens.shape[1]  # padded to the longest, masked
    assert model_cache.loads[("hf-clip", str(tiny_clip), None)] == 1  # both towers from one load


def test_encoder_needs_input_option_and_names_unloadable_model(tmp_path):
    with pytest.raises(ValueError, match="input: image"):
        get_encoder(f"hf-clip:{tmp_path}")
    with pytest.raises(DataError, match=r"hf-clip:.*no-model.*save_pretrained"):
        get_encoder(f"hf-clip:{tmp_path / 'no-model'}", input="text").encode(["a"])


def test_zero_shot_is_argmax_cosine_to_class_prompts(tiny_clip, fusebench_home):
    card = load_card(clip_card(fusebench_home / "cards", tiny_clip, missing_image_row=4))
    features = build_features(card, log=lambda *_: None)
    assert features.zero_shot is not None and features.zero_shot.modality == "image"
    assert features.class_names == sorted(NAMES)
    # the prompts are the class names through the text tower
    expected = get_encoder(f"hf-clip:{tiny_clip}", input="text").encode(
        [prompt_text(n) for n in features.class_names]).pooled
    assert torch.allclose(features.zero_shot.prompts, expected, atol=1e-5)
    test, train = features.splits["test"], features.splits["train"]
    outputs = zero_shot_outputs(features, test, train)
    assert outputs.shape == (SIZES["test"], 3)
    cosine = test.pooled["image"].float() @ expected.T  # (N, C), both unit length
    there = test.available[:, features.modalities.index("image")]
    assert not bool(there[4]) and int(there.sum()) == SIZES["test"] - 1
    assert torch.equal(outputs[there].argmax(1), cosine[there].argmax(1))
    majority = int(torch.bincount(train.labels).argmax())
    assert majority == features.class_names.index("red") != 0  # an absent image (cosine 0 everywhere) would say 0
    assert int(outputs[4].argmax()) == majority  # no image: the training majority class
    scores = zero_shot_scores(features, features.splits, Task())
    pred = outputs.argmax(1)
    assert scores["accuracy"] == pytest.approx(float((pred == test.labels).float().mean()))
    assert set(scores) == {"accuracy", "macro_f1"}
    # a k-fold cell scores the zero-shot baseline on its own fold's test rows
    folds = fold_splits(features, 3, 1, 0)
    fold_pred = zero_shot_outputs(features, folds["test"], folds["train"]).argmax(1)
    assert zero_shot_scores(features, folds, Task())["accuracy"] == pytest.approx(
        float((fold_pred == folds["test"].labels).float().mean()))
    assert len(folds["test"]) != len(test)
    # prompts are cached: a second build needs no model
    model_cache.clear()
    again = build_features(card, log=lambda *_: None)
    assert again.cache_misses == 0 and torch.allclose(again.zero_shot.prompts, features.zero_shot.prompts)
    assert not any(key[0] == "hf-clip" for key in model_cache._models)


def test_no_zero_shot_without_a_clip_image_modality(tiny_clip, fusebench_home):
    rows = {s: [{"caption": f"{NAMES[i % 3]} text", "label": NAMES[i % 3]} for i in range(n)] for s, n in SIZES.items()}
    card = write_dataset(fusebench_home / "cards", "textonly", rows,
                         f"  text: {{column: caption, encoder: 'hf-clip:{tiny_clip}', input: text}}\n")
    features = build_features(load_card(card), log=lambda *_: None)
    assert features.zero_shot is None
    assert zero_shot_scores(features, features.splits, Task()) == {}


def test_bench_with_tiny_clip_logs_zero_shot_and_reports_its_row(tiny_clip, fusebench_home, capsys):
    from mlflow.tracking import MlflowClient

    from benchmark.cli import main
    from benchmark.reporting import build_report
    from benchmark.vocabulary import EXPERIMENT

    clip_card(fusebench_home / "cards", tiny_clip)
    args = ["bench", "--profile", "smoke", "--datasets", "clipped", "--strategies", "concat,cross_attention",
            "--trials", "1", "--epochs", "3", "--patience", "2", "--seeds", "0", "--dropout", "0.3", "--device", "cpu"]
    assert main(args) == 0, capsys.readouterr()
    uri = os.environ["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id],
                              "tags.`fusebench.kind` = 'cell'")
    assert len(runs) == 2
    logged = {run.data.metrics[zero_shot_metric("accuracy")] for run in runs}
    assert len(logged) == 1  # the same baseline with every cell of the dataset
    zero_shot = logged.pop()
    assert 0.0 <= zero_shot <= 1.0
    for run in runs:
        assert run.data.tags["fusebench.status"] == "ok"
        assert 0.0 <= run.data.metrics[zero_shot_metric("macro_f1")] <= 1.0
        assert 0.0 <= run.data.metrics["test_accuracy"] <= 1.0

    folder, text = build_report(uri, out_root=fusebench_home / "reports")
    assert (folder / "report.md").read_text() == text
    row = next((line for line in text.splitlines() if "zero-shot CLIP (reference)" in line), None)
    assert row is not None, "no zero-shot CLIP row in the leaderboard"
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[0] == "ref." and float(cells[4]) == pytest.approx(zero_shot, abs=0.0005)
    assert re.search(r"zero-shot CLIP \(no training", text)
