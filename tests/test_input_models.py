"""Issue 21, item 3: cards, profiles, flags and the API's overrides are checked by one set of
validated models (benchmark/inputmodel.py, benchmark/data/card_model.py,
benchmark/run/profile_model.py): unknown fields at any depth are refused with the closest valid
name, a wrong type names the field and what it takes, and each profile limit is stated once, so a
profile file, a `fusebench bench` flag and an `api.run` keyword give the same words for it."""

from __future__ import annotations

import pytest
import yaml

from benchmark import api
from benchmark.cli import build_parser, main
from benchmark.data.cards import CardError, card_paths, load_card
from benchmark.paths import REPO_ROOT
from benchmark.run.config import PROFILES_DIR, MatrixConfig, ProfileError, load_profile

CARD = """name: toy
source:
  local: {format: csv, data_files: toy.csv}
label: y
modalities:
  text: {column: t, encoder: minilm}
  image: {column: img, encoder: efficientnet_lite0}
"""


def _card_error(tmp_path, text: str) -> CardError:
    path = tmp_path / "toy.yaml"
    path.write_text(text)
    with pytest.raises(CardError) as info:
        load_card(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    return info.value


@pytest.mark.parametrize("change, field, hint", [
    (("local: {format: csv, data_files: toy.csv}", "hub: {id: a/b, revison: main}"), "source.hub.revison", "revision"),
    (("data_files: toy.csv", "data_fils: toy.csv"), "source.local.data_fils", "data_files"),
    (("label: y\n", "label: y\nsplit: {seed: 0, valdation: 0.2}\n"), "split.valdation", "validation"),
    (("local: {", "locl: {"), "source.locl", "local"),
    (("{column: t, encoder: minilm}", "{colum: t, encoder: minilm}"), "modalities.text.colum", "column"),
    (("{column: t, encoder: minilm}", "{column: t, encodr: minilm}"), "modalities.text.encodr", "encoder"),
    (("label: y\n", "lable: y\n"), "lable", "label"),  # the misspelling, not the label it leaves missing
])
def test_an_unknown_field_at_any_depth_names_its_path_and_the_closest_name(tmp_path, change, field, hint):
    error = _card_error(tmp_path, CARD.replace(*change))
    assert error.field_name == field
    assert f"field '{field}': unknown field (did you mean '{hint}'?)" in str(error), error


@pytest.mark.parametrize("change, field, expected", [
    (("encoder: minilm", "encoder: 3"), "modalities.text.encoder", "expected an encoder name"),
    (("data_files: toy.csv", "data_files: [a.csv, b.csv]"), "source.local.data_files",
     "expected a path or {split: path}"),
    (("label: y\n", "label: y\nsplit: {seed: 1.5}\n"), "split.seed", "expected an integer seed, got 1.5"),
    (("label: y\n", "label: y\nfolds: true\n"), "folds", "expected an integer >= 2 or null"),
    (("label: y\n", "label: y\nsign_accuracy: 1\n"), "sign_accuracy", "expected true or false, got 1"),
    (("label: y\n", "label: [y]\n"), "label", "expected the name of the label column (string), got ['y']"),
    (("label: y\n", "label: y\nsource2: x\n"), "source2", "did you mean 'source'"),
    (("format: csv", "format: xlsx"), "source.local.format", "expected one of ['csv', 'parquet'"),
])
def test_a_wrong_type_names_the_field_and_what_it_takes(tmp_path, change, field, expected):
    error = _card_error(tmp_path, CARD.replace(*change))
    assert error.field_name == field and expected in str(error), error


def test_a_card_that_is_not_a_mapping_is_one_line(tmp_path):
    error = _card_error(tmp_path, "- name: toy\n")
    assert error.field_name == "(top level)" and "expected a mapping of fields (name, " in str(error)


def test_a_bad_nested_card_field_from_the_cli_is_one_line_exit_2(tmp_path, fusebench_home, capsys):
    path = tmp_path / "toy.yaml"
    path.write_text(CARD.replace("local: {format: csv, data_files: toy.csv}", "hub: {id: a/b, revison: main}"))
    assert main(["bench", "--profile", "smoke", "--datasets", str(path), "--dry-run"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "source.hub.revison" in lines[0] and "did you mean 'revision'" in lines[0], lines
    assert not (fusebench_home / "mlruns.db").exists() and not (fusebench_home / "optuna.db").exists()


# (profile field, YAML value, flag and its text or None, API value): each out of the field's limits
OUT_OF_RANGE = [
    ("trials", "-1", ("--trials", "-1"), -1),
    ("epochs", "0", ("--epochs", "0"), 0),
    ("patience", "0", ("--patience", "0"), 0),
    ("batch_size", "0", ("--batch-size", "0"), 0),
    ("folds", "1", ("--folds", "1"), 1),
    ("seeds", "[0, 0]", ("--seeds", "0,0"), [0, 0]),
    ("seeds", "[1000000]", ("--seeds", "1000000"), [1_000_000]),
    ("dropout_rates", "[1.5]", ("--dropout", "1.5"), [1.5]),
    ("amp", "fp8", ("--amp", "fp8"), "fp8"),
    ("missing_inputs", "[zero, zero]", ("--missing-inputs", "zero,zero"), ["zero", "zero"]),
    ("min_epochs", "0", None, 0),
    ("patience_ratio", "-0.5", None, -0.5),
    ("max_tokens", "0", None, 0),
    ("tuning", "per_cell", None, "per_cell"),
]


def _profile_problem(tmp_path, field: str, value: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(f"{field}: {value}\n")
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    prefix = f"{path}: field '{field}': "
    assert str(info.value).startswith(prefix), info.value
    return str(info.value)[len(prefix):]


def _flag_problem(flag: str, text: str, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--profile", "smoke", f"{flag}={text}"])
    assert exit_.value.code == 2
    line = capsys.readouterr().err.strip()
    prefix, suffix = f"fusebench bench: error: argument {flag}: ", " (see `fusebench bench --help`)"
    assert "\n" not in line and line.startswith(prefix) and line.endswith(suffix), line
    return line[len(prefix):-len(suffix)]


def _api_problem(field: str, value) -> str:
    with pytest.raises(ProfileError) as info:
        api.run("smoke", **{field: value})
    prefix = f"api.run(): override '{field}': "
    assert str(info.value).startswith(prefix), info.value
    return str(info.value)[len(prefix):]


@pytest.mark.parametrize("field, text, flag, value", OUT_OF_RANGE, ids=[f"{f}={t}" for f, t, _, _ in OUT_OF_RANGE])
def test_a_limit_is_stated_once_profile_flag_and_api_say_the_same(field, text, flag, value, tmp_path, fusebench_home,
                                                                  capsys):
    """One limit, one wording: the profile file, the flag and the API keyword are checked by the same
    profile model, and nothing is written by any of them."""
    from_profile = _profile_problem(tmp_path, field, text)
    assert from_profile.startswith("expected"), from_profile
    if flag:
        assert _flag_problem(*flag, capsys) == from_profile
    assert _api_problem(field, value) == from_profile
    assert not (fusebench_home / "mlruns.db").exists() and not (fusebench_home / "optuna.db").exists()


def test_a_flag_that_is_not_a_number_is_worded_by_the_field(capsys):
    assert _flag_problem("--trials", "two", capsys) == ("expected an integer >= 0 (the Optuna trial budget per "
                                                       "study), got 'two'")


def test_api_unknown_keywords_are_named_with_the_closest_name(fusebench_home):
    with pytest.raises(ProfileError, match=r"override 'devise': unknown field \(did you mean 'device'\?\)"):
        api.run("smoke", devise="cpu")
    with pytest.raises(ProfileError, match=r"api.run\(\): override 'seed': unknown field \(did you mean 'seeds'\?\)"):
        api.run("smoke", seed=[0])
    with pytest.raises(ProfileError, match=r"override 'name': set by the profile"):
        api.run("smoke", name="other")


def test_the_cli_and_the_api_build_the_same_matrix(toy_card, capsys):
    """The same overrides through a flag or a keyword: the same MatrixConfig and matrix id."""
    from benchmark.cli import _matrix_config
    from benchmark.run.plan import Plan

    args = build_parser().parse_args(["bench", "--profile", "smoke", "--datasets", "toy", "--strategies", "concat,sum",
                                      "--seeds", "0,2", "--trials", "1", "--epochs", "3", "--folds", "2",
                                      "--missing-inputs", "zero,learned", "--amp", "bf16", "--device", "cpu"])
    from_cli = _matrix_config(args)
    from_api = api.matrix_config("smoke", datasets=["toy"], strategies=("concat", "sum"), seeds=[0, 2], trials=1,
                                 epochs=3, folds=2, missing_inputs=["zero", "learned"], amp="bf16", device="cpu")
    assert from_cli == from_api and Plan.build(from_cli).matrix_id == Plan.build(from_api).matrix_id
    assert (from_cli.seeds, from_cli.missing_inputs, from_cli.folds) == ((0, 2), ("zero", "learned"), 2)


def test_per_modality_rates_from_a_flag_and_the_api_agree(toy_card):
    from benchmark.cli import _matrix_config

    args = build_parser().parse_args(["bench", "--profile", "smoke", "--datasets", "toy",
                                      "--dropout", "0.5,text=0.1:image=0.5", "--device", "cpu"])
    from_api = api.matrix_config("smoke", datasets=["toy"], dropout_rates=[0.5, {"text": 0.1, "image": 0.5}],
                                 device="cpu")
    assert _matrix_config(args).dropout_rates == from_api.dropout_rates == (0.5, (("image", 0.5), ("text", 0.1)))


@pytest.mark.parametrize("path", card_paths(REPO_ROOT / "datasets"), ids=lambda p: p.stem)
def test_every_shipped_card_is_built_as_written(path):
    """The model only validates: the DatasetCard (whose content is the card's identity) holds the
    card's mappings exactly as the file writes them."""
    from benchmark.data.card_model import DOCUMENTATION_FIELDS
    from benchmark.vocabulary import DEFAULT_RANKING_METRICS

    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    card = load_card(path)
    assert (card.name, card.label, card.source, card.split) == (raw["name"], raw["label"], raw["source"],
                                                                raw.get("split") or {})
    assert [(m.name, m.encoder, m.options) for m in card.modalities] == [
        (name, spec["encoder"], {k: v for k, v in spec.items() if k not in ("column", "encoder")})
        for name, spec in raw["modalities"].items()]
    assert [m.column for m in card.modalities] == [spec.get("column") or ",".join(spec["columns"])
                                                   for spec in raw["modalities"].values()]
    assert card.info == {k: raw[k] for k in DOCUMENTATION_FIELDS if k in raw}
    task = raw.get("task", "multiclass")
    assert (card.task, card.ranking_metric, card.regression_loss, card.folds) == (
        task, raw.get("ranking_metric", DEFAULT_RANKING_METRICS[task]), raw.get("regression_loss", "mse"),
        raw.get("folds"))


@pytest.mark.parametrize("path", sorted(PROFILES_DIR.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_profile_is_built_as_written(path):
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert load_profile(path.stem) == MatrixConfig.from_dict({"name": path.stem, **raw})
