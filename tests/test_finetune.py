"""Fine-tuning the pretrained encoders as a matrix axis (benchmark/features/finetune.py,
benchmark/train/finetuned_encoders.py, benchmark/run/finetune_axis.py): what is cached, that a
fine-tuned model starts as the frozen encoder and its encoder weights train while the frozen ones
never move, the encoder learning rate, planning and identities, and the report's paired table."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from benchmark.run.config import MatrixConfig, ProfileError, load_profile
from benchmark.train.loop import TrainConfig, parameter_groups, train
from benchmark.train.model import build_model
from tests.helpers_runs import start_synthetic_cell

LAST_BLOCK = {"finetune": "last_block"}


@pytest.fixture
def toy_features(toy_card, monkeypatch):
    """The toy card built frozen, frozen again, last_block and last_block again, with the cache keys
    each build read. -> {mode or mode + "_again": (FeatureSet, keys read)}"""
    from benchmark.data.cards import load_card
    from benchmark.features import cache
    from benchmark.features.tensors import build_features

    read: list[str] = []
    load = cache.load_entry
    monkeypatch.setattr(cache, "load_entry", lambda key, root=None: (read.append(key), load(key, root))[1])
    card = load_card(toy_card)
    built = {}
    for name, mode in (("frozen", "frozen"), ("frozen_again", "frozen"), ("last_block", "last_block"),
                       ("last_block_again", "last_block")):
        read.clear()
        built[name] = (build_features(card, log=lambda *_: None, max_tokens=4, finetune=mode), set(read))
    return built


# ------------------------------------------------------------------ cache
def test_frozen_path_hits_the_cache_and_fine_tuned_cells_never_read_frozen_features(toy_features):
    frozen, frozen_keys = toy_features["frozen"]
    again, again_keys = toy_features["frozen_again"]
    tuned, tuned_keys = toy_features["last_block"]
    assert (frozen.cache_hits, frozen.cache_misses) == (0, 6)
    assert (again.cache_hits, again.cache_misses) == (6, 0) and again_keys == frozen_keys  # unchanged frozen path
    assert tuned.cache_misses == 6 and not tuned_keys & frozen_keys  # its own entries, never the features
    assert not frozen.front_ends and frozen.finetune == "frozen"
    assert tuned.finetune == "last_block" and {f.kind for f in tuned.front_ends.values()} == {
        "efficientnet_lite0_last_block", "minilm_last_layer"}
    assert all(f.pretrained for f in tuned.front_ends.values())
    # what is cached is the frozen part's output: 49 positions of 192 channels; 32 token states + the mask
    assert tuple(tuned.splits["train"].tokens["image"].shape[1:]) == (49, 192)
    assert tuple(tuned.splits["train"].tokens["text"].shape[1:]) == (32, 385)
    assert tuned.encoders["image"].endswith("/below-last-block/finetune-v1")
    # a model never trains on features built for another mode
    with pytest.raises(ValueError, match="needs features built for it"):
        build_model("concat", frozen, LAST_BLOCK, seed=0)
    with pytest.raises(ValueError, match="needs features built for it"):
        build_model("concat", tuned, {}, seed=0)


@pytest.mark.parametrize("tokens", [False, True])
def test_a_fresh_last_block_model_sees_what_the_frozen_encoder_cached(toy_features, tokens):
    """At its pretrained weights the last block on the cached activations gives the frozen features:
    the same pooled vectors, the same 3x3 image grid, the same text tokens in the token budget's windows."""
    frozen, _ = toy_features["frozen"]
    tuned, _ = toy_features["last_block"]
    model = build_model("concat", tuned, LAST_BLOCK, seed=0).eval()
    split, cached = tuned.splits["test"], frozen.splits["test"]
    for m in ("image", "text"):
        x = (split.tokens if tokens else split.pooled)[m].float()
        with torch.no_grad():
            out, mask = model.encoders[m](x, tokens=tokens)
        expected = (cached.tokens if tokens else cached.pooled)[m].float()
        if tokens:  # frozen text is padded to the split's longest caption, fine-tuned to the dataset's: masked windows
            length = expected.shape[1]
            assert torch.equal(mask[:, :length], cached.token_mask[m]) and not mask[:, length:].any()
            out = out[:, :length]
        assert out.shape == expected.shape
        assert torch.allclose(out, expected, atol=0.05, rtol=0.02), (m, (out - expected).abs().max())
    # both pooled by the token budget (max_tokens 4): the image's 3x3 grid to 2x2, the captions in windows
    assert set(frozen.token_budget) == set(tuned.token_budget) == {"image", "text"}


