"""Data and input problems named in one line, exit 2 (issue 21, items 4, 7 and 11): split files
with no rows, CSV files that are not UTF-8 or do not parse, a card file that is not UTF-8, a WAV
cut short, store and cache folders that cannot be created; and a card's encoder names, options
and columns refused before anything is registered (no matrix, no MLflow run left behind)."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

from benchmark.cli import main
from tests.test_card_paths import FAST, ours
from tests.test_data_problems import CARD, GOOD, _bench_error


# ---------------------------------------------------------------- split files (items 4 and 7)

@pytest.mark.parametrize("content, expected", [
    ("y,x1,x2\n", "has no rows"),  # a header only
    ("", "is empty (0 bytes: no header and no rows)"),
], ids=["header only", "empty file"])
def test_a_split_file_without_rows_is_named(fusebench_home, capsys, content, expected):
    line = _bench_error(fusebench_home, capsys, validation=content)
    assert "split 'validation'" in line and str(fusebench_home / "cards" / "validation.csv") in line, line
    assert expected in line and "field 'source.local.data_files'" in line, line


def test_a_csv_that_is_not_utf8_is_named_with_the_fix(fusebench_home, capsys):
    latin1 = ("y,x1,x2\n" + "".join(f"{i % 2},{i},caf\xe9\n" for i in range(16))).encode("latin-1")
    line = _bench_error(fusebench_home, capsys, test=latin1)
    assert f"split 'test' file {fusebench_home / 'cards' / 'test.csv'} is not UTF-8 text (byte 15, line 2" in line, line
    assert "re-save it as UTF-8" in line, line


@pytest.mark.parametrize("content, expected", [
    ("y,x1,x2\n0,1,2\n1,2,3,4,5\n0,1,2\n", "cannot be parsed as CSV (Expected 3 fields in line 3, saw 5)"),
    (bytes(range(256)) * 4, "is not a text file (it holds NUL bytes)"),
], ids=["ragged rows", "binary file"])
def test_a_csv_that_does_not_parse_is_named_with_the_reason(fusebench_home, capsys, content, expected):
    line = _bench_error(fusebench_home, capsys, train=content)
    assert f"split 'train' file {fusebench_home / 'cards' / 'train.csv'} {expected}" in line, line


@pytest.mark.parametrize("fmt, bad, expected", [
    ("json", '{"y": 0, "x1": 1}\n{"y": 1, "x1":\n', "is neither a JSON document nor JSON Lines (line 2, column 15"),
    ("parquet", "PAR1 and then no parquet at all", "is not a readable Parquet file ("),
], ids=["json", "parquet"])
def test_other_formats_name_the_file_that_does_not_parse(fusebench_home, capsys, fmt, bad, expected):
    import pandas as pd

    cards = fusebench_home / "cards"
    good = pd.read_csv(io.StringIO(GOOD))
    for split in ("train", "test"):
        good.to_json(cards / f"{split}.{fmt}", orient="records", lines=True) if fmt == "json" else \
            good.to_parquet(cards / f"{split}.{fmt}")
    (cards / f"validation.{fmt}").write_text(bad)
    (cards / "csvs.yaml").write_text(CARD.replace("format: csv", f"format: {fmt}").replace(".csv", f".{fmt}"))
    assert main(["bench", "--datasets", "csvs", "--no-report", *FAST]) == 2
    [line] = ours(capsys.readouterr().err)
    assert f"split 'validation' file {cards / f'validation.{fmt}'} {expected}" in line, line


def test_a_card_file_that_is_not_utf8_is_one_line(fusebench_home, capsys):
    cards = fusebench_home / "cards"
    for split in ("train", "validation", "test"):
        (cards / f"{split}.csv").write_text(GOOD)
    (cards / "csvs.yaml").write_bytes(CARD.replace("label: y", "description: caf\xe9\nlabel: y").encode("latin-1"))
    assert main(["bench", "--datasets", "csvs", "--no-report", *FAST]) == 2
    [line] = ours(capsys.readouterr().err)
    assert f"{cards / 'csvs.yaml'}: field '(yaml)': is not UTF-8 text" in line, line
    _nothing_registered(fusebench_home)


# ---------------------------------------------------------------- a WAV cut short (items 4 and 9)

def _wav(seconds: float, rate: int = 8000, seed: int = 0) -> bytes:
    import soundfile

    samples = 0.3 * np.random.default_rng(seed).standard_normal(int(seconds * rate)).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def test_a_truncated_wav_is_named_with_its_row(fusebench_home, capsys):
    """libsndfile reads a WAV whose data was cut short without complaint; the header's frame count
    says it is incomplete."""
    cards = fusebench_home / "cards"
    (cards / "clips").mkdir()
    for split in ("train", "validation", "test"):
        rows = ["y,x1,clip"]
        for i in range(16):
            data = _wav(0.1, seed=i)
            if split == "validation" and i == 3:
                data = data[: len(data) // 2]  # the header still declares 800 frames
            (cards / "clips" / f"{split}{i}.wav").write_bytes(data)
            rows.append(f"{i % 2},{i * 0.5},clips/{split}{i}.wav")
        (cards / f"{split}.csv").write_text("\n".join(rows) + "\n")
    (cards / "csvs.yaml").write_text(CARD.split("modalities:")[0] + "modalities:\n"
                                     "  left: {columns: [x1], encoder: tabular}\n"
                                     "  sound: {column: clip, encoder: log_mel, sample_rate: 8000, n_mels: 16, "
                                     "max_tokens: 4, standardize: false}\n")
    assert main(["bench", "--datasets", "csvs", "--no-report", *FAST]) == 2
    [line] = ours(capsys.readouterr().err)
    assert "split 'validation', column 'clip' (modality 'sound'), row 3: file " in line, line
    assert f"{cards / 'clips' / 'validation3.wav'} is truncated: its header declares 800 frames" in line, line


# ---------------------------------------------------------------- folders that cannot be made (item 7)

def test_report_on_a_sqlite_file_that_cannot_be_created(fusebench_home, capsys):
    # /proc exists, and os.access says root may write there, but no file can be created in it.
    assert main(["report", "--tracking-uri", "sqlite:////proc/fusebench-x.db"]) == 2
    [line] = ours(capsys.readouterr().err)
    assert line.startswith("fusebench: error: --tracking-uri: sqlite:////proc/fusebench-x.db: folder /proc is not "
                           "writable (no file can be created in it)"), line


@pytest.mark.parametrize("variable", ["FUSEBENCH_CACHE", "FUSEBENCH_HOME"])
def test_bench_with_a_state_folder_that_cannot_be_created(fusebench_home, capsys, monkeypatch, variable):
    blocker = fusebench_home / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(variable, str(blocker / "sub"))
    _write_good(fusebench_home)
    assert main(["bench", "--datasets", "csvs", "--no-report", *FAST]) == 2
    [line] = ours(capsys.readouterr().err)
    expected = f"fusebench: error: ${variable}: cannot create or write the folder {blocker / 'sub'} ("
    assert line.startswith(expected), line
    _nothing_registered(fusebench_home)


# ---------------------------------------------------------------- encoders checked first (items 3 and 11)

ENCODER_PROBLEMS = [
    ("encoder: tabular}\n  right", "encoder: tabulr}\n  right", "modalities.left.encoder",
     "unknown encoder 'tabulr'. Did you mean: tabular?"),
    ("right: {columns: [x2], encoder: tabular}", "right: {column: x2, encoder: vector, standardise: true}",
     "modalities.right.standardise", "encoder 'vector' has no option 'standardise' (did you mean 'standardize'?)"),
    ("columns: [x1]", "column: x1", "modalities.left.column",
     "encoder 'tabular' reads several columns: expected 'columns: [a, b, ...]'"),
    ("right: {columns: [x2], encoder: tabular}", "right: {columns: [x2], encoder: vector}",
     "modalities.right.columns", "encoder 'vector' reads one column: give 'column: <name>'"),
    ("right: {columns: [x2], encoder: tabular}", "right: {column: x2, encoder: vector, standardize: 'yes'}",
     "modalities.right.standardize", "option 'standardize': expected true or false, got 'yes'"),
]


@pytest.mark.parametrize("dry_run", [False, True], ids=["bench", "dry run"])
@pytest.mark.parametrize("old, new, field, expected", ENCODER_PROBLEMS,
                         ids=["unknown encoder", "unknown option", "column for tabular", "columns for vector",
                              "bad option value"])
def test_encoder_problems_are_refused_before_registration(fusebench_home, capsys, old, new, field, expected,
                                                          dry_run):
    assert old in CARD
    _write_good(fusebench_home, CARD.replace(old, new))
    argv = ["bench", "--datasets", "csvs", "--no-report", *FAST] + (["--dry-run"] if dry_run else [])
    assert main(argv) == 2
    [line] = ours(capsys.readouterr().err)
    assert line.startswith(f"fusebench: error: {fusebench_home / 'cards' / 'csvs.yaml'}: field '{field}': "), line
    assert expected in line, line
    _nothing_registered(fusebench_home)


def test_run_bench_checks_encoders_before_registering(fusebench_home):
    """The Python API's path (run_bench without the CLI) refuses before it opens any store too: its
    Plan is built, and the cards checked, before run_bench registers anything."""
    from benchmark.data.cards import CardError
    from benchmark.run.config import load_profile
    from benchmark.run.coordinator import run_bench
    from benchmark.run.plan import Plan

    _write_good(fusebench_home, CARD.replace("encoder: tabular}\n  right", "encoder: tabulr}\n  right"))
    config = load_profile("smoke").with_overrides(datasets=("csvs",), strategies=("concat",), seeds=(0,))
    with pytest.raises(CardError, match="modalities.left.encoder"):
        run_bench(Plan.build(config), os.environ["MLFLOW_TRACKING_URI"], os.environ["FUSEBENCH_OPTUNA_STORAGE"])
    _nothing_registered(fusebench_home)


def _write_good(home, card: str = CARD) -> None:
    cards = home / "cards"
    for split in ("train", "validation", "test"):
        (cards / f"{split}.csv").write_text(GOOD)
    (cards / "csvs.yaml").write_text(card)


def _nothing_registered(home) -> None:
    """No MLflow store (so no parent run), no Optuna storage (so no matrix in the work queue)."""
    assert not (home / "mlruns.db").exists(), "an MLflow store was created"
    assert not (home / "optuna.db").exists(), "an Optuna storage (work queue) was created"
