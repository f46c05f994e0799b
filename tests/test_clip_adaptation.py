"""A CLIP adapted to the card's own image-text pairs (issue 25, item 4), tested offline on tiny random
CLIPs of both families (an open_clip ViT registered from a config dict here; the transformers CLIP of
tests/clip_tiny.py): the contrastive loss against a hand computation, a training that lowers the
validation loss, the adapted weights' store (reused, invalidated by any change), the feature-cache
keys of frozen and adapted towers, the card checks, and a bench run whose report shows the adapted
zero-shot reference row and whose fusion cells train on the adapted features."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from benchmark.data.cards import CardError, load_card
from benchmark.features import adapted_clip, model_cache
from benchmark.features.card_encoders import check_encoders
from benchmark.features.catalog import get_encoder
from benchmark.features.clip_adaptation import AdaptSettings, Pairs, adapt_clip, clip_loss, trainable_copy
from benchmark.features.tensors import build_features
from benchmark.paths import models_dir
from tests.clip_tiny import save_tiny_clip
from tests.test_media_inputs import COLOURS, png_bytes, write_dataset

NAMES = ("red", "green", "blue")
SIZES = {"train": 24, "validation": 9, "test": 9}
TINY = "fusebench-tiny-vit"  # an open_clip architecture registered by the fixture below
TINY_CONFIG = {"embed_dim": 16,
               "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
               "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
FAST_ADAPT = {"epochs": 2, "lr": 0.001, "batch_size": 6, "patience": 2}


@pytest.fixture(scope="module")
def tiny_open_clip(tmp_path_factory):
    """A tiny ViT CLIP in open_clip's registry (random weights, seeded): ``open_clip:fusebench-tiny-vit``."""
    import open_clip

    path = tmp_path_factory.mktemp("open_clip") / f"{TINY}.json"
    path.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(path)
    return f"open_clip:{TINY}"


@pytest.fixture(scope="module")
def tiny_hf_clip(tmp_path_factory):
    return "hf-clip:" + str(save_tiny_clip(tmp_path_factory.mktemp("clip") / "tiny-clip",
                                           words=("a", "photo", "of", "red", "green", "blue", "square")))


@pytest.fixture(autouse=True)
def _quiet_random_weights():
    model_cache.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def caption(i: int) -> str:
    return f"a photo of {NAMES[i % 3]} square"


def colour_pairs(n: int) -> Pairs:
    return Pairs([png_bytes(COLOURS[i % 3]) for i in range(n)], [caption(i) for i in range(n)])


def adapted_card(folder, encoder: str, adapt: dict | None = FAST_ADAPT, name: str = "adapted"):
    """Coloured squares captioned with their colour; label = the colour."""
    rows = {split: [{"picture": png_bytes(COLOURS[i % 3]), "caption": caption(i), "label": NAMES[i % 3]}
                    for i in range(n)] for split, n in SIZES.items()}
    option = f", adapt: {json.dumps(adapt)}" if adapt is not None else ""
    modalities = (f"  image: {{column: picture, encoder: '{encoder}', input: image{option}}}\n"
                  f"  text: {{column: caption, encoder: '{encoder}', input: text{option}}}\n")
    return write_dataset(folder, name, rows, modalities)


def test_contrastive_loss_matches_a_hand_computation():
    image = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # (3, 2); row i belongs with text row i
    text = torch.tensor([[2.0, 0.0], [1.0, 1.0], [1.0, 2.0]])  # (3, 2)
    r, s5, s10 = 1 / math.sqrt(2), math.sqrt(5), math.sqrt(10)
    cosine = [[1, r, 1 / s5],  # image 0 = (1, 0) against texts (1, 0), (r, r), (1, 2) / sqrt 5
              [0, r, 2 / s5],  # image 1 = (0, 1)
              [r, 1, 3 / s10]]  # image 2 = (r, r)
    scale = 2.0

    def cross_entropy(rows):  # mean over rows of -log softmax(row)[i]
        return sum(math.log(sum(math.exp(scale * v) for v in row)) - scale * row[i] for i, row in enumerate(rows)) / 3

    by_image = cross_entropy(cosine)
    by_text = cross_entropy([list(column) for column in zip(*cosine)])
    expected = (by_image + by_text) / 2
    assert float(clip_loss(image, text, torch.tensor(math.log(scale)))) == pytest.approx(expected, rel=1e-6)
    assert by_image != pytest.approx(by_text)  # both directions count: the matrix is not symmetric

    # the scale is clipped at 100, as in CLIP: a larger one gives the loss at 100
    at_100 = clip_loss(image, text, torch.tensor(math.log(100.0)))
    assert float(clip_loss(image, text, torch.tensor(math.log(1e4)))) == pytest.approx(float(at_100))
    # the same as open_clip's own ClipLoss (which takes normalised features and the scale itself)
    from open_clip.loss import ClipLoss

    normalise = torch.nn.functional.normalize
    assert float(ClipLoss()(normalise(image, dim=-1), normalise(text, dim=-1), torch.tensor(scale))) == pytest.approx(expected)


