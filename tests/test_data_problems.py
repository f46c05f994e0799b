"""Data problems named in one line, exit 2 (issue 21, items 4 and 7): a dataset with a single
class names the dataset, the split and the column."""

from __future__ import annotations

from benchmark.cli import main
from tests.test_card_paths import FAST, ours

GOOD = "y,x1,x2\n" + "".join(f"{i % 2},{i * 0.5},{(i * 7) % 5}\n" for i in range(16))
CARD = ("name: csvs\nsource: {local: {format: csv, data_files: {train: train.csv, validation: validation.csv, "
        "test: test.csv}}}\nlabel: y\nmodalities:\n  left: {columns: [x1], encoder: tabular}\n"
        "  right: {columns: [x2], encoder: tabular}\n")


def _bench_error(fusebench_home, capsys, train: str | bytes = GOOD, validation: str | bytes = GOOD,
                 test: str | bytes = GOOD) -> str:
    """Write the CSV dataset, run a bench on it: exit 2 and one line on stderr, returned."""
    cards = fusebench_home / "cards"
    for name, content in (("train", train), ("validation", validation), ("test", test)):
        path = cards / f"{name}.csv"
        path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    (cards / "csvs.yaml").write_text(CARD)
    capsys.readouterr()
    assert main(["bench", "--datasets", "csvs", "--no-report", *FAST]) == 2
    [line] = ours(capsys.readouterr().err)
    assert line.startswith("fusebench: error: dataset 'csvs'"), line
    return line


def test_a_single_class_is_refused_naming_the_column(fusebench_home, capsys):
    one_class = GOOD.replace("\n1,", "\n0,")
    line = _bench_error(fusebench_home, capsys, train=one_class, validation=one_class, test=one_class)
    assert "split 'train', column 'y': a single class ('0')" in line, line
