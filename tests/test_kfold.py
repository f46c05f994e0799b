"""k-fold cross-validation for small datasets (issue 14, item 7): folds are disjoint, stratified,
seeded and the same for every strategy; validation is carved from the training folds, never from
the test fold; `folds` in a profile, a card or `--folds` is validated (exit 2); a cell without a
fold keeps the hash and study name it had before the field; a real tiny run logs `fold` and its
report counts folds x seeds."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from benchmark.cli import main
from benchmark.data.splits import fold_indices
from benchmark.features.tensors import FeatureSet, SplitTensors, fold_splits
from benchmark.run.config import MatrixConfig
from benchmark.train.results import Cell


def _labels(counts=(23, 11, 7)) -> np.ndarray:
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    return np.random.default_rng(5).permutation(labels)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_folds_partition_the_rows_stratified_and_validation_never_touches_test(k):
    labels = _labels()
    n = len(labels)
    parts = [fold_indices(labels, n, k, fold, seed=0, validation=0.2) for fold in range(k)]
    tests = [p["test"] for p in parts]
    # every row is a test row exactly once over the folds
    assert sorted(np.concatenate(tests).tolist()) == list(range(n))
    for p in parts:
        train, val, test = (set(p[s].tolist()) for s in ("train", "validation", "test"))
        assert not (train & val) and not (train & test) and not (val & test)
        assert train | val | test == set(range(n))
        assert val and train
    # stratified: each class's count per test fold differs by at most one row across folds
    for cls in np.unique(labels):
        per_fold = [int((labels[t] == cls).sum()) for t in tests]
        assert max(per_fold) - min(per_fold) <= 1, (cls, per_fold)
    sizes = [len(t) for t in tests]
    assert max(sizes) - min(sizes) <= 1
    # validation is the share of all rows asked for, within a row per class
    for p in parts:
        assert abs(len(p["validation"]) - 0.2 * n) <= len(np.unique(labels))


def test_folds_are_seeded_and_unlabelled_rows_are_shuffled():
    labels = _labels()
    a = fold_indices(labels, len(labels), 5, 2, seed=0, validation=0.15)
    b = fold_indices(labels, len(labels), 5, 2, seed=0, validation=0.15)
    c = fold_indices(labels, len(labels), 5, 2, seed=1, validation=0.15)
    assert all(np.array_equal(a[s], b[s]) for s in a)
    assert not np.array_equal(a["test"], c["test"])
    plain = [fold_indices(None, 41, 4, f, seed=0, validation=0.2)["test"] for f in range(4)]
    assert sorted(np.concatenate(plain).tolist()) == list(range(41))
    assert not np.array_equal(plain[0], np.arange(len(plain[0])))  # shuffled, not the first rows


def test_bad_fold_requests_name_the_problem():
    labels = _labels()
    with pytest.raises(ValueError, match="between 2 and"):
        fold_indices(labels, len(labels), 1, 0, 0, 0.2)
    with pytest.raises(ValueError, match="no training rows"):
        fold_indices(labels, len(labels), 2, 0, 0, 0.5)


def _features() -> FeatureSet:
    """Three splits whose pooled feature holds the row's global number; token lengths differ per split."""
    splits, start = {}, 0
    for split, (n, length) in {"train": (30, 5), "validation": (9, 3), "test": (12, 7)}.items():
        rows = torch.arange(start, start + n, dtype=torch.float32)
        splits[split] = SplitTensors(
            pooled={"a": rows[:, None].repeat(1, 2), "b": -rows[:, None]},  # (N, 2), (N, 1)
            tokens={"a": torch.ones(n, length, 2), "b": torch.ones(n, 1, 1)},  # (N, T, D)
            token_mask={"a": torch.ones(n, length, dtype=torch.bool), "b": torch.ones(n, 1, dtype=torch.bool)},
            labels=(rows.long() % 3))  # (N,)
        start += n
    return FeatureSet("syn", ["a", "b"], ["x", "y", "z"], splits)