def test_fine_tuned_encoder_weights_change_and_frozen_ones_do_not(toy_features):
    from benchmark.features.image import EfficientNetLite0

    tuned, _ = toy_features["last_block"]
    frozen, _ = toy_features["frozen"]
    pretrained = EfficientNetLite0()._load()  # the frozen encoder's model, shared in the process
    pretrained_before = {k: v.clone() for k, v in pretrained.state_dict().items()}
    model = build_model("concat", tuned, LAST_BLOCK, seed=0)
    start = {k: v.detach().clone() for k, v in model.encoders.named_parameters()}
    buffers = {k: v.clone() for k, v in model.encoders.named_buffers()}
    x = {m: tuned.splits["test"].pooled[m][:8].float() for m in tuned.modalities}
    present = torch.ones(8, 2, dtype=torch.bool)
    with torch.no_grad():
        before = model.eval()(x, present)
    train(model, tuned.splits["train"], tuned.modalities,
          TrainConfig(epochs=2, batch_size=16, min_epochs=1, lr=1e-3, encoder_lr=1e-3))
    moved = [k for k, v in model.encoders.named_parameters() if not torch.equal(v, start[k])]
    assert {k.split(".")[0] for k in moved} == {"image", "text"} and len(moved) > len(start) // 2
    # batch norm keeps its pretrained statistics, and the frozen encoder's own model never moves
    assert all(torch.equal(v, buffers[k]) for k, v in model.encoders.named_buffers())
    assert all(torch.equal(v, pretrained_before[k]) for k, v in pretrained.state_dict().items())
    # the trained block runs on every batch: the same cached input now gives another output
    with torch.no_grad():
        assert not torch.allclose(model(x, present), before)
    # a frozen model has no encoder parameter to train
    assert len(build_model("concat", frozen, {}, seed=0).encoders) == 0


def test_encoder_parameters_train_at_the_encoder_rate(toy_features):
    tuned, _ = toy_features["last_block"]
    model = build_model("concat", tuned, LAST_BLOCK, seed=0)
    groups = parameter_groups(model, TrainConfig(lr=1e-3, encoder_lr=1e-4))
    assert [g["lr_scale"] for g in groups] == [1.0, pytest.approx(0.1)]
    encoder_ids = {id(p) for p in model.encoders.parameters()}
    assert {id(p) for p in groups[1]["params"]} == encoder_ids
    assert not encoder_ids & {id(p) for p in groups[0]["params"]}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    # without encoder_lr the encoders train at the run's rate
    assert [g["lr_scale"] for g in parameter_groups(model, TrainConfig(lr=1e-3))] == [1.0, 1.0]


