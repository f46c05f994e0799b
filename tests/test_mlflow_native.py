"""The MLflow-native experience: the experiment opens on the runs table (model-training view),
each cell run carries its Optuna study (name, winning trial, search space), the report's
figures are images of the parent run, `fusebench ui` prints the runs-page address, and a
real browser check of the UI (skipped where Chromium is not installed)."""

from __future__ import annotations

import json
import os
import struct

import optuna
import pytest
from mlflow.tracking import MlflowClient

from benchmark.cli import main
from benchmark import vocabulary
from benchmark.vocabulary import EXPERIMENT, EXPERIMENT_KIND, EXPERIMENT_KIND_TAG
from benchmark.tracking.mlflow_runs import experiment_id
from benchmark.tracking.ui import find_browser, runs_page_url


def test_a_new_experiment_opens_in_the_model_training_view(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    eid = experiment_id(uri)
    assert MlflowClient(uri).get_experiment(eid).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert EXPERIMENT_KIND == "custom_model_development"


def test_an_existing_experiment_without_the_kind_gets_it_and_a_chosen_kind_is_kept(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = MlflowClient(uri)
    old = client.create_experiment(EXPERIMENT)  # as an older fusebench made it: no kind tag
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(old).tags
    assert experiment_id(uri) == old
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    client.set_experiment_tag(old, EXPERIMENT_KIND_TAG, "genai_development")  # a user's own choice in the UI
    experiment_id(uri)
    assert client.get_experiment(old).tags[EXPERIMENT_KIND_TAG] == "genai_development"


def test_the_runs_page_address_names_the_experiment_id_from_the_store(tmp_path, monkeypatch, capsys):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = MlflowClient(uri)
    client.create_experiment("someone else's")  # so the fusebench experiment's id is not the first
    eid = experiment_id(uri)
    assert eid != "0" and eid != client.get_experiment_by_name("someone else's").experiment_id
    url = f"http://127.0.0.1:5123/#/experiments/{eid}/runs?workflowType=machine_learning"
    assert runs_page_url(uri, port=5123) == url
    assert main(["ui", "--tracking-uri", uri, "--port", "5123", "--print-url"]) == 0
    out = capsys.readouterr().out
    assert url in out and f"{url}&viewStateShareKey=fusebench-cells" in out
    # the saved view that second address opens: a tag of the experiment holding the columns as JSON
    view = json.loads(client.get_experiment(eid).tags["mlflow.sharedViewState.fusebench-cells"])
    assert "metrics.`test_accuracy`" in view["selectedColumns"] and "params.`variant`" in view["selectedColumns"]


def test_study_tags_name_the_winning_trial_and_the_search_space(tmp_path):
    from benchmark.train.study_tags import NO_TRIAL, search_space_tags, study_tags
    from benchmark.train.tuning import TRAINING_SPACE, load_study
    from strategies import get_strategy

    study = load_study("toy/concat/drop0.3/t3", f"sqlite:///{tmp_path / 'optuna.db'}", 3, metric="accuracy")
    assert study_tags(study, "concat", "accuracy")[vocabulary.TAG_BEST_TRIAL] == NO_TRIAL
    lr = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
    for slot, value in enumerate([0.5, 0.8, 0.6]):
        study.add_trial(optuna.trial.create_trial(params={"train.lr": 1e-3}, distributions={"train.lr": lr},
                                                  value=value, user_attrs={"slot": slot}))
    # a trial outside the budget slots (no "slot") never counts, however good
    study.add_trial(optuna.trial.create_trial(params={"train.lr": 1e-3}, distributions={"train.lr": lr}, value=0.99))
    tags = study_tags(study, "concat", "accuracy")
    assert tags[vocabulary.TAG_STUDY] == "toy/concat/drop0.3/t3"
    assert tags[vocabulary.TAG_BEST_TRIAL] == "1"
    assert study_tags(study, "concat", "mae")[vocabulary.TAG_BEST_TRIAL] == "0"  # lower is better
    space = search_space_tags("concat")
    assert set(space) == ({f"hp.{k}_distribution" for k in get_strategy("concat").search_space}
                          | {f"train.{k}_distribution" for k in TRAINING_SPACE})
    assert space["train.lr_distribution"] == str(lr)  # the text optuna-integration's MLflowCallback logs


def test_the_tags_name_the_distributions_a_trial_samples_from():
    """One mapping from the declared search space to Optuna (tuning.distribution): a trial's own
    record of what it sampled matches the strategy's search-space tags, for every strategy."""
    from benchmark.train.study_tags import search_space_tags
    from benchmark.train.tuning import TRAINING_SPACE, suggest
    from strategies import discover

    for name, cls in discover().items():
        trial = optuna.create_study().ask()
        suggest(trial, cls.search_space, "hp.")
        suggest(trial, TRAINING_SPACE, "train.")
        assert {f"{key}_distribution": str(d) for key, d in trial.distributions.items()} == search_space_tags(name), name
    with pytest.raises(TypeError, match="unsupported search-space entry 'odd'"):
        suggest(optuna.create_study().ask(), {"odd": 0.5})  # a bare number, not an IntParam/FloatParam/Categorical


@pytest.mark.slow
def test_a_bench_cell_run_carries_its_study_and_the_parent_its_figures(toy_card, fusebench_home, capsys):
    uri = os.environ["MLFLOW_TRACKING_URI"]
    assert main(["bench", "--profile", "smoke", "--datasets", "toy", "--strategies", "concat", "--trials", "2",
                 "--epochs", "3", "--patience", "2", "--seeds", "0", "--dropout", "0.3", "--device", "cpu"]) == 0
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    [cell] = client.search_runs([experiment.experiment_id], "tags.`fusebench.kind` = 'cell'")
    tags = cell.data.tags
    assert tags[vocabulary.TAG_STUDY].startswith("toy/concat/drop0.3/")
    study = optuna.load_study(study_name=tags[vocabulary.TAG_STUDY], storage=os.environ["FUSEBENCH_OPTUNA_STORAGE"])
    winner = study.trials[int(tags[vocabulary.TAG_BEST_TRIAL])]
    assert winner.value == max(t.value for t in study.trials if t.value is not None)
    # the cell retrained the winning trial's hyperparameters
    assert float(cell.data.params["train.lr"]) == pytest.approx(winner.params["train.lr"])
    assert tags["train.lr_distribution"].startswith("FloatDistribution(")
    assert any(k.startswith("hp.") and k.endswith("_distribution") for k in tags)
    [parent] = client.search_runs([experiment.experiment_id], "tags.`fusebench.kind` = 'matrix'")
    images = [a.path for a in client.list_artifacts(parent.info.run_id, "images")]
    assert any(p.endswith(".png") for p in images), images


@pytest.mark.slow
@pytest.mark.skipif(find_browser() is None, reason="no Chromium on PATH (Debian package `chromium`) for the UI check")
def test_the_ui_check_screenshots_the_runs_page_in_headless_chromium(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    out = tmp_path / "reports" / "mlflow_ui.png"
    assert main(["ui", "--tracking-uri", uri, "--screenshot", str(out)]) == 0
    assert "#/experiments/" in capsys.readouterr().out
    header = out.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (1600, 1000)  # width, height of the window
