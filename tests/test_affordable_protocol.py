"""The affordable default protocol (issue 20): the early-stopping wait that grows with the best
epoch, shared tuning across training dropout rates (part of a cell's identity), the token budget,
the fidelity command, a matrix-wide progress counter, and per-seed results that do not depend on
how many workers ran the matrix or whether seeds were stacked."""

from __future__ import annotations

import re

import pytest
import torch

from benchmark.run.config import MatrixConfig
from benchmark.train.loop import RunBook, TrainConfig, wait_epochs


def _stop_epoch(config: TrainConfig, scores: list[float]) -> int:
    """The 1-based epoch at which the protocol's stop rule ends a run with these validation scores."""
    book = RunBook(config, n=10, steps_per_epoch=1)
    for epoch, score in enumerate(scores):
        book.validated(epoch, score, loss=1.0 - score)
        if book.stopped:
            return epoch + 1
    return len(scores)


def _peaks_at(best: int, length: int = 80) -> list[float]:
    """A validation curve that rises until epoch ``best`` (1-based), then stays just below its peak."""
    return [0.5 + 0.01 * e if e < best else 0.5 + 0.01 * (best - 1) - 0.001 for e in range(length)]


NEW = TrainConfig(epochs=60, patience=10, patience_ratio=0.5, min_epochs=5)
FIXED = TrainConfig(epochs=60, patience=10, patience_ratio=0.0, min_epochs=10)


def test_an_early_peak_stops_soon_after_it():
    assert wait_epochs(NEW, 4) == 4  # ceil(0.5 x 4) = 2, raised to lr_patience + 2
    assert _stop_epoch(NEW, _peaks_at(4)) == 8
    assert _stop_epoch(FIXED, _peaks_at(4)) == 14  # the fixed rule: 4 + 10


def test_a_late_peak_gets_the_whole_patience():
    assert wait_epochs(NEW, 20) == 10 and wait_epochs(NEW, 12) == 6
    assert _stop_epoch(NEW, _peaks_at(20)) == 30
    assert _stop_epoch(NEW, _peaks_at(12)) == 18
    assert _stop_epoch(FIXED, _peaks_at(20)) == 30


def test_no_stop_before_min_epochs():
    assert _stop_epoch(TrainConfig(epochs=60, patience=10, patience_ratio=0.5, min_epochs=9), _peaks_at(1)) == 9


def _config(**overrides) -> MatrixConfig:
    fields = dict(name="shared", datasets=("emoji",), strategies=("concat",), dropout_rates=(0.0, 0.3, 0.6),
                  seeds=(0, 1), trials=2, epochs=3, batch_size=16)
    return MatrixConfig(**{**fields, **overrides})


def test_shared_tuning_is_one_study_per_variant_tuned_at_the_middle_rate():
    from benchmark.run.plan import Plan

    plan = Plan.build(_config())
    assert len(plan.studies) == 1 and len(plan.cells) == 6
    (study,) = plan.studies
    assert "/drop0.3/" in study.key
    trials = plan.trial_units
    assert [t.tuning_cell.dropout for t in trials] == [0.3, 0.3]  # trials train at the tuning rate
    assert [len(t.waits_for) for t in trials] == [0, 1]  # slot 1 waits for slot 0
    assert len(Plan.build(_config(tuning="per_rate")).studies) == 3


def test_the_tuning_rule_is_part_of_the_cell_identity():
    """Cells retrained from another rate's study are other results: changing the rule re-runs them;
    the cell at the tuning rate is the same computation either way and keeps its hash."""
    from benchmark.run.plan import Plan

    shared, per_rate = Plan.build(_config()), Plan.build(_config(tuning="per_rate"))
    for cell in shared.cells:
        same = shared.cell_hash(cell) == per_rate.cell_hash(cell)
        assert same == (cell.dropout == 0.3), cell
    moved = Plan.build(_config(dropout_rates=(0.0, 0.6, 0.3)))  # another middle rate: another tuning rate
    zero = next(c for c in shared.cells if c.dropout == 0.0)
    assert moved.cell_hash(zero) != shared.cell_hash(zero)


