"""The ``tuxpaint_stamps`` built-in (issue 15, item 1): three modalities with naturally missing
audio, prepared from a small FAKE package tree in the Debian package's layout (real PNG, SVG
and OGG files, a real .deb built in pure Python; no download), grouped splits, and an
end-to-end bench on it that logs every subset of the three modalities."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from benchmark.data import builtin, tuxpaint
from benchmark.data.fetch import debian_download
from benchmark.paths import REPO_ROOT

CATEGORIES = {"animals": (200, 60, 40), "food": (40, 180, 60), "vehicles": (40, 70, 200)}
TONES = {"animals": 330.0, "food": 660.0, "vehicles": 1320.0}
# Per category: (stem under the category, how its picture is stored). Variants of one picture
# ("greenhat", "brownhat2", "hat_red"; "thing", "thing-1") share a base name.
STEMS = ["thing", "thing-1", "sub/greenhat", "sub/brownhat2", "sub/hat_red"] + [f"item{k}" for k in "abcdefghij"]
NO_SPEECH = {"itemc", "itemh"}  # stems without a French spoken description
SVG_ONLY = {"itemd"}


def png_bytes(colour, size=(40, 24)) -> bytes:
    from PIL import Image

    image = Image.new("RGBA", size, (0, 0, 0, 0))  # transparent background, like the stamps
    image.paste(Image.new("RGBA", (size[0] // 2, size[1] // 2), (*colour, 255)), (size[0] // 4, size[1] // 4))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def svg_bytes(colour) -> bytes:
    r, g, b = colour
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="30pt" height="60pt">'
            f'<rect x="5" y="5" width="30" height="60" fill="rgb({r},{g},{b})"/></svg>').encode()


def ogg_bytes(freq: float, seconds: float = 0.4, rate: int = 22050) -> bytes:
    import soundfile

    t = np.arange(int(seconds * rate)) / rate
    buffer = io.BytesIO()
    soundfile.write(buffer, 0.4 * np.sin(2 * np.pi * freq * t), rate, format="OGG", subtype="VORBIS")
    return buffer.getvalue()


def make_tree(root: Path) -> Path:
    """A stamps folder in the package's layout; returns ``root/usr/share/tuxpaint/stamps``."""
    stamps = root / tuxpaint.STAMPS_ROOT
    for category, colour in CATEGORIES.items():
        for k, stem in enumerate(STEMS):
            path = stamps / category / stem
            path.parent.mkdir(parents=True, exist_ok=True)
            name = path.name
            if name in SVG_ONLY:
                path.with_suffix(".svg").write_bytes(svg_bytes(colour))
            else:
                path.with_name(f"{name}.png").write_bytes(png_bytes(colour, (40 + k, 24)))
            if name == "thing":
                path.with_name(f"{name}_mirror.png").write_bytes(png_bytes(colour))  # not a stamp
                path.with_name(f"{name}.svg").write_bytes(svg_bytes((0, 0, 0)))  # the PNG wins
                path.with_name(f"{name}.ogg").write_bytes(ogg_bytes(TONES[category] * 2))  # sound effect
            path.with_name(f"{name}.txt").write_text(
                f"A {category} stamp number {k}.\nfr.utf8=Un tampon {k}.\nde.utf8=Ein Stempel {k}.\n")
            path.with_name(f"{name}_desc_es.ogg").write_bytes(ogg_bytes(TONES[category] * 1.5))
            if name not in NO_SPEECH:
                path.with_name(f"{name}_desc_fr.ogg").write_bytes(ogg_bytes(TONES[category]))
    (stamps / "README.txt").write_text("not a stamp: no category folder\n")
    return stamps