def test_full_mode_trains_the_whole_encoder_on_raw_inputs(toy_card):
    """``full`` on a tiny batch: pixels and token ids are cached, the whole encoders sit in the model
    and every part of them receives a gradient; training crops differ from the evaluation view."""
    from benchmark.data.cards import load_card
    from benchmark.features.tensors import build_features
    from benchmark.train.finetuned_encoders import random_resized_crops

    features = build_features(load_card(toy_card), log=lambda *_: None, max_tokens=4, finetune="full")
    assert {f.kind for f in features.front_ends.values()} == {"efficientnet_lite0_full", "minilm_full"}
    model = build_model("concat", features, {"finetune": "full"}, seed=0)
    assert sum(p.numel() for p in model.pretrained_parameters()) > 20_000_000  # EfficientNet + MiniLM, whole
    split = features.splits["train"]
    x = {m: split.pooled[m][:4].float() for m in features.modalities}
    logits = model.train()(x, torch.ones(4, 2, dtype=torch.bool))
    logits.sum().backward()
    image_grads = [p.grad for p in model.encoders["image"].parameters() if p.requires_grad]
    assert image_grads and all(g is not None for g in image_grads[:5])
    assert model.encoders["text"].net.embeddings.word_embeddings.weight.grad is not None
    # token ids survive the fp16 cache exactly
    ids = split.tokens["text"][:4].float()
    assert torch.equal(ids[..., :2], ids[..., :2].round()) and int((ids[..., 0] * 256 + ids[..., 1]).max()) < 30522
    torch.manual_seed(0)
    images = torch.rand(2, 3, 16, 16)
    crops = random_resized_crops(images, 8)
    assert crops.shape == (2, 3, 8, 8) and not torch.allclose(crops[0], crops[1])


# ------------------------------------------------------------------ tuning
def test_encoder_rate_is_tuned_only_where_an_encoder_is_fine_tuned():
    from benchmark.train.tuning import TRAINING_SPACE, default_params, default_trial_params, training_space

    assert set(training_space()) == set(TRAINING_SPACE) == {"lr", "weight_decay"}  # frozen studies unchanged
    assert set(training_space(True)) == {"lr", "weight_decay", "encoder_lr"}
    assert default_params("concat", True)[1]["encoder_lr"] < default_params("concat", True)[1]["lr"]
    assert "train.encoder_lr" in default_trial_params("concat", True)
    assert "train.encoder_lr" not in default_trial_params("concat")


# ------------------------------------------------------------------ profile, planning, identity
def test_profile_field_and_flag_are_validated(tmp_path):
    from benchmark.run.finetune_axis import parse_finetune

    path = tmp_path / "p.yaml"
    path.write_text("finetune: [frozen, partial]\n")
    with pytest.raises(ProfileError, match=r"field 'finetune': expected each of \['frozen', 'last_block', 'full'\]"):
        load_profile(str(path))
    path.write_text("finetune: [frozen, last_block]\n")
    assert load_profile(str(path)).finetune == ("frozen", "last_block")
    assert parse_finetune("frozen,full") == ("frozen", "full")
    with pytest.raises(ValueError, match="each mode once"):
        parse_finetune("frozen,frozen")


def test_planning_adds_fine_tuned_variants_and_keeps_frozen_cells_unchanged():
    from benchmark.run.plan import Plan

    base = MatrixConfig(name="m", datasets=("emoji", "noisy_mnist"), strategies=("concat", "unimodal"),
                        dropout_rates=(0.3,), seeds=(0, 1))
    both = replace(base, finetune=("frozen", "last_block"))
    base_plan, both_plan = Plan.build(base), Plan.build(both)
    tuned = [c for c in both_plan.cells if c.fixed_hparams.get("finetune") == "last_block"]
    # emoji's encoders can be fine-tuned; noisy_mnist's (raw pixels, tabular) cannot: no variants there
    assert {c.dataset for c in tuned} == {"emoji"}
    assert {c.variant for c in tuned} == {"concat@last_block", "unimodal[image]@last_block",
                                          "unimodal[text]@last_block"}
    frozen = [c for c in both_plan.cells if c not in tuned]
    assert frozen == list(base_plan.cells)
    assert [both_plan.cell_hash(c) for c in frozen] == [base_plan.cell_hash(c) for c in base_plan.cells]
    assert {s.key for s in base_plan.studies} < {s.key for s in both_plan.studies}
    assert base_plan.matrix_id == Plan.build(replace(base, finetune=("frozen",))).matrix_id
    assert both_plan.matrix_id != base_plan.matrix_id
    # a fine-tuned cell's identity differs from its frozen twin's in hash and study, and per mode
    twin = next(c for c in frozen if c.dataset == "emoji" and c.variant == "concat" and c.seed == 0)
    cell = next(c for c in tuned if c.variant == "concat@last_block" and c.seed == 0)
    assert both_plan.cell_hash(cell) != both_plan.cell_hash(twin)
    full_plan = Plan.build(replace(base, finetune=("full",), datasets=("emoji",)))
    full = next(c for c in full_plan.cells if c.variant == "concat@full" and c.seed == 0)
    assert full_plan.cell_hash(full) not in {both_plan.cell_hash(c) for c in both_plan.cells}


