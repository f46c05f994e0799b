"""The ``open_clip:`` encoder family (issue 25, item 3), tested offline with a randomly initialised
open_clip RN50 (no pretrained CLIP weights are reachable here; open_clip builds RN50 from its
config and ships its tokenizer): pooled and token shapes of both towers, the feature cache hit on a
second build, the identity following the weights (tag, checkpoint bytes), checkpoints loaded with
weights_only semantics, the zero-shot reference row through the shared code path, and the errors
(unknown architecture, a tag that needs a download offline)."""

from __future__ import annotations

import warnings

import pytest
import torch

from benchmark.cli import main
from benchmark.data.cards import load_card
from benchmark.data.loading import DataError
from benchmark.features import model_cache
from benchmark.features.catalog import get_encoder
from benchmark.features.clip import prompt_text
from benchmark.features.openclip import RandomWeightsWarning
from benchmark.features.tensors import build_features
from benchmark.run.identity import dataset_fingerprint, encoder_version
from benchmark.train.tasks import Task
from benchmark.train.zero_shot import zero_shot_outputs, zero_shot_scores
from tests.test_card_paths import FAST, ours
from tests.test_media_inputs import COLOURS, png_bytes, write_dataset

NAMES = ("red", "green", "blue")
SIZES = {"train": 4, "validation": 2, "test": 3}  # a few images: RN50 at 224 px on the CPU
RN50 = {"pooled": 1024, "grid": 7 * 7, "channels": 2048, "text_width": 512}


@pytest.fixture
def own_cache(fusebench_home, monkeypatch):
    """A feature cache of this test's own (not one $FUSEBENCH_CACHE names): the misses are counted."""
    monkeypatch.setenv("FUSEBENCH_CACHE", str(fusebench_home / "features"))
    return fusebench_home


def colour_card(folder, encoder: str = "open_clip:RN50"):
    rows = {split: [{"picture": png_bytes(COLOURS[i % 3]), "caption": f"a {NAMES[i % 3]} square",
                     "label": NAMES[i % 3]} for i in range(n)] for split, n in SIZES.items()}
    modalities = (f"  image: {{column: picture, encoder: '{encoder}', input: image}}\n"
                  f"  text: {{column: caption, encoder: '{encoder}', input: text}}\n")
    return write_dataset(folder, "coloured", rows, modalities)


def test_random_rn50_shapes_of_both_towers_one_load_one_warning():
    from PIL import Image

    model_cache.clear()
    images = [Image.new("RGB", (40, 30), c) for c in COLOURS]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = get_encoder("open_clip:RN50", input="image").encode(images)
        text = get_encoder("open_clip:RN50", input="text").encode(["a red photo", "a photo of a blue thing and more"])
    random_warnings = [w for w in caught if issubclass(w.category, RandomWeightsWarning)]
    assert len(random_warnings) == 1 and "RANDOM" in str(random_warnings[0].message)
    assert model_cache.loads[("open_clip", "RN50", None, None)] == 1  # both towers from one load

    assert image.pooled.shape == (3, RN50["pooled"])
    assert image.tokens.shape == (3, RN50["grid"], RN50["channels"])  # the 7x7 map before the attention pool
    assert bool(image.mask.all())
    assert torch.allclose(image.pooled.norm(dim=-1), torch.ones(3), atol=1e-5)
    assert not torch.allclose(image.pooled[0], image.pooled[1])

    assert text.pooled.shape == (2, RN50["pooled"])
    assert text.tokens.shape[0] == 2 and text.tokens.shape[2] == RN50["text_width"]
    lengths = text.mask.sum(1)
    assert lengths[0] == 5 and lengths[1] == text.tokens.shape[1] == 10  # start + words + end; padded to the longest

    model_cache.clear()  # random weights are seeded: another process (or a reload) builds the same model
    again = get_encoder("open_clip:RN50", input="text").encode(["a red photo"])
    assert torch.allclose(again.pooled[0], text.pooled[0], atol=1e-5)


def test_features_are_cached_and_zero_shot_row_runs(own_cache):
    fusebench_home = own_cache
    card = load_card(colour_card(fusebench_home / "cards"))
    features = build_features(card, log=lambda *_: None)
    assert features.cache_misses == 6 and features.cache_hits == 0  # 2 modalities x 3 splits
    test = features.splits["test"]
    assert test.pooled["image"].shape == (SIZES["test"], RN50["pooled"])
    assert test.tokens["image"].shape == (SIZES["test"], RN50["grid"], RN50["channels"])
    assert test.pooled["text"].shape == (SIZES["test"], RN50["pooled"])
    assert test.tokens["text"].shape[2] == RN50["text_width"]
    assert features.encoders["image"].startswith("open_clip:RN50@open_clip:RN50:random-seed0")

    # the zero-shot reference: class-name prompts through the same encoder's text tower
    assert features.zero_shot is not None and features.zero_shot.modality == "image"
    expected = get_encoder("open_clip:RN50", input="text").encode([prompt_text(n) for n in features.class_names]).pooled
    assert torch.allclose(features.zero_shot.prompts, expected, atol=1e-4)
    outputs = zero_shot_outputs(features, test, features.splits["train"])
    cosine = test.pooled["image"].float() @ expected.T  # (N, C), both unit length
    assert torch.equal(outputs.argmax(1), cosine.argmax(1))
    scores = zero_shot_scores(features, features.splits, Task())
    assert set(scores) == {"accuracy", "macro_f1"}
    assert scores["accuracy"] == pytest.approx(float((outputs.argmax(1) == test.labels).float().mean()))

    model_cache.clear()
    again = build_features(card, log=lambda *_: None)
    assert again.cache_misses == 0 and again.cache_hits == 6
    assert torch.allclose(again.zero_shot.prompts, features.zero_shot.prompts)
    assert not any(key[0] == "open_clip" for key in model_cache._models)  # features and prompts from the cache