def test_the_budget_rules_are_part_of_the_study_and_cell_identity():
    from benchmark.run.plan import Plan

    base = Plan.build(_config())
    cell = base.cells[0]
    for change in ({"patience_ratio": 0.0}, {"min_epochs": 10}, {"max_tokens": None}, {"max_tokens": 8}):
        other = Plan.build(_config(**change))
        assert other.cell_hash(cell) != base.cell_hash(cell), change
        assert {s.key for s in other.studies} != {s.key for s in base.studies}, change


def test_the_token_budget_pools_a_grid_in_2d_and_sequences_by_windows():
    from benchmark.features.token_budget import apply_token_budget, pool_windows

    grid = torch.arange(2 * 49 * 3, dtype=torch.float32).reshape(2, 49, 3).half()  # (N, 7x7, D)
    text = torch.randn(2, 10, 4)  # (N, T, D)
    text_mask = torch.tensor([[True] * 10, [True] * 3 + [False] * 7])  # row 1 holds 3 real tokens
    parts = {split: {"tokens": {"image": grid.clone(), "text": text.clone(), "short": torch.ones(2, 3, 2)},
                     "token_mask": {"image": torch.ones(2, 49, dtype=torch.bool), "text": text_mask.clone(),
                                    "short": torch.ones(2, 3, dtype=torch.bool)}}
             for split in ("train", "test")}
    done = apply_token_budget(parts, ["image", "short", "text"], max_tokens=4)
    assert set(done) == {"image", "text"}  # "short" already fits
    image = parts["test"]["tokens"]["image"]
    assert image.shape == (2, 4, 3) and image.dtype == torch.float16
    expected = torch.nn.functional.adaptive_avg_pool2d(grid.float().transpose(1, 2).reshape(2, 3, 7, 7), 2)
    assert torch.allclose(image.float(), expected.flatten(2).transpose(1, 2), atol=0.5)  # fp16 storage
    pooled, mask = parts["test"]["tokens"]["text"], parts["test"]["token_mask"]["text"]
    assert pooled.shape == (2, 4, 4) and mask.tolist() == [[True] * 4, [True, False, False, False]]  # windows of 3
    assert torch.allclose(pooled[0, 0], text[0, :3].mean(0)) and torch.allclose(pooled[1, 0], text[1, :3].mean(0))
    assert torch.allclose(pooled[0, 3], text[0, 9])  # the last window holds one real token
    assert torch.equal(parts["test"]["tokens"]["short"], torch.ones(2, 3, 2))
    assert apply_token_budget(parts, ["image"], max_tokens=None) == {}
    assert pool_windows(text, text_mask, 1)[0].shape == text.shape


def test_fidelity_figures_from_scores():
    from benchmark.perf.fidelity import StrategyScore, compare

    ours = {"a": StrategyScore(0.90, 0.01, False), "b": StrategyScore(0.85, 0.01, False),
            "c": StrategyScore(0.95, 0.01, True)}  # c is marked: never a winner
    theirs = {"a": StrategyScore(0.89, 0.02, False), "b": StrategyScore(0.895, 0.01, False),
              "c": StrategyScore(0.80, 0.01, False)}
    row = compare("d", "accuracy", True, ours, theirs)
    assert row.winner == "a" and row.reference_winner == "b"
    assert row.consistent  # a's reference score 0.89 is within b's 0.895 +- 0.01
    assert row.largest_difference == pytest.approx(0.15) and row.largest_difference_strategy == "c"
    assert row.tau == pytest.approx(-1.0)  # every pair in the other order
    far = compare("d", "accuracy", True, ours, {**theirs, "b": StrategyScore(0.95, 0.01, False)})
    assert not far.consistent


def _per_seed_scores(uri: str) -> dict[tuple[str, str, str], float]:
    from tests.helpers_runs import cell_runs, finished

    return {(r.data.params["strategy"], r.data.params["modality_dropout"], r.data.params["seed"]):
            r.data.metrics["test_accuracy"] for r in finished(cell_runs(uri))}


