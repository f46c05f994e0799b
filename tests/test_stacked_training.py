"""Seeds trained as one stacked computation (benchmark/train/stacked.py) give what training them
one by one gives, up to floating-point noise: same best epochs, stop reasons, curves and weights."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchmark.features.tensors import FeatureSet, SplitTensors
from benchmark.train.loop import TrainConfig, train
from benchmark.train.model import build_model
from benchmark.train.stacked import stacking_problem, train_stacked, train_together
from strategies import get_strategy
from strategies.search_space import defaults


def _features(n: int = 160, classes: int = 3, tokens: int = 4) -> FeatureSet:
    generator = torch.Generator().manual_seed(7)

    def split(rows):
        labels = torch.randint(classes, (rows,), generator=generator)  # (N,)
        a = nn.functional.one_hot(labels, classes).float() + 0.8 * torch.randn(rows, classes, generator=generator)
        b = 0.5 * nn.functional.one_hot(labels, classes).float() @ torch.ones(classes, 5) \
            + torch.randn(rows, 5, generator=generator)  # (N, 5)
        a_tokens = a.unsqueeze(1) + 0.1 * torch.randn(rows, tokens, classes, generator=generator)  # (N, T, 3)
        b_tokens = b.unsqueeze(1) + 0.1 * torch.randn(rows, tokens, 5, generator=generator)  # (N, T, 5)
        mask = torch.ones(rows, tokens, dtype=torch.bool)
        mask[: rows // 2, -1] = False  # varying lengths
        return SplitTensors(pooled={"a": a.half(), "b": b.half()}, tokens={"a": a_tokens.half(), "b": b_tokens.half()},
                            token_mask={"a": mask, "b": mask.clone()}, labels=labels)

    return FeatureSet("toy", ["a", "b"], [str(c) for c in range(classes)],
                      {"train": split(n), "validation": split(n // 2), "test": split(n // 2)})


def _deterministic_hparams(strategy: str) -> dict:
    hparams = defaults(get_strategy(strategy).search_space)
    return {k: (0.0 if k == "dropout" else v) for k, v in hparams.items()}  # dropout masks differ when stacked


@pytest.mark.parametrize("strategy", ["concat", "network_merge", "cross_attention"])
def test_stacked_seeds_equal_training_one_by_one(strategy):
    features = _features()
    hparams = _deterministic_hparams(strategy)
    seeds = [0, 1, 2]
    # Different rates and dropout draws per model: each keeps its own schedule and data.
    configs = [TrainConfig(epochs=14, batch_size=32, lr=lr, seed=s, patience=2, min_epochs=3, lr_patience=1,
                           modality_dropout=0.3) for s, lr in zip(seeds, [3e-3, 1e-2, 5e-3])]
    alone = [build_model(strategy, features, hparams, s) for s in seeds]
    stacked = [build_model(strategy, features, hparams, s) for s in seeds]
    split, val = features.splits["train"], features.splits["validation"]
    assert stacking_problem(stacked, configs, split, features.modalities) is None
    expected = [train(m, split, features.modalities, c, val_split=val) for m, c in zip(alone, configs)]
    got = train_stacked(stacked, split, features.modalities, configs, val_split=val)
    for e, g, a, s in zip(expected, got, alone, stacked):
        assert (g.epochs_run, g.best_epoch, g.stop_reason) == (e.epochs_run, e.best_epoch, e.stop_reason)
        assert g.train_loss == pytest.approx(e.train_loss, rel=1e-4, abs=1e-5)
        assert g.val_score == pytest.approx(e.val_score, abs=1e-6)
        assert g.lr == pytest.approx(e.lr)
        assert g.stacked_with == 3 and e.stacked_with == 1
        # Outputs agree; single weights may drift by noise that Adam's normalisation amplifies
        # where the true gradient is zero (an attention key bias, which softmax ignores), so the
        # weights are compared loosely: enough to catch another seed or another data order.
        present = torch.ones(len(val), 2, dtype=torch.bool)
        inputs = val.tokens if a.consumes_tokens else val.pooled
        inputs = {m: x.float() for m, x in inputs.items()}
        mask = val.token_mask if a.consumes_tokens else None
        with torch.no_grad():
            assert torch.allclose(a(inputs, present, mask), s(inputs, present, mask), rtol=1e-3, atol=1e-4)
        for (name, pa), (_, ps) in zip(a.state_dict().items(), s.state_dict().items()):
            assert torch.allclose(pa, ps, rtol=1e-2, atol=1e-2), name
    # the seeds really differ: different initialisation and data order
    assert not torch.equal(stacked[0].strategy.head[0].weight if hasattr(stacked[0].strategy, "head") else
                           next(stacked[0].parameters()), stacked[1].strategy.head[0].weight
                           if hasattr(stacked[1].strategy, "head") else next(stacked[1].parameters()))


def test_models_that_cannot_stack_are_trained_one_by_one_and_say_why():
    features = _features()
    configs = [TrainConfig(epochs=2, batch_size=32, seed=0), TrainConfig(epochs=2, batch_size=16, seed=1)]
    models = [build_model("concat", features, {}, s) for s in (0, 1)]
    lines = []
    stats = train_together(models, features.splits["train"], features.modalities, configs, log=lines.append)
    assert [s.stacked_with for s in stats] == [1, 1]
    assert lines and "one by one" in lines[0] and "batch_size" in lines[0]
    different = [build_model("concat", features, {"hidden": 16}, 0), build_model("concat", features, {"hidden": 32}, 1)]
    same = [TrainConfig(epochs=2, batch_size=32, seed=s) for s in (0, 1)]
    assert "shapes differ" in stacking_problem(different, same, features.splits["train"], features.modalities)


def test_profile_fields_for_stacking_and_mixed_precision(tmp_path):
    from dataclasses import replace

    from benchmark.run.config import ProfileError, load_profile
    from benchmark.run.plan import Plan

    good = tmp_path / "good.yaml"
    good.write_text("stack_seeds: false\namp: bf16\n")
    config = load_profile(str(good))
    assert (config.stack_seeds, config.amp) == (False, "bf16")
    # stacking changes how the work runs, not what it computes: the matrix id ignores it
    assert Plan.build(config).matrix_id == Plan.build(replace(config, stack_seeds=True)).matrix_id
    for text, field in (("amp: fp32\n", "amp"), ("stack_seeds: 1\n", "stack_seeds"), ("amp: true\n", "amp")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(ProfileError, match=f"field '{field}'"):
            load_profile(str(bad))


def test_a_bench_trains_the_seeds_of_a_cell_stacked_and_records_each_seed(toy_card, fusebench_home, capsys):
    import os

    from benchmark.cli import main
    from benchmark.vocabulary import STACKED_WITH
    from tests.helpers_runs import assert_each_cell_once, cell_runs, finished

    args = ["bench", "--profile", "smoke", "--datasets", "toy", "--strategies", "concat,late_weighted", "--trials", "1",
            "--epochs", "2", "--seeds", "0,1,2", "--dropout", "0.3", "--device", "cpu", "--no-report", "--stack"]
    assert main(args) == 0
    uri = os.environ["MLFLOW_TRACKING_URI"]
    runs = finished(cell_runs(uri))
    assert_each_cell_once(uri, expected_cells=6)
    assert {r.data.params[STACKED_WITH] for r in runs} <= {"3", "6"}  # 3 seeds, or 3 + 3 default retrains
    by_seed = {(r.data.params["strategy"], r.data.params["seed"]): r.data.metrics["test_accuracy"] for r in runs}
    assert len(by_seed) == 6
    assert main(args + ["--no-stack"]) == 0  # stacking is not part of the matrix id: nothing to redo
    assert "0 run now, 6 already done" in capsys.readouterr().out