def test_fold_splits_reindex_the_pooled_cached_features():
    features = _features()
    seen = []
    for fold in range(3):
        parts = fold_splits(features, 3, fold, seed=0, validation=0.2)
        ids = {s: parts[s].pooled["a"][:, 0].long().tolist() for s in parts}
        assert not set(ids["test"]) & (set(ids["train"]) | set(ids["validation"]))
        assert sum(len(v) for v in ids.values()) == 51
        for s, t in parts.items():  # labels travel with their rows; tokens padded to the longest split
            assert t.labels.tolist() == [i % 3 for i in ids[s]]
            assert t.tokens["a"].shape[1:] == (7, 2) and t.token_mask["a"].shape[1] == 7
            assert torch.equal(t.pooled["b"][:, 0], -t.pooled["a"][:, 0])
        short = parts["test"].token_mask["a"][[i < 30 for i in ids["test"]]]  # rows of the 5-token train split
        assert short[:, :5].all() and not short[:, 5:].any()
        seen += ids["test"]
    assert sorted(seen) == list(range(51))


def test_every_strategy_and_seed_sees_the_same_folds(fusebench_home):
    from benchmark.run.folds import FoldSplits
    from benchmark.run.plan import Plan

    card = fusebench_home / "cards" / "syn.yaml"
    card.write_text("name: syn\nsource: {local: {format: csv, data_files: syn.csv}}\nlabel: y\n"
                    "split: {seed: 3, validation: 0.2}\nfolds: 3\n"
                    "modalities:\n  a: {column: a, encoder: vector}\n  b: {column: b, encoder: vector}\n")
    config = MatrixConfig(name="kf", datasets=("syn",), strategies=("concat", "sum"), seeds=(0, 1), trials=0)
    plan = Plan.build(config)
    cells = plan.cells
    assert len(cells) == 2 * 3 * 2 and {c.fold for c in cells} == {0, 1, 2}  # strategies x folds x seeds
    features = _features()
    splits = FoldSplits(config, plan.cards)
    for fold in range(3):
        mine = [c for c in cells if c.fold == fold]
        tests = {tuple(splits.of(c, features, "cpu")["test"].pooled["a"][:, 0].tolist()) for c in mine}
        assert len(tests) == 1 and len({c.strategy for c in mine}) == 2


OLD_HASHES = {  # the hashes of protocol 3's payload with no `fold` key (fixed fingerprint, so independent of
    # code versions); before protocol 3 they were d97a03760a30b7d1 and 67138489bbf910af
    ("concat", 0.3, 0): ("3711b49cd91a01f8", "emoji/concat/drop0.3/t2-e3-b16-p2r0.5m5-k16/01234567"),
    ("unimodal[text]", 0.0, 1): ("1c9a063e968458f2", "emoji/unimodal[text]/drop0/t2-e3-b16-p2r0.5m5-k16/01234567"),
}


def test_a_cell_without_a_fold_keeps_its_old_hash_and_study_name():
    from benchmark.run.plan import Plan
    from benchmark.run.planning import budget_tag, cell_hash

    config = MatrixConfig(name="h", datasets=("emoji",), strategies=("concat",), trials=2, epochs=3, batch_size=16,
                          patience=2)
    fingerprint = "0123456789abcdef" * 4
    tuned_at = 0.3  # shared tuning at the middle of the profile's rates, (0.3,)
    for (variant, dropout, seed), (old_hash, old_study) in OLD_HASHES.items():
        fixed = {"modality": "text"} if variant.startswith("unimodal") else {}
        cell = Cell("emoji", variant.split("[")[0], variant, dropout, seed, fixed)
        assert cell_hash(cell, config, fingerprint, tuned_at) == old_hash
        assert cell.study_name(budget_tag(config), fingerprint) == old_study
        folded = Cell("emoji", variant.split("[")[0], variant, dropout, seed, fixed, fold=2)
        assert cell_hash(folded, config, fingerprint, tuned_at) != old_hash
        assert folded.study_name(budget_tag(config), fingerprint) == old_study.replace("/01234567", "/fold2/01234567")
        assert folded.label().endswith(f"seed {seed} · fold 2")
    # the matrix id of a profile without folds does not carry the field
    assert (Plan.build(MatrixConfig(name="h", datasets=("emoji",))).matrix_id
            != Plan.build(MatrixConfig(name="h", datasets=("emoji",), folds=5)).matrix_id)