@pytest.mark.parametrize("family", ["open_clip", "hf-clip"])
def test_adaptation_lowers_the_validation_loss_seeded(family, tiny_open_clip, tiny_hf_clip):
    tower = get_encoder(tiny_open_clip if family == "open_clip" else tiny_hf_clip, input="image")
    base = {k: v.clone() for k, v in tower.base_model().state_dict().items()}
    settings = AdaptSettings(**FAST_ADAPT)
    lines = []
    first = adapt_clip(trainable_copy(tower.base_model()), tower, colour_pairs(24), colour_pairs(9), settings,
                       log=lines.append)
    assert min(first.validation_losses[1:]) < first.validation_losses[0] - 0.1, first.validation_losses
    assert first.best_epoch >= 1
    assert first.validation_losses[first.best_epoch] == min(first.validation_losses)  # the best epoch's weights kept
    assert len([line for line in lines if "validation loss" in line and "epoch " in line]) >= len(first.train_losses)
    changed = [k for k, v in first.state_dict.items() if v.is_floating_point() and not torch.equal(v, base[k])]
    assert changed and "logit_scale" in changed
    assert all(torch.equal(v, base[k]) for k, v in tower.base_model().state_dict().items())  # the shared model untouched

    again = adapt_clip(trainable_copy(tower.base_model()), tower, colour_pairs(24), colour_pairs(9), settings,
                       log=lambda _: None)
    assert again.validation_losses == first.validation_losses  # seeded
    assert all(torch.equal(v, again.state_dict[k]) for k, v in first.state_dict.items())


def test_weights_are_stored_reused_and_readapted_on_any_change(tiny_open_clip, fusebench_home, monkeypatch):
    calls = []
    real = adapted_clip.adapt_clip
    monkeypatch.setattr(adapted_clip, "adapt_clip", lambda *a, **k: calls.append(a[4]) or real(*a, **k))
    card = load_card(adapted_card(fusebench_home / "cards", tiny_open_clip))
    logged = []
    features = build_features(card, log=logged.append)
    assert len(calls) == 1  # one adaptation serves both towers and the prompts
    [weights] = (models_dir() / "clip-adapted").glob("*.pt")
    record = json.loads(weights.with_suffix(".json").read_text())
    assert record["image"] == "picture" and record["text"] == "caption" and record["settings"]["epochs"] == 2
    assert any("epoch 1/2" in line for line in logged)  # progress once per epoch
    state = torch.load(weights, weights_only=True)
    assert set(state) == set(get_encoder(tiny_open_clip, input="image").base_model().state_dict())

    # a second run with no cached features: the stored weights, no training
    model_cache.clear()
    logged.clear()
    for entry in (fusebench_home / "home" / "features").glob("*.safetensors"):
        entry.unlink()
    again = build_features(card, log=logged.append)
    assert len(calls) == 1 and again.cache_misses == 6
    assert torch.equal(again.splits["test"].pooled["image"], features.splits["test"].pooled["image"])
    assert any("adapted weights from" in line for line in logged)
    assert not any("epoch 1/2" in line for line in logged)

    # other settings, or other pairs: adapted again, under another key
    other = load_card(adapted_card(fusebench_home / "other", tiny_open_clip, {**FAST_ADAPT, "epochs": 1}))
    build_features(other, log=lambda _: None)
    assert len(calls) == 2 and calls[-1].epochs == 1
    relabelled = adapted_card(fusebench_home / "relabelled", tiny_open_clip)
    text = relabelled.read_text().replace("column: caption", "column: picture_caption")
    import pandas as pd

    for split in SIZES:  # the same rows, the caption under another column: other pairs' columns
        path = relabelled.parent / "data" / f"{split}.parquet"
        pd.read_parquet(path).rename(columns={"caption": "picture_caption"}).to_parquet(path)
    relabelled.write_text(text)
    build_features(load_card(relabelled), log=lambda _: None)
    assert len(calls) == 3
    assert len(list((models_dir() / "clip-adapted").glob("*.pt"))) == 3


