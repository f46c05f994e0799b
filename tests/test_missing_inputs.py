"""The missing-input technique axis: zero-filling (the default) vs a learned missing-modality
embedding (benchmark/train/missing_inputs.py): model composition, stacked and trainable-encoder
training, the profile field and CLI flag, planning (variants, hashes, matrix id) and the report table."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from benchmark.run.config import MatrixConfig, ProfileError, load_profile
from benchmark.train.loop import TrainConfig, train
from benchmark.train.model import build_model
from benchmark.train.stacked import stacking_problem, train_stacked
from tests.test_encoders_extra import _trainable_features
from tests.test_stacked_training import _deterministic_hparams, _features
from tests.helpers_runs import start_synthetic_cell

LEARNED = {"missing_input": "learned"}


# ------------------------------------------------------------------ model
def test_zero_is_todays_model_and_learned_adds_only_the_vectors():
    features = _features()
    plain = build_model("concat", features, {}, seed=3)
    zero = build_model("concat", features, {"missing_input": "zero"}, seed=3)
    learned = build_model("concat", features, LEARNED, seed=3)
    assert plain.missing is None and zero.missing is None
    assert list(plain.state_dict()) == list(zero.state_dict())  # no new parameter or buffer with "zero"
    assert all(torch.equal(v, zero.state_dict()[k]) for k, v in plain.state_dict().items())
    extra = set(learned.state_dict()) - set(plain.state_dict())
    assert extra == {"missing.embedding.a", "missing.embedding.b"}
    # same strategy weights at the same seed (the vectors start at zero and draw nothing)
    assert all(torch.equal(v, learned.state_dict()[k]) for k, v in plain.state_dict().items())
    assert learned.missing.embedding["a"].shape == (3,) and not learned.missing.embedding["b"].any()
    assert "missing_input" not in learned.strategy.hparams  # routed to the model, not the strategy
    with pytest.raises(ValueError, match="missing_input: expected one of"):
        build_model("concat", features, {"missing_input": "mean"}, seed=0)


def test_learned_vectors_train_and_stand_in_for_absent_modalities():
    features = _features()
    model = build_model("concat", features, LEARNED, seed=0)
    split = features.splits["train"]
    train(model, split, features.modalities, TrainConfig(epochs=4, batch_size=32, modality_dropout=0.5, min_epochs=1))
    assert model.missing.embedding["a"].abs().sum() > 0  # moved away from zero: it was trained
    inputs = {m: x[:8].float() for m, x in split.pooled.items()}
    present = torch.tensor([[True, False]] * 8)
    with torch.no_grad():
        out = model(inputs, present)
        expected = model.strategy({"a": inputs["a"], "b": model.missing.embedding["b"].expand(8, -1)},
                                  torch.ones(8, 2, dtype=torch.bool))
    assert torch.allclose(out, expected)


@pytest.mark.parametrize("strategy", ["concat", "cross_attention"])
def test_learned_models_stack_like_training_one_by_one(strategy):
    features = _features()
    hparams = {**_deterministic_hparams(strategy), **LEARNED}
    configs = [TrainConfig(epochs=6, batch_size=32, lr=lr, seed=s, patience=2, min_epochs=3, modality_dropout=0.4)
               for s, lr in zip([0, 1], [3e-3, 1e-2])]
    alone = [build_model(strategy, features, hparams, c.seed) for c in configs]
    stacked = [build_model(strategy, features, hparams, c.seed) for c in configs]
    split, val = features.splits["train"], features.splits["validation"]
    assert stacking_problem(stacked, configs, split, features.modalities) is None
    expected = [train(m, split, features.modalities, c, val_split=val) for m, c in zip(alone, configs)]
    got = train_stacked(stacked, split, features.modalities, configs, val_split=val)
    for e, g, a, s in zip(expected, got, alone, stacked):
        assert g.train_loss == pytest.approx(e.train_loss, rel=1e-4, abs=1e-5)
        assert (g.best_epoch, g.stacked_with) == (e.best_epoch, 2)
        for m in features.modalities:
            assert torch.allclose(a.missing.embedding[m], s.missing.embedding[m], rtol=1e-2, atol=1e-3)


@pytest.mark.parametrize("strategy", ["concat", "cross_attention"])
def test_learned_vectors_behind_a_trainable_encoder(strategy):
    """The vector has the encoder's output width and replaces the encoder's output."""
    from benchmark.train.batching import model_inputs

    features = _trainable_features()
    model = build_model(strategy, features, LEARNED, seed=0)
    assert model.missing.embedding["img"].shape == (16,)  # small_cnn width, not the 64 raw pixels
    train(model, features.splits["train"], features.modalities, TrainConfig(epochs=2, batch_size=16, min_epochs=1,
                                                                          modality_dropout=0.5))
    assert model.missing.embedding["img"].abs().sum() > 0
    model.eval()
    inputs, mask = model_inputs(features.splits["train"], features.modalities, torch.arange(6), model.consumes_tokens)
    present = torch.tensor([[False, True]] * 6)
    out = model(inputs, present, mask)
    inputs["img"] = inputs["img"] * 0 + 7.0
    assert torch.allclose(out, model(inputs, present, mask), atol=1e-5)


# ------------------------------------------------------------------ profile, flag, planning
def test_profile_field_is_validated(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("datasets: [noisy_mnist]\nmissing_inputs: [zero, mean]\n")
    with pytest.raises(ProfileError, match=r"p.yaml: field 'missing_inputs': expected each of \['zero', 'learned'\]"):
        load_profile(str(path))
    path.write_text("missing_inputs: zero\n")
    with pytest.raises(ProfileError, match="field 'missing_inputs': expected a list"):
        load_profile(str(path))
    path.write_text("missing_inputs: [learned, zero]\n")
    assert load_profile(str(path)).missing_inputs == ("learned", "zero")


def test_planning_adds_learned_variants_and_keeps_zero_cells_unchanged():
    from benchmark.run.plan import Plan

    base = MatrixConfig(name="m", datasets=("noisy_mnist",), strategies=("concat", "unimodal"), dropout_rates=(0.3,),
                        seeds=(0, 1))
    both = replace(base, missing_inputs=("zero", "learned"))
    base_plan, both_plan = Plan.build(base), Plan.build(both)
    before, after = list(base_plan.cells), list(both_plan.cells)
    learned = [c for c in after if c.variant.endswith("@learned")]
    assert {c.variant for c in learned} == {"concat@learned"}  # unimodal baselines stay zero-filled
    assert all(c.strategy == "concat" and c.fixed_hparams == LEARNED for c in learned)
    zero = [c for c in after if c not in learned]
    assert zero == before
    assert [both_plan.cell_hash(c) for c in zero] == [base_plan.cell_hash(c) for c in before]
    before_studies, after_studies = {s.key for s in base_plan.studies}, {s.key for s in both_plan.studies}
    assert before_studies < after_studies and len(after_studies) == len(before_studies) + 1
    assert base_plan.matrix_id == Plan.build(replace(base, missing_inputs=("zero",))).matrix_id
    assert both_plan.matrix_id != base_plan.matrix_id


# ------------------------------------------------------------------ report
def test_report_pairs_zero_and_learned_by_seed(tmp_path):
    from benchmark.reporting import build_report, paired_ttest
    from benchmark.tracking.mlflow_runs import MatrixTracker

    uri = f"sqlite:///{tmp_path}/mlruns.db"
    tracker = MatrixTracker(uri, "tech-matrix", {"profile": "test"}, "cpu")
    runs = {  # variant -> (family, [(test accuracy, robustness) per seed])
        "concat": ("early", [(0.70, 0.50), (0.74, 0.55), (0.72, 0.60)]),
        "concat@learned": ("early", [(0.73, 0.62), (0.75, 0.60), (0.76, 0.70)]),
        "unimodal[a]": ("unimodal", [(0.6, 0.4), (0.6, 0.4), (0.61, 0.4)]),
    }
    for variant, (family, values) in runs.items():
        for seed, (acc, rob) in enumerate(values):
            params = {"dataset": "d", "strategy": variant.split("[")[0].split("@")[0], "variant": variant,
                      "family": family, "seed": str(seed), "modality_dropout": "0.3", "device": "cpu"}
            run_id = start_synthetic_cell(tracker, f"{variant}-{seed}", f"d · {variant} · dropout 0.3 · seed {seed}", params)
            metrics = {"test_accuracy": acc, "test_macro_f1": acc, "robustness": rob, "default_test_accuracy": acc}
            tracker.finish_cell(run_id, params, metrics, {"family": family}, {})
    tracker.finish_matrix({})
    _, text = build_report(uri, out_root=tmp_path / "reports")
    assert "### Missing-input technique: zero-filling vs learned embedding" in text
    score = paired_ttest([0.73, 0.75, 0.76], [0.70, 0.74, 0.72])
    robust = paired_ttest([0.62, 0.60, 0.70], [0.50, 0.55, 0.60])
    row = next(line for line in text.splitlines() if line.startswith("| `concat` | 0.3 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2:4] == ["0.720", "0.747"]
    assert cells[4] == (f"{score.mean_diff:+.3f} [{score.mean_diff - score.ci_half:+.3f}, "
                        f"{score.mean_diff + score.ci_half:+.3f}]")
    # one comparison per family: Holm's adjustment leaves each p as it is
    assert cells[5] == cells[6] == f"{score.p:.3f}" and cells[7:9] == ["0.550", "0.640"]
    assert cells[9].startswith(f"{robust.mean_diff:+.3f} [") and cells[10] == cells[11] == f"{robust.p:.3f}"
    assert cells[12] == "3"
    assert sum(line.startswith("| `") and "@learned" in line.split("|")[1] for line in text.splitlines()) == 0


def test_report_pairs_by_fold_and_seed_when_runs_carry_folds():
    import pandas as pd

    from benchmark.reporting.analysis import analyse
    from benchmark.reporting.missing_technique import technique_pairs

    rows = []
    for variant, base in (("concat", 0.70), ("concat@learned", 0.72)):
        for fold in (0, 1):
            for seed in (0, 1):
                rows.append({"dataset": "d", "variant": variant, "strategy": "concat", "family": "early",
                             "dropout": "0.3", "seed": seed, "fold": fold, "device": "cpu",
                             "test_accuracy": base + 0.01 * fold + 0.02 * seed * (variant != "concat"),
                             "robustness": 0.5})
    problems = pd.DataFrame(columns=["dataset", "variant", "strategy", "family", "dropout", "seed", "status", "error"])
    pairs = technique_pairs(analyse("d", pd.DataFrame(rows), problems))
    assert len(pairs) == 1 and pairs[0].strategy == "concat" and pairs[0].score.n == 4  # 2 folds x 2 seeds
    assert pairs[0].score.mean_diff == pytest.approx(0.03)  # learned − zero: 0.02 + 0.02 * mean seed (0.5)
