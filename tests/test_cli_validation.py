"""CLI and profile input is validated (issue 13, item 8): each bad flag or profile field ends
in one line naming the flag (or the profile file and field) and the expected form, exit
status 2, and nothing written: no MLflow store, no Optuna storage, no matrix registered."""

from __future__ import annotations

import os

import pytest

from benchmark.cli import main

BAD_FLAGS = [
    (["bench", "--seeds", "abc"], "--seeds", "integer seeds"),
    (["bench", "--seeds", "0,,1"], "--seeds", "integer seeds"),
    (["bench", "--seeds", "-1"], "--seeds", "integers in [0,"),
    (["bench", "--seeds", "1000000000"], "--seeds", "integers in [0,"),
    (["bench", "--dropout", "1.5"], "--dropout", "rates in [0, 1)"),
    (["bench", "--dropout", "-0.1"], "--dropout", "rates in [0, 1)"),
    (["bench", "--dropout", "half"], "--dropout", "rates in [0, 1)"),
    (["bench", "--dropout", "nan"], "--dropout", "rates in [0, 1)"),
    (["bench", "--trials", "-1"], "--trials", "integer >= 0"),
    (["bench", "--trials", "two"], "--trials", "integer >= 0"),
    (["bench", "--epochs", "0"], "--epochs", "integer >= 1"),
    (["bench", "--epochs", "-3"], "--epochs", "integer >= 1"),
    (["bench", "--patience", "0"], "--patience", "integer >= 1"),
    (["bench", "--batch-size", "0"], "--batch-size", "integer >= 1"),
    (["bench", "--workers", "-1"], "--workers", "integer >= 0"),
    (["bench", "--amp", "fp8"], "--amp", "expected one of ['off', 'bf16', 'fp16'] (mixed precision on CUDA), got 'fp8'"),
    (["bench", "--missing-inputs", "zero,mean"], "--missing-inputs", "expected each of ['zero', 'learned']"),
    (["bench", "--missing-inputs", "zero,zero"], "--missing-inputs", "each technique once"),
    (["perf", "budget", "--missing-inputs", ""], "--missing-inputs", "comma-separated techniques"),
    (["bench", "--strategies", ""], "--strategies", "comma-separated names"),
    (["bench", "--datasets", "a,,b"], "--datasets", "comma-separated names"),
    (["status", "--datasets", ""], "--datasets", "comma-separated names"),
    (["perf", "budget", "--seeds", "x,1"], "--seeds", "integer seeds"),
    (["perf", "loop", "--repeats", "0"], "--repeats", "integer >= 1"),
    (["bench", "--seeds", "0,1,0"], "--seeds", "expected each seed once; 0 given more than once"),
    (["bench", "--summary", "/no/such/folder/summary.json"], "--summary", "folder /no/such/folder does not exist"),
    (["bench", "--device", "tpu"], "--device", "expected one of auto, cpu, cuda, cuda:N"),
    (["bench", "--device", "cuda:x"], "--device", "expected one of auto, cpu, cuda, cuda:N"),
    (["perf", "loop", "--device", "tpu"], "--device", "expected one of auto, cpu, cuda, cuda:N"),
]


def _one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def _nothing_written(home) -> None:
    assert not (home / "mlruns.db").exists(), "an MLflow store was created"
    assert not (home / "optuna.db").exists(), "an Optuna storage was created"
    assert not (home / "home").exists() or not any((home / "home").rglob("*.db")), "a work queue was created"


@pytest.mark.parametrize("argv, flag, expected", BAD_FLAGS, ids=[" ".join(a) for a, _, _ in BAD_FLAGS])
def test_a_bad_flag_is_one_line_naming_the_flag_exit_2_nothing_written(argv, flag, expected, fusebench_home, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv + ["--profile", "smoke"] if argv[0] == "bench" else argv)
    assert exit_.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert flag in line and expected in line, line
    _nothing_written(fusebench_home)


def test_good_flags_are_parsed_into_the_matrix(fusebench_home, toy_card, capsys):
    argv = ["bench", "--profile", "smoke", "--datasets", "toy", "--strategies", "concat,sum", "--dropout", "0,0.5",
            "--seeds", "0,2", "--trials", "0", "--epochs", "3", "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "toy · sum · dropout 0.5 · seed 2" in out and "8 cells" in out
    _nothing_written(fusebench_home)


BAD_PROFILES = [
    ("seeds: [abc]\n", "seeds", "integers in [0,"),
    ("seeds: [0.5]\n", "seeds", "integers in [0,"),
    ("dropout_rates: [1.5]\n", "dropout_rates", "rates in [0, 1)"),
    ("trials: -1\n", "trials", "integer >= 0"),
    ("epochs: 0\n", "epochs", "integer >= 1"),
    ("amp: fp8\n", "amp", "one of"),
    ("missing_inputs: [learnt]\n", "missing_inputs", "expected each of ['zero', 'learned']"),
    ("missing_inputs: []\n", "missing_inputs", "missing-input techniques"),
    ("datasets: []\n", "datasets", "at least one"),
    ("strategies: [concat, 3]\n", "strategies", "names or globs"),
    ("dropuot_rates: [0.1]\n", "dropuot_rates", "field 'dropuot_rates': unknown field (did you mean 'dropout_rates'?)"),
    ("seeds: [0, 0]\n", "seeds", "expected each seed once; 0 given more than once"),
    ("seeds: [0]\nseeds: [1]\n", "seeds", "key 'seeds' appears twice"),
    ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
     "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
     "e: [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n", "aliases", "expand it by more than 10000"),
]


@pytest.mark.parametrize("text, field, expected", BAD_PROFILES, ids=[t.strip() for t, _, _ in BAD_PROFILES])
def test_a_bad_profile_field_names_the_file_and_field(text, field, expected, fusebench_home, capsys):
    profile = fusebench_home / "bad.yaml"
    profile.write_text(text)
    assert main(["bench", "--profile", str(profile)]) == 2
    line = _one_line(capsys.readouterr().err)
    assert str(profile) in line and field in line and expected in line, line
    _nothing_written(fusebench_home)


def test_an_unknown_dataset_is_named_and_nothing_written(fusebench_home, toy_card, capsys):
    assert main(["bench", "--profile", "smoke", "--datasets", "tyo"]) == 2
    line = _one_line(capsys.readouterr().err)
    assert "tyo" in line and "toy" in line  # the close match
    _nothing_written(fusebench_home)
    assert os.environ["MLFLOW_TRACKING_URI"].endswith("mlruns.db")


@pytest.mark.parametrize("argv", [["bench", "--profile", "smoke"], ["perf", "loop"]])
@pytest.mark.parametrize("device", ["cuda", "cuda:3"])
def test_a_cuda_device_on_a_machine_without_one_is_refused_when_parsed(argv, device, fusebench_home, monkeypatch,
                                                                       capsys):
    """Issue 21, item 7: `--device cuda` without a GPU stops at once (exit 2, one line, nothing written),
    instead of every cell failing with exit status 0."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_:
        main(argv + ["--device", device])
    assert exit_.value.code == 2
    line = _one_line(capsys.readouterr().err)
    assert "--device" in line and "no CUDA GPU" in line, line
    _nothing_written(fusebench_home)


def test_a_gpu_index_beyond_the_machine_is_refused(monkeypatch):
    import torch

    from benchmark.train.device import parse_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert parse_device("cuda:1") == "cuda:1" and parse_device("cuda") == "cuda"
    with pytest.raises(ValueError, match="2 CUDA GPU"):
        parse_device("cuda:2")
    assert parse_device("cpu") == "cpu" and parse_device("auto") == "auto"