def test_fold_k_of_five_is_not_fold_k_of_two():
    from benchmark.run.plan import Plan

    two, five = (Plan.build(MatrixConfig(name="kf", datasets=("emoji",), strategies=("concat",), folds=k))
                 for k in (2, 5))
    assert two.input_fingerprints["emoji", "concat"] != five.input_fingerprints["emoji", "concat"]
    assert len(five.cells) == 5 * len(Plan.build(MatrixConfig(name="kf", datasets=("emoji",),
                                                              strategies=("concat",))).cells)


@pytest.mark.parametrize("value", ["1", "x", "true", "0"])
def test_profile_folds_must_be_an_integer_of_at_least_two(fusebench_home, capsys, value):
    profile = fusebench_home / "kf.yaml"
    profile.write_text(f"datasets: [emoji]\nstrategies: [concat]\nfolds: {value}\n")
    assert main(["bench", "--profile", str(profile)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(profile) in err[0] and "'folds'" in err[0] and ">= 2" in err[0], err


@pytest.mark.parametrize("value", ["1", "x", "2.5"])
def test_card_folds_must_be_an_integer_of_at_least_two(toy_card, capsys, value):
    toy_card.write_text(toy_card.read_text() + f"folds: {value}\n")
    assert main(["bench", "--profile", "smoke", "--datasets", "toy", "--strategies", "concat"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(toy_card) in err[0] and "field 'folds'" in err[0] and ">= 2" in err[0], err


def test_folds_flag_is_validated(fusebench_home, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--profile", "smoke", "--folds", "1"])
    assert exit_.value.code == 2 and "--folds" in capsys.readouterr().err


def test_too_many_folds_for_the_validation_share_is_refused(toy_card, capsys):
    toy_card.write_text(toy_card.read_text().replace("validation: 0.2", "validation: 0.6") + "folds: 2\n")
    assert main(["bench", "--profile", "smoke", "--datasets", "toy", "--strategies", "concat"]) == 2
    err = capsys.readouterr().err
    assert "field 'folds'" in err and "no training rows" in err


@pytest.mark.slow
def test_two_fold_bench_logs_folds_and_reports_folds_x_seeds(toy_card, fusebench_home, capsys):
    from mlflow.tracking import MlflowClient
    import optuna

    from benchmark.reporting.fetch import fetch_matrix
    from tests.helpers_runs import cell_runs

    uri = os.environ["MLFLOW_TRACKING_URI"]
    args = ["bench", "--profile", "smoke", "--datasets", "toy", "--strategies", "concat,sum", "--trials", "1",
            "--epochs", "2", "--seeds", "0,1", "--dropout", "0.3", "--device", "cpu", "--folds", "2"]
    assert main(args) == 0
    out = capsys.readouterr().out
    runs = cell_runs(uri)
    assert len(runs) == 2 * 2 * 2  # strategies x folds x seeds
    assert sorted((r.data.params["strategy"], r.data.params["fold"], r.data.params["seed"]) for r in runs) == sorted(
        (s, f, seed) for s in ("concat", "sum") for f in "01" for seed in "01")
    for run in runs:
        assert run.data.tags["fold"] == run.data.params["fold"]
        assert run.info.run_name.endswith(f"· fold {run.data.params['fold']}")
        # the fold's test split: half of the toy's 60 pooled rows, not the card's 18-row test split
        assert run.data.metrics["data_rows.test.image-text"] == 30
    studies = sorted(s.study_name for s in optuna.get_all_study_summaries(os.environ["FUSEBENCH_OPTUNA_STORAGE"]))
    assert len(studies) == 4 and sum("/fold0/" in s for s in studies) == 2 and sum("/fold1/" in s for s in studies) == 2

    # the report: n counts folds x seeds, and the paired test resamples each fold's test rows with its seeds
    # nested in it (the runs logged their per-row predictions): n says folds x seeds and the rows
    assert "runs (n = folds x seeds)" in out and "n (what it counts)" in out and "2 folds x 2 seeds (60 rows)" in out
    assert "paired bootstrap" in out
    row = next(line for line in out.splitlines() if line.startswith("| 1 |") or line.startswith("| — |"))
    assert "| 4 |" in row, row
    ok = fetch_matrix(uri).ok
    assert sorted(ok["fold"].tolist()) == [0, 0, 0, 0, 1, 1, 1, 1]
    assert MlflowClient(tracking_uri=uri).get_experiment_by_name("fusebench") is not None
