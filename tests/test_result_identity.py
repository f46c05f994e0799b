"""A result's identity includes everything that produced it (issue 11): the card's content, its
encoders' versions, the strategy's code and search space, the protocol version. Edit one and
the cell hashes, the Optuna study names and the matrix id change, so nothing is reused; leave
them alone and every id stays the same, on any machine. Also the card's `ranking_metric`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.data.cards import CardError, load_card

REPO = Path(__file__).resolve().parent.parent

CARD = """name: idt
description: identity test card
source: {local: {format: csv, data_files: idt.csv}}
label: y
split: {seed: 0, validation: 0.2, test: 0.2}
modalities:
  image: {column: img, encoder: raw_pixels, size: 28, patch: 7}
  text: {column: t, encoder: minilm}
"""


def _config(**overrides):
    from benchmark.run.config import MatrixConfig

    fields = dict(name="ident", datasets=("idt",), strategies=("concat", "unimodal"), dropout_rates=(0.0, 0.3),
                  seeds=(0, 1), trials=2, epochs=1, batch_size=16)
    return MatrixConfig(**{**fields, **overrides})


def _ids(config=None) -> dict:
    """Every id planning gives the matrix: cell hashes, study names, units, matrix id."""
    from benchmark.run.plan import Plan

    plan = Plan.build(config or _config())
    return {"hashes": [plan.cell_hash(c) for c in plan.cells], "studies": [s.key for s in plan.studies],
            "units": [u.id for u in plan.units], "matrix": plan.matrix_id}


def _assert_all_differ(before: dict, after: dict) -> None:
    assert before["matrix"] != after["matrix"]
    assert not set(before["hashes"]) & set(after["hashes"])
    assert not set(before["studies"]) & set(after["studies"])
    assert not set(before["units"]) & set(after["units"])


@pytest.fixture
def card(fusebench_home) -> Path:
    path = fusebench_home / "cards" / "idt.yaml"
    path.write_text(CARD)
    return path


def test_unchanged_card_gives_identical_ids(card):
    from benchmark.run import identity

    first = _ids()
    assert first == _ids()
    identity._cards_cache.clear()  # as a new process would: parsed again, same ids
    assert first == _ids()
    # Comments, layout, key order and documentation fields are not the card's content.
    card.write_text("# a comment\n" + CARD.replace("description: identity test card", "description: reworded")
                    .replace("{column: t, encoder: minilm}", "{encoder: minilm,   column: t}"))
    assert first == _ids()
    assert len(set(first["hashes"])) == len(first["hashes"]) == 2 * 2 * 3  # (concat + 2 unimodal) x 2 rates x 2 seeds


def test_study_names_stay_readable(card):
    from benchmark.run.plan import Plan

    config = _config()
    plan = Plan.build(config)
    cell = plan.cells[0]
    fingerprint = plan.input_fingerprints[cell.dataset, cell.strategy]
    # shared tuning: the study of every rate is the one tuned at the middle rate of (0, 0.3)
    budget = f"t2-e1-b16-p{config.patience}r{config.patience_ratio:g}m{config.min_epochs}-k{config.max_tokens}"
    assert _ids()["studies"][0] == f"idt/concat/drop0.3/{budget}/{fingerprint[:8]}"
    assert _ids(_config(tuning="per_rate"))["studies"][0] == f"idt/concat/drop0/{budget}/{fingerprint[:8]}"


@pytest.mark.parametrize("change", [{"trials": 3}, {"epochs": 2}, {"batch_size": 32}, {"patience": 9}])
def test_another_budget_never_shares_a_study(card, change):
    before, after = _ids(), _ids(_config(**change))
    _assert_all_differ(before, after)


@pytest.mark.parametrize("old, new", [
    ("encoder: raw_pixels", "encoder: small_cnn"),  # another encoder
    ("patch: 7", "patch: 4"),  # an encoder option (and so its version)
    ("label: y", "label: z"),
    ("seed: 0", "seed: 1"),
    ("label: y\n", "label: y\nranking_metric: macro_f1\n"),
])
def test_editing_the_card_changes_every_id(card, old, new):
    before = _ids()
    card.write_text(CARD.replace(old, new))
    _assert_all_differ(before, _ids())
    card.write_text(CARD)  # and back: the old ids again
    assert _ids() == before


def test_only_the_edited_cards_cells_change(card):
    from benchmark.run.plan import Plan

    (card.parent / "other.yaml").write_text(CARD.replace("name: idt", "name: other"))
    config = _config(datasets=("idt", "other"))

    def hashes() -> dict:
        plan = Plan.build(config)
        return {(c.dataset, c.variant, c.dropout, c.seed): plan.cell_hash(c) for c in plan.cells}

    before = hashes()
    card.write_text(CARD.replace("encoder: minilm", "encoder: hf-text:some/model"))
    after = hashes()
    assert all(after[k] == v for k, v in before.items() if k[0] == "other")
    assert all(after[k] != v for k, v in before.items() if k[0] == "idt")


def test_encoder_version_strategy_code_and_protocol_are_part_of_the_identity(card, monkeypatch):
    from benchmark.features.text import MiniLMText
    from benchmark.run import identity
    from strategies import discover

    before = _ids()
    with monkeypatch.context() as patch:
        patch.setattr(MiniLMText, "version", "all-MiniLM-L6-v2/gt-0.1.0/maxlen64")
        identity._encoder_version.cache_clear()  # versions are cached per process: a new version is new code
        _assert_all_differ(before, _ids())
    identity._encoder_version.cache_clear()
    assert _ids() == before

    concat = discover().get("concat")
    space = dict(concat.search_space)
    space.pop(sorted(space)[0])
    with monkeypatch.context() as patch:
        patch.setattr(concat, "search_space", space)
        identity._class_fingerprint.cache_clear()
        after = _ids()
    identity._class_fingerprint.cache_clear()
    assert after["matrix"] != before["matrix"]
    changed = {h for h in after["hashes"] if h not in before["hashes"]}
    assert len(changed) == 4  # the concat cells only: 2 rates x 2 seeds
    assert _ids() == before

    monkeypatch.setattr(identity, "PROTOCOL_VERSION", identity.PROTOCOL_VERSION + "-next")
    _assert_all_differ(before, _ids())


def test_strategy_fingerprint_covers_its_modules_and_helpers():
    from benchmark.run.identity import _code_modules, strategy_fingerprint
    from strategies import discover

    modules = [m.__name__ for m in _code_modules(discover().get("mult"))]
    assert {"strategies.mult", "strategies.base", "strategies.attention"} <= set(modules)  # helpers it imports
    assert not {"strategies", "strategies.registry", "strategies.registration"} & set(modules)  # registry machinery
    assert not any(m.startswith("torch") for m in modules)
    assert strategy_fingerprint("concat") != strategy_fingerprint("sum")  # same module, different class


def test_ids_are_the_same_on_another_machine(card, tmp_path):
    """Another checkout place, another cards folder, another process: the same ids."""
    here = _ids()
    elsewhere = tmp_path / "elsewhere" / "cards"
    shutil.copytree(card.parent, elsewhere)
    script = ("import json; from tests.test_result_identity import _ids; print('IDS=' + json.dumps(_ids()))")
    env = {**os.environ, "FUSEBENCH_DATASETS": str(elsewhere), "PYTHONHASHSEED": "123", "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    there = json.loads(next(line for line in out.stdout.splitlines() if line.startswith("IDS="))[4:])
    assert there == here


# ----------------------------------------------------------------------- ranking_metric


def test_ranking_metric_defaults_to_accuracy(tmp_path):
    path = tmp_path / "idt.yaml"
    path.write_text(CARD)
    assert load_card(path).ranking_metric == "accuracy"
    path.write_text(CARD.replace("label: y\n", "label: y\nranking_metric: macro_f1\n"))
    assert load_card(path).ranking_metric == "macro_f1"


@pytest.mark.parametrize("value", ["f1", "Accuracy", "1", "[accuracy]", "null"])
def test_invalid_ranking_metric_names_file_field_and_choices(tmp_path, value):
    from benchmark.vocabulary import TASK_METRICS

    path = tmp_path / "idt.yaml"  # a multiclass card: "f1" (a binary metric) is not one of its metrics
    path.write_text(CARD.replace("label: y\n", f"label: y\nranking_metric: {value}\n"))
    with pytest.raises(CardError) as info:
        load_card(path)
    assert info.value.field_name == "ranking_metric"
    message = str(info.value)
    assert str(path) in message and "'ranking_metric'" in message
    assert all(repr(name) in message for name in TASK_METRICS["multiclass"]) and "'multiclass'" in message, message


def test_clothing_reviews_is_ranked_by_macro_f1():
    from benchmark.vocabulary import TASK_METRICS

    card = load_card(REPO / "datasets" / "clothing_reviews.yaml")
    assert card.ranking_metric == "macro_f1"
    # every built-in card is ranked by one of its task's metrics (load_card checks it against the task)
    for path in (REPO / "datasets").glob("*.yaml"):
        card = load_card(path)
        assert card.ranking_metric in TASK_METRICS[card.task], path


# ----------------------------------------------------------------------- end to end


TAB_CARD = ("name: tab2\nsource: {local: {format: csv, data_files: tab2.csv}}\nlabel: y\n"
            "modalities:\n  left: {columns: [x1, x2], encoder: tabular}\n  right: {columns: [x3], encoder: tabular}\n")
BENCH = ["bench", "--profile", "smoke", "--datasets", "tab2", "--strategies", "concat", "--trials", "1",
         "--epochs", "1", "--seeds", "0", "--dropout", "0", "--device", "cpu", "--no-report"]


@pytest.mark.slow
def test_bench_runs_cells_again_after_the_card_changed(fusebench_home, capsys, monkeypatch):
    """A tiny real bench: unchanged, a re-run skips the finished cell; after the card's encoder
    options change, or its encoder's version, the cell runs (and is tuned) again."""
    from benchmark.cli import main
    from benchmark.features.tabular import TabularEncoder
    from benchmark.run import identity
    from tests.helpers_runs import assert_trial_budget, cell_runs, finished

    cards = fusebench_home / "cards"
    rows = "\n".join(f"{i % 2},{i * 0.1:.1f},{(i * 7) % 5},{i % 3}" for i in range(40))
    (cards / "tab2.csv").write_text("y,x1,x2,x3\n" + rows + "\n")
    (cards / "tab2.yaml").write_text(TAB_CARD)
    uri = os.environ["MLFLOW_TRACKING_URI"]

    assert main(BENCH) == 0
    assert "1 run now, 0 already done" in capsys.readouterr().out
    assert main(BENCH) == 0
    assert "0 run now, 1 already done" in capsys.readouterr().out

    (cards / "tab2.yaml").write_text(TAB_CARD.replace("encoder: tabular}\n", "encoder: tabular, categorical: [x3]}\n"))
    assert main(BENCH) == 0
    assert "1 run now, 0 already done" in capsys.readouterr().out

    with monkeypatch.context() as patch:
        patch.setattr(TabularEncoder, "version", "tabular-v2")
        identity._encoder_version.cache_clear()
        assert main(BENCH) == 0
        assert "1 run now, 0 already done" in capsys.readouterr().out
    identity._encoder_version.cache_clear()

    runs = finished(cell_runs(uri))
    assert len(runs) == 3 and len({r.data.tags["fusebench.cell_hash"] for r in runs}) == 3
    assert len({r.data.tags["fusebench.matrix_id"] for r in runs}) == 3
    assert_trial_budget(os.environ["FUSEBENCH_OPTUNA_STORAGE"], trials=1, studies=3)  # tuned afresh each time