def make_deb(tree_root: Path, deb: Path) -> Path:
    """A Debian package (ar archive: debian-binary, control.tar.xz, data.tar.xz) of ``tree_root``."""
    def tar_xz(add) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:xz") as tar:
            add(tar)
        return buffer.getvalue()

    control = tar_xz(lambda tar: tar.add(Path(__file__), arcname="./control"))
    data = tar_xz(lambda tar: tar.add(tree_root / "usr", arcname="./usr"))
    with open(deb, "wb") as out:
        out.write(b"!<arch>\n")
        for name, blob in (("debian-binary", b"2.0\n"), ("control.tar.xz", control), ("data.tar.xz", data)):
            out.write(f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(blob):<10}`\n".encode())
            out.write(blob + (b"\n" if len(blob) % 2 else b""))
    return deb


@pytest.fixture(scope="module")
def fake_package(tmp_path_factory):
    root = tmp_path_factory.mktemp("tuxpaint")
    make_tree(root / "tree")
    deb = make_deb(root / "tree", root / Path(tuxpaint.POOL_PATH).name)
    return root / "tree", deb


@pytest.fixture(scope="module")
def prepared(fake_package):
    return tuxpaint.build_dataset(tuxpaint.read_deb(fake_package[1]))


def _rows(data):
    import datasets as hf

    out = []
    for split in data:
        part = data[split].cast_column("image", hf.Image(decode=False))
        out += [{**row, "split": split} for row in part]
    return out


def test_deb_and_unpacked_tree_give_the_same_stamp_files(fake_package):
    tree, deb = fake_package
    from_deb = tuxpaint.read_deb(deb)
    assert from_deb == tuxpaint.read_tree(tree / tuxpaint.STAMPS_ROOT)
    assert "animals/thing_desc_fr.ogg" in from_deb and "animals/thing_desc_es.ogg" not in from_deb


def test_three_modalities_one_row_per_stamp_with_missing_speech_absent(prepared):
    from PIL import Image

    rows = _rows(prepared)
    assert len(rows) == len(CATEGORIES) * len(STEMS)  # no _mirror rows, no README row
    assert prepared["train"].features["label"].names == sorted(CATEGORIES)
    names = prepared["train"].features["label"].names
    for row in rows:
        category = names[row["label"]]
        assert row["stamp"].startswith(f"{category}/")
        stem = row["stamp"].rsplit("/", 1)[1]
        assert row["text"] == f"A {category} stamp number {STEMS.index(row['stamp'].split('/', 1)[1])}."
        assert (row["audio"] is None) == (stem in NO_SPEECH)  # Spanish recordings never stand in
        assert (row["sound"] is not None) == (stem == "thing")
        image = Image.open(io.BytesIO(row["image"]["bytes"]))
        assert image.mode == "RGB" and max(image.size) <= tuxpaint.IMAGE_SIDE
        pixels = np.asarray(image)
        assert tuple(pixels[0, 0]) == (255, 255, 255)  # transparency composited on white
        centre = tuple(int(v) for v in pixels[image.height // 2, image.width // 2])
        assert centre == CATEGORIES[category], (row["stamp"], centre)  # the PNG (not the black SVG); SVG rendered
    svg = next(r for r in rows if r["stamp"] == "food/itemd")
    assert Image.open(io.BytesIO(svg["image"]["bytes"])).size == (128, 256)  # 30x60 pt, taller side fitted
    speech = [r["audio"] for r in rows if r["audio"] is not None]
    import soundfile

    samples, rate = soundfile.read(io.BytesIO(speech[0]))
    assert rate == 22050 and len(samples) > 0


def test_variants_of_one_picture_share_a_group_and_a_split(prepared):
    assert tuxpaint.base_name("clothes/hats/greenhat") == tuxpaint.base_name("clothes/hats/brownhat2") \
        == tuxpaint.base_name("clothes/hats/hat_red") == "clothes/hats/hat"
    assert tuxpaint.base_name("animals/amphibians/frog-1") == "animals/amphibians/frog"
    assert tuxpaint.base_name("food/fruit/orange") == "food/fruit/orange"  # nothing left: the name itself
    rows = _rows(prepared)
    split_of_group: dict[str, set] = {}
    for row in rows:
        split_of_group.setdefault(row["group"], set()).add(row["split"])
    assert all(len(s) == 1 for s in split_of_group.values()), split_of_group
    assert sum(1 for r in rows if r["group"] == "animals/sub/hat") == 3
    assert sum(1 for r in rows if r["group"] == "animals/thing") == 2
    labels = {split: {r["label"] for r in rows if r["split"] == split} for split in ("train", "validation", "test")}
    assert all(v == set(range(len(CATEGORIES))) for v in labels.values())  # stratified by category


def test_preparation_is_deterministic(fake_package, prepared):
    again = tuxpaint.build_dataset(tuxpaint.read_tree(fake_package[0] / tuxpaint.STAMPS_ROOT))
    for split in prepared:
        assert again[split]["stamp"] == prepared[split]["stamp"]
        assert again[split]["audio"] == prepared[split]["audio"]


def test_grouped_split_never_straddles_and_is_deterministic():
    from benchmark.data.splits import grouped_stratified_split

    rng = np.random.default_rng(1)
    groups = [f"g{int(g)}" for g in rng.integers(0, 60, 400)]
    labels = np.array([int(g[1:]) % 4 for g in groups])
    parts = grouped_stratified_split(labels, groups, seed=0, validation=0.15, test=0.15)
    assert sorted(np.concatenate(list(parts.values())).tolist()) == list(range(400))
    seen = {name: {groups[i] for i in idx} for name, idx in parts.items()}
    assert not (seen["train"] & seen["test"]) and not (seen["train"] & seen["validation"]) \
        and not (seen["validation"] & seen["test"])
    again = grouped_stratified_split(labels, groups, seed=0, validation=0.15, test=0.15)
    assert all(np.array_equal(parts[k], again[k]) for k in parts)


def test_debian_download_checks_the_digest(tmp_path, fake_package):
    """The pool URL path (a file:// mirror here; apt-get knows no such package); a wrong digest
    is an error naming the expected one and leaves nothing behind."""
    deb = fake_package[1]
    pool = "pool/main/f/fusebench-no-such-package/" + deb.name
    (tmp_path / "mirror" / pool).parent.mkdir(parents=True)
    shutil.copy(deb, tmp_path / "mirror" / pool)
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    downloads = tmp_path / "dl"
    downloads.mkdir()
    with pytest.raises(RuntimeError, match="expected sha256 " + "0" * 64):
        debian_download("fusebench-no-such-package", "1.0", pool, "0" * 64, downloads, mirror=f"file://{tmp_path / 'mirror'}")
    assert list(downloads.iterdir()) == []
    got = debian_download("fusebench-no-such-package", "1.0", pool, digest, downloads, mirror=f"file://{tmp_path / 'mirror'}")
    assert got == downloads / deb.name and got.read_bytes() == deb.read_bytes()


def test_card_is_builtin_with_three_modalities_and_gpl():
    from benchmark.data.cards import load_card

    card = load_card(REPO_ROOT / "datasets" / "tuxpaint_stamps.yaml")
    assert card.source["builtin"] == "tuxpaint_stamps" and "tuxpaint_stamps" in builtin.PREPARERS.names()
    assert {m.name: m.encoder for m in card.modalities} == {"image": "efficientnet_lite0", "text": "minilm",
                                                           "audio": "log_mel"}
    assert "GPL-2+" in card.info["licence"]


@pytest.mark.slow
def test_bench_on_the_fake_package_logs_all_seven_subsets(fake_package, fusebench_home, monkeypatch, capsys):
    """The real preparer (cached .deb checked by digest, pure-Python unpacking) and the real card
    end to end: every subset of image, text and audio gets a test metric."""
    from benchmark.cli import main
    from benchmark.paths import downloads_dir
    from benchmark.vocabulary import subset_metric
    from tests.helpers_runs import cell_runs

    deb = fake_package[1]
    downloads_dir().mkdir(parents=True)
    shutil.copy(deb, downloads_dir() / deb.name)
    monkeypatch.setattr(tuxpaint, "SHA256", hashlib.sha256(deb.read_bytes()).hexdigest())
    shutil.copy(REPO_ROOT / "datasets" / "tuxpaint_stamps.yaml", fusebench_home / "cards")
    args = ["bench", "--profile", "smoke", "--datasets", "tuxpaint_stamps", "--strategies", "concat",
            "--trials", "1", "--epochs", "4", "--patience", "2", "--seeds", "0", "--dropout", "0.3", "--device", "cpu"]
    assert main(args) == 0, capsys.readouterr()
    runs = cell_runs(os.environ["MLFLOW_TRACKING_URI"])
    assert len(runs) == 1 and runs[0].data.tags["fusebench.status"] == "ok"
    metrics = runs[0].data.metrics
    subsets = [("audio",), ("image",), ("text",), ("audio", "image"), ("audio", "text"), ("image", "text"),
               ("audio", "image", "text")]
    for subset in subsets:
        value = metrics.get(subset_metric(subset))
        assert value is not None and 0.0 <= value <= 1.0, (subset, sorted(metrics))
    without_speech = sum(metrics.get(f"data_rows.{split}.image-text", 0) for split in ("train", "validation", "test"))
    assert without_speech == len(NO_SPEECH) * len(CATEGORIES)  # the naturally missing audio, counted