def test_identity_follows_the_weights(fusebench_home):
    first, second, same_bytes = (fusebench_home / name for name in ("a.pt", "b.pt", "copy-of-a.pt"))
    torch.save({"w": torch.zeros(2)}, first)
    torch.save({"w": torch.ones(2)}, second)
    same_bytes.write_bytes(first.read_bytes())
    versions = {label: encoder_version(name, {"input": "image"}) for label, name in [
        ("random", "open_clip:RN50"), ("openai", "open_clip:RN50:openai"), ("yfcc", "open_clip:RN50:yfcc15m"),
        ("a", f"open_clip:RN50:{first}"), ("b", f"open_clip:RN50:{second}"), ("a again", f"open_clip:RN50:{same_bytes}")]}
    assert len({versions[k] for k in ("random", "openai", "yfcc", "a", "b")}) == 5, versions
    assert versions["a"] == versions["a again"]  # the checkpoint's bytes, not its path
    assert "sha256-" in versions["a"] and str(first) not in versions["a"]
    assert encoder_version("open_clip:RN50", {"input": "text"}) != versions["random"]  # one version per tower

    random_card = load_card(colour_card(fusebench_home / "random"))
    checkpoint_card = load_card(colour_card(fusebench_home / "checkpoint", f"open_clip:RN50:{first}"))
    assert dataset_fingerprint(random_card) != dataset_fingerprint(checkpoint_card)


class NotTensors:
    """A pickled object in a checkpoint: torch.load(weights_only=True) refuses its class."""


def test_checkpoints_load_with_weights_only(tmp_path):
    pickled, misfit = tmp_path / "pickled.pt", tmp_path / "misfit.pt"
    torch.save({"state_dict": {"visual.x": NotTensors()}}, pickled)
    torch.save({"visual.nothing": torch.zeros(1)}, misfit)
    with pytest.raises(DataError, match=r"cannot load the checkpoint .*weights_only=True"):
        get_encoder(f"open_clip:RN50:{pickled}", input="image").encode([png_bytes(COLOURS[0])])
    with pytest.raises(DataError, match=r"does not fit architecture 'RN50'"):
        get_encoder(f"open_clip:RN50:{misfit}", input="image").encode([png_bytes(COLOURS[0])])


def test_a_tag_that_needs_a_download_says_so_offline(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads the variable once, when imported: without this it retries the network (~45 s)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError) as raised:
        get_encoder("open_clip:RN50:cc12m", input="text").encode(["a photo"])
    message = str(raised.value)
    assert "'cc12m' must be downloaded" in message and "HF_HUB_OFFLINE" in message
    assert "open_clip:RN50:/path/to/" in message  # the offline alternative: a checkpoint file


@pytest.mark.parametrize("encoder, field, expected", [
    ("open_clip:RN5", "modalities.image.encoder", "unknown open_clip architecture 'RN5'; close matches: RN50"),
    ("open_clip:RN50:nope", "modalities.image", "'nope' is neither a pretrained tag of RN50 (openai, yfcc15m, cc12m)"),
], ids=["architecture", "weights"])
def test_bad_names_are_one_line_card_errors(fusebench_home, capsys, encoder, field, expected):
    card = colour_card(fusebench_home / "cards", encoder)
    assert main(["bench", "--datasets", "coloured", "--no-report", "--dry-run", *FAST]) == 2
    [line] = ours(capsys.readouterr().err)
    assert line.startswith(f"fusebench: error: {card}: field '{field}': "), line
    assert expected in line, line


@pytest.mark.slow
def test_bench_with_random_rn50_logs_the_zero_shot_reference_row(own_cache, capsys):
    """A real fusion run on open_clip features (concat over pooled, cross_attention over tokens) whose
    cells log the zero-shot baseline and whose report shows its reference row."""
    import os

    from mlflow.tracking import MlflowClient

    from benchmark.reporting import build_report
    from benchmark.vocabulary import EXPERIMENT, zero_shot_metric

    fusebench_home = own_cache
    colour_card(fusebench_home / "cards")
    args = ["bench", "--profile", "smoke", "--datasets", "coloured", "--strategies", "concat,cross_attention",
            "--trials", "1", "--epochs", "2", "--patience", "1", "--seeds", "0", "--dropout", "0.3", "--device", "cpu"]
    assert main(args) == 0, capsys.readouterr()
    uri = os.environ["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id],
                              "tags.`fusebench.kind` = 'cell'")
    assert len(runs) == 2 and all(run.data.tags["fusebench.status"] == "ok" for run in runs)
    logged = {run.data.metrics[zero_shot_metric("accuracy")] for run in runs}
    assert len(logged) == 1 and 0.0 <= next(iter(logged)) <= 1.0
    _, text = build_report(uri, out_root=fusebench_home / "reports")
    assert any("zero-shot CLIP (reference)" in line for line in text.splitlines())