def test_frozen_and_adapted_features_never_share_a_cache_entry(tiny_open_clip, fusebench_home):
    frozen_card = load_card(adapted_card(fusebench_home / "frozen", tiny_open_clip, adapt=None, name="colours"))
    adapted = load_card(adapted_card(fusebench_home / "adapted", tiny_open_clip, name="colours"))
    frozen = build_features(frozen_card, log=lambda _: None)
    tuned = build_features(adapted, log=lambda _: None)
    assert frozen.cache_misses == 6 and tuned.cache_misses == 6 and tuned.cache_hits == 0  # nothing frozen served
    assert frozen.encoders["image"] != tuned.encoders["image"] and ":adapted-" in tuned.encoders["image"]
    assert not torch.allclose(frozen.splits["test"].pooled["image"].float(), tuned.splits["test"].pooled["image"].float())
    assert not frozen.zero_shot.adapted and tuned.zero_shot.adapted
    assert not torch.allclose(frozen.zero_shot.prompts, tuned.zero_shot.prompts)  # prompts of the adapted text tower
    model_cache.clear()
    assert build_features(frozen_card, log=lambda _: None).cache_hits == 6  # and the frozen entries stay the frozen ones
    assert build_features(adapted, log=lambda _: None).cache_hits == 6


def test_adapt_option_is_checked_on_the_card(tiny_open_clip, fusebench_home):
    card = adapted_card(fusebench_home / "typo", tiny_open_clip, {"epoch": 3})
    with pytest.raises(CardError, match=r"modalities\.image\.adapt.*no setting 'epoch' \(did you mean 'epochs'\?\)"):
        check_encoders(load_card(card))
    rows = {split: [{"picture": png_bytes(COLOURS[0]), "caption": "red", "label": "red"}] * 2 for split in SIZES}
    lonely = write_dataset(fusebench_home / "lonely", "lonely", rows,  # the image tower is not adapted: no pairs
                           f"  image: {{column: picture, encoder: '{tiny_open_clip}', input: image}}\n"
                           f"  text: {{column: caption, encoder: '{tiny_open_clip}', input: text, adapt: true}}\n")
    with pytest.raises(CardError, match=r"modalities\.text\.adapt.*found 0 with 'input: image'"):
        check_encoders(load_card(lonely))
    assert AdaptSettings.of(True) == AdaptSettings() and AdaptSettings.of(None) is None
    with pytest.raises(ValueError, match="'batch_size' must be at least 2"):
        AdaptSettings.of({"batch_size": 1})


def test_bench_with_an_adapted_clip_reports_its_zero_shot_row(tiny_hf_clip, fusebench_home, capsys):
    """hf-clip family (a folder: workers in other processes load it too): cells train on the adapted
    features, log the adapted zero-shot baseline, and the report shows its reference row."""
    import os

    from mlflow.tracking import MlflowClient

    from benchmark.cli import main
    from benchmark.reporting import build_report
    from benchmark.vocabulary import EXPERIMENT, zero_shot_adapted_metric, zero_shot_metric

    adapted_card(fusebench_home / "cards", tiny_hf_clip)
    args = ["bench", "--profile", "smoke", "--datasets", "adapted", "--strategies", "concat,cross_attention",
            "--trials", "1", "--epochs", "2", "--patience", "1", "--seeds", "0", "--dropout", "0.3", "--device", "cpu"]
    assert main(args) == 0, capsys.readouterr()
    assert len(list((models_dir() / "clip-adapted").glob("*.pt"))) == 1
    uri = os.environ["MLFLOW_TRACKING_URI"]
    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id], "tags.`fusebench.kind` = 'cell'")
    assert len(runs) == 2 and all(run.data.tags["fusebench.status"] == "ok" for run in runs)
    assert all(zero_shot_metric("accuracy") not in run.data.metrics for run in runs)  # not the frozen model's row
    logged = {run.data.metrics[zero_shot_adapted_metric("accuracy")] for run in runs}
    assert len(logged) == 1 and 0.0 <= next(iter(logged)) <= 1.0
    _, text = build_report(uri, out_root=fusebench_home / "reports")
    assert any("zero-shot CLIP adapted (reference)" in line for line in text.splitlines())