@pytest.mark.slow
def test_same_numbers_with_one_or_two_workers_and_a_monotone_counter(toy_card, fusebench_home, monkeypatch, capfd):
    """The same small matrix run with 1 worker (in-process, 2 torch threads) and with 2 workers
    (processes of 1 thread), each on fresh stores, gives identical per-seed test scores: every run
    seeds its own streams and a study's trials run in slot order. With two workers the coordinator
    prints one matrix-wide counter that never decreases and ends at the total. (Stacked seeds equal
    one-by-one training up to rounding for dropout-free models: tests/test_stacked_training.py; with
    in-model dropout their masks are drawn per stack, docs/protocol.md, "Training protocol".)"""
    from benchmark.cli import main

    args = ["bench", "--profile", "smoke", "--datasets", "toy", "--trials", "2", "--epochs", "4", "--seeds", "0,1",
            "--dropout", "0,0.5", "--device", "cpu", "--no-report", "--strategies", "concat,sum"]
    scores = {}
    for name, extra in (("one", ["--workers", "1"]), ("two", ["--workers", "2"])):
        monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{fusebench_home / f'{name}.db'}")
        monkeypatch.setenv("FUSEBENCH_OPTUNA_STORAGE", f"sqlite:///{fusebench_home / f'{name}-optuna.db'}")
        capfd.readouterr()
        assert main(args + extra) == 0
        err = capfd.readouterr().err
        scores[name] = _per_seed_scores(f"sqlite:///{fusebench_home / f'{name}.db'}")
        if name == "two":
            counts = [int(m.group(1)) for m in re.finditer(r"^\[(\d+)/8\] ", err, re.M)]
            assert counts == sorted(counts) and counts[-1] == 8, err
    assert len(scores["one"]) == 8
    assert scores["one"] == scores["two"]


@pytest.mark.slow
def test_fidelity_command_on_a_toy_card(toy_card, fusebench_home, capsys):
    from benchmark.cli import main

    profile = fusebench_home / "tiny.yaml"
    profile.write_text("datasets: [toy]\nstrategies: [concat, sum]\ndropout_rates: [0.0, 0.3]\nseeds: [0, 1]\n"
                       "trials: 1\nepochs: 3\npatience: 2\nbatch_size: 16\n")
    assert main(["perf", "fidelity", "--profile", str(profile), "--workers", "1", "--device", "cpu",
                 "--noise-floor"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("toy ")]
    assert len(rows) == 2  # against the reference, and against another tuning draw (the noise floor)
    for line in rows:
        tau, difference = (float(x) for x in line.split()[3:5])
        assert (-1.0 <= tau <= 1.0 or tau != tau) and difference >= 0.0  # tau is undefined (nan) when a ranking ties
    assert "tiny-reference" in out and "tiny-draw1" in out  # each ran as its own matrix
    assert out.index("noise floor:") > out.index(rows[0])


def test_protocols_draw_the_same_tuning_candidates_and_a_draw_changes_them():
    """Common random numbers: the sampler's seed comes from what is tuned, so studies of two
    protocols (other names) sample the same first candidate; another tuning draw samples another."""
    import optuna

    from benchmark.train.results import Cell
    from benchmark.train.seeds import sampler_seed, tuning_seed
    from benchmark.train.tuning import TRAINING_SPACE, load_study, suggest

    cell = Cell("toy", "concat", "concat", 0.3, 0)
    assert cell.tuning_key() == "toy/concat/drop0.3"
    storage = optuna.storages.InMemoryStorage()

    def first_candidate(study_name: str, draw: int) -> dict:
        study = load_study(study_name, storage, 10, slot=1, seed=sampler_seed(cell.tuning_key(), 1, draw))
        return suggest(study.ask(), TRAINING_SPACE)

    cheap, reference = first_candidate("toy/concat/drop0.3/t10-k16/aa", 0), first_candidate("toy/concat/drop0.3/t10-kall/bb", 0)
    assert cheap == reference
    assert first_candidate("toy/concat/drop0.3/t10-k16-d1/aa", 1) != cheap
    assert tuning_seed(2, 1) != tuning_seed(2, 0) and sampler_seed("a", 1) != sampler_seed("a", 2)