def test_fine_tuned_variants_combine_with_the_missing_input_axis():
    from benchmark.run.plan import Plan

    config = MatrixConfig(name="m", datasets=("emoji",), strategies=("concat",), dropout_rates=(0.3,), seeds=(0,),
                          finetune=("frozen", "last_block"), missing_inputs=("zero", "learned"))
    variants = {c.variant: c.fixed_hparams for c in Plan.build(config).cells}
    assert variants == {"concat": {}, "concat@learned": {"missing_input": "learned"},
                        "concat@last_block": LAST_BLOCK,
                        "concat@last_block@learned": {**LAST_BLOCK, "missing_input": "learned"}}


# ------------------------------------------------------------------ report
def test_report_compares_frozen_and_fine_tuned_with_paired_tests(tmp_path):
    from benchmark.reporting import build_report, paired_ttest
    from benchmark.reporting.finetune_comparison import frozen_variant
    from benchmark.tracking.mlflow_runs import MatrixTracker

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    tracker = MatrixTracker(uri, "ft-matrix", {"profile": "test"}, "cpu")
    runs = {  # variant -> [(test accuracy, robustness, wall seconds, train samples/s) per seed]
        "concat": [(0.70, 0.50, 10.0, 4000.0), (0.74, 0.55, 12.0, 4200.0), (0.72, 0.60, 11.0, 3800.0)],
        "concat@last_block": [(0.78, 0.52, 40.0, 400.0), (0.79, 0.58, 44.0, 420.0), (0.80, 0.61, 48.0, 380.0)],
    }
    for variant, values in runs.items():
        for seed, (acc, rob, wall, sps) in enumerate(values):
            params = {"dataset": "d", "strategy": "concat", "variant": variant, "family": "early", "seed": str(seed),
                      "modality_dropout": "0.3", "device": "cpu"}
            run_id = start_synthetic_cell(tracker, f"{variant}-{seed}", f"d · {variant} · dropout 0.3 · seed {seed}",
                                          params)
            metrics = {"test_accuracy": acc, "test_macro_f1": acc, "robustness": rob, "default_test_accuracy": acc,
                       "wall_seconds": wall, "train_samples_per_s": sps, "peak_cpu_rss_mb": 1000.0 + 500 * ("@" in variant)}
            tracker.finish_cell(run_id, params, metrics, {"family": "early"}, {})
    tracker.finish_matrix({})
    _, text = build_report(uri, out_root=tmp_path / "reports")
    assert "### Fine-tuning: frozen vs fine-tuned encoders" in text
    score = paired_ttest([0.78, 0.79, 0.80], [0.70, 0.74, 0.72])
    row = next(line for line in text.splitlines() if line.startswith("| `concat` | last_block | 0.3 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[3:5] == ["0.720", "0.790"]
    assert cells[5].startswith(f"{score.mean_diff:+.3f} [") and cells[6] == cells[7] == f"{score.p:.3f}"
    assert cells[10:13] == ["4.00x", "0.10x", "1.50x"]  # wall time, samples/s, peak CPU RSS: fine-tuned / frozen
    assert cells[13] == "3"
    assert frozen_variant("concat@last_block@learned") == ("concat@learned", "last_block")
    assert frozen_variant("unimodal[text]@full") == ("unimodal[text]", "full")
    assert frozen_variant("concat@learned") is None
