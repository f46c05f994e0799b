"""The Plan (benchmark/run/plan.py): one immutable description of a matrix, built once per command;
its units typed and in run order (a study's trial slots before its cells, slot k after slots < k)."""

from __future__ import annotations

import dataclasses

import pytest

from benchmark.run.config import MatrixConfig
from benchmark.run.plan import Plan
from benchmark.run.units import CellUnit, TrialUnit

TAB_CARD = ("name: tab2\nsource: {local: {format: csv, data_files: tab2.csv}}\nlabel: y\n"
            "modalities:\n  left: {columns: [x1, x2], encoder: tabular}\n  right: {columns: [x3], encoder: tabular}\n")


@pytest.fixture
def tab_card(fusebench_home):
    """A small two-modality table whose features need no network (tabular encoders)."""
    cards = fusebench_home / "cards"
    rows = "\n".join(f"{i % 2},{i * 0.1:.1f},{(i * 7) % 5},{i % 3}" for i in range(40))
    (cards / "tab2.csv").write_text("y,x1,x2,x3\n" + rows + "\n")
    (cards / "tab2.yaml").write_text(TAB_CARD)
    return cards / "tab2.yaml"


def _plan(**overrides) -> Plan:
    fields = dict(name="p", datasets=("emoji",), strategies=("concat", "unimodal"), dropout_rates=(0, 0.3, 0.6),
                  seeds=(0, 1), trials=3)
    return Plan.build(MatrixConfig(**{**fields, **overrides}))


def test_units_are_typed_and_each_study_runs_its_slots_in_order_then_its_cells():
    plan = _plan()
    assert plan.trial_slots_per_study == 3 and len(plan.studies) == 3  # concat + unimodal[image], unimodal[text]
    assert all(isinstance(u, (TrialUnit, CellUnit)) for u in plan.units)
    assert len({u.id for u in plan.units}) == len(plan.units)
    assert len(plan.trial_units) == len(plan.studies) * plan.trial_slots_per_study
    assert [u.cell for u in plan.cell_units] == [c for s in plan.studies for c in s.cells]
    assert sorted(map(repr, plan.cells)) == sorted(repr(u.cell) for u in plan.cell_units)
    position = {u.id: k for k, u in enumerate(plan.units)}
    for study in plan.studies:
        slots = [plan.unit(unit) for unit in study.trial_units]
        assert [s.slot for s in slots] == [0, 1, 2]
        for k, slot in enumerate(slots):
            assert isinstance(slot, TrialUnit) and slot.study_key == study.key
            assert slot.waits_for == study.trial_units[:k]  # slot k waits for the slots before it
            assert slot.tuning_cell == study.tuning_cell and slot.tuning_cell.dropout == 0.3  # the middle rate
        cells = [u for u in plan.cell_units if u.study_key == study.key]
        assert [u.cell for u in cells] == list(study.cells) == list(plan.cells_of(study.key))
        assert max(position[s.id] for s in slots) < min(position[u.id] for u in cells)  # slots before cells
        for unit in cells:
            assert unit.waits_for == study.trial_units
            assert unit.cell_hash == plan.cell_hash(unit.cell) and unit.id == f"cell:{unit.cell_hash}"
    # one form of the training rate in cells and units: 0 as the profile wrote it is the float 0.0
    assert plan.rates == (0.0, 0.3, 0.6) and {type(c.dropout) for c in plan.cells} == {float}


def test_the_plan_is_immutable():
    plan = _plan(strategies=("concat",), dropout_rates=(0.3,), seeds=(0,))
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.matrix_id = "other"
    with pytest.raises(dataclasses.FrozenInstanceError):
        plan.units[0].slot = 5
    with pytest.raises(TypeError):
        plan.cards["other"] = plan.cards["emoji"]
    assert isinstance(plan.cells, tuple) and isinstance(plan.units, tuple) and isinstance(plan.studies, tuple)
    plan.not_applicable["emoji"] = {"concat": "changed"}  # a copy: the plan keeps its own
    assert plan.not_applicable == {}
    with pytest.raises(KeyError, match="not a unit of matrix"):
        plan.unit("cell:0000")


def test_an_untuned_matrix_has_cells_that_wait_for_nothing():
    plan = _plan(strategies=("concat",), trials=0)
    assert plan.trial_units == () and all(u.waits_for == () for u in plan.cell_units)


def test_a_per_modality_rate_for_a_modality_a_dataset_lacks_is_refused_once_naming_the_source(tab_card):
    from benchmark.run.config import ProfileError

    config = MatrixConfig(name="p", datasets=("tab2",), dropout_rates=((("image", 0.5),),))
    with pytest.raises(ProfileError, match=r"profile 'p': field 'dropout_rates': modality 'image'"):
        Plan.build(config)
    with pytest.raises(ProfileError, match=r"^--dropout: modality 'image'"):
        Plan.build(config, lambda field: "--dropout")


@pytest.mark.slow
def test_a_bench_and_its_status_build_the_plan_once_and_hash_each_dataset_once(tab_card, fusebench_home,
                                                                               monkeypatch, capsys):
    """`bench` (a dry run, then a real run with one in-process worker) and `status` each build one
    Plan, which hashes each dataset's data once; the coordinator and the worker read it."""
    import os

    from benchmark.cli import main
    from benchmark.run import identity, plan as plan_module
    from benchmark.run.status import matrix_status

    builds, hashed = [], []
    real_build, real_fingerprint = Plan.build.__func__, identity.dataset_fingerprint

    def counted_build(cls, config, where=None):
        builds.append(config.name)
        return real_build(cls, config, where)

    def counted_fingerprint(card):
        hashed.append(card.name)
        return real_fingerprint(card)

    monkeypatch.setattr(Plan, "build", classmethod(counted_build))
    monkeypatch.setattr(plan_module, "dataset_fingerprint", counted_fingerprint)
    monkeypatch.setattr(identity, "dataset_fingerprint", counted_fingerprint)
    bench = ["bench", "--profile", "smoke", "--datasets", "tab2", "--strategies", "concat,sum", "--trials", "1",
             "--epochs", "1", "--patience", "1", "--seeds", "0", "--dropout", "0", "--device", "cpu", "--no-report"]
    assert main(bench + ["--dry-run"]) == 0
    assert (len(builds), hashed) == (1, ["tab2"])
    builds.clear(), hashed.clear()
    assert main(bench) == 0
    assert "2 cells: 2 run now" in capsys.readouterr().out
    assert (len(builds), hashed) == (1, ["tab2"])
    builds.clear(), hashed.clear()
    status = matrix_status(os.environ["FUSEBENCH_OPTUNA_STORAGE"], read_failed=False)
    assert status.finished and (status.trials_total, status.cells_total) == (2, 2)
    assert (len(builds), hashed) == (1, ["tab2"])
