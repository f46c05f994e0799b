"""The built-in ``tuxpaint_stamps`` dataset: three modalities with real missingness, from the
Debian package ``tuxpaint-stamps-default`` (GPL-2+), fetched without installing it.

The package holds Tux Paint's rubber stamps under ``usr/share/tuxpaint/stamps/<category>/...``:
for a stamp ``<stem>`` a picture ``<stem>.png`` and/or ``<stem>.svg`` (``<stem>_mirror.*`` and
``<stem>_flip.*`` are pre-drawn mirror images of the same stamp, not stamps), a description
``<stem>.txt`` (the English sentence on its first line, then ``<lang>.utf8=`` translations),
spoken descriptions ``<stem>_desc_<lang>.ogg`` (``<stem>_desc.ogg`` for English) recorded by
volunteers, and for some a sound effect ``<stem>.ogg`` or ``.wav``.

One row per stamp: ``label`` = the top-level category (16 classes), ``image`` = the picture (the
PNG where there is one, else the SVG rendered with resvg), composited on white and scaled down
to at most :data:`IMAGE_SIDE` pixels on its longer side, ``text`` = the English description
(null without a ``.txt``), ``audio`` = the spoken description in :data:`SPOKEN_LANGUAGE` (null
where no one recorded it: a naturally missing modality). The sound effect is kept in ``sound``
(null for most stamps) and the stamp's path in ``stamp``; ``group`` is the base name shared by
colour and numbered variants of one picture, and the split keeps each group whole."""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path, PurePosixPath

import numpy as np

from benchmark.data.fetch import debian_download
from benchmark.data.splits import grouped_stratified_split

PACKAGE = "tuxpaint-stamps-default"
VERSION = "2022.06.04-1"
POOL_PATH = "pool/main/t/tuxpaint-stamps/tuxpaint-stamps-default_2022.06.04-1_all.deb"
SHA256 = "6db6c1bfc870a47f1499d6203b083522eacb57c5f9c87d468f2e92eb6d9d5f34"
STAMPS_ROOT = "usr/share/tuxpaint/stamps/"
# One language for every row (the one with the most recordings: 928 of the package's stamps),
# so the spoken language never differs between classes; English recordings exist for 65 only.
SPOKEN_LANGUAGE = "fr"
IMAGE_SIDE = 256
SPLIT = {"seed": 0, "validation": 0.15, "test": 0.15}

COLOURS = ("red", "green", "blue", "yellow", "white", "black", "pink", "purple", "orange", "brown", "grey",
           "gray", "gold", "golden", "silver")
_COLOUR = "|".join(COLOURS)
_TRANSLATION = re.compile(r"^[A-Za-z_@]+\.utf8=")


def wanted(relative: str) -> bool:
    """Whether a file under the stamps folder is read: pictures, descriptions, the spoken
    description in :data:`SPOKEN_LANGUAGE` and sound effects."""
    name = PurePosixPath(relative).name
    if name.endswith((".png", ".svg", ".txt")):
        return True
    if name.endswith((".ogg", ".wav")):
        return "_desc" not in name or name.rsplit(".", 1)[0].endswith(f"_desc_{SPOKEN_LANGUAGE}")
    return False


def read_deb(deb: Path, keep=None) -> dict[str, bytes]:
    """The wanted stamp files of a .deb (an ``ar`` archive holding ``data.tar.*``), keyed by their
    path under the stamps folder; pure Python, so no ``dpkg`` is needed. ``keep`` (a function of the
    path under the stamps folder; default :func:`wanted`) chooses the files."""
    with open(deb, "rb") as handle:
        if handle.read(8) != b"!<arch>\n":
            raise RuntimeError(f"{deb}: not a Debian package (no ar archive header)")
        while True:
            header = handle.read(60)
            if len(header) < 60:
                raise RuntimeError(f"{deb}: no data.tar member")
            name = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58].decode().strip())
            if name.startswith("data.tar"):
                with tarfile.open(fileobj=handle, mode="r|*") as tar:
                    return _wanted_members(tar, keep or wanted)
            handle.seek(size + size % 2, io.SEEK_CUR)


def _wanted_members(tar: tarfile.TarFile, keep) -> dict[str, bytes]:
    files = {}
    for member in tar:
        path = member.name.lstrip("./")
        if member.isfile() and path.startswith(STAMPS_ROOT) and keep(path[len(STAMPS_ROOT):]):
            files[path[len(STAMPS_ROOT):]] = tar.extractfile(member).read()
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    """The wanted files of an unpacked stamps folder (``.../usr/share/tuxpaint/stamps``)."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and wanted(p.relative_to(root).as_posix())}


def base_name(stem: str) -> str:
    """The picture a stamp is a variant of: its folder plus its name without colour words and
    numbers ("clothes/hats/greenhat" and "clothes/hats/brownhat2" -> "clothes/hats/hat";
    "animals/amphibians/frog-1" -> "animals/amphibians/frog")."""
    folder, _, name = stem.rpartition("/")
    kept = []
    for token in re.split(r"[-_ ]+", name.lower()):
        token = re.sub(r"\d+$", "", token)
        token = re.sub(rf"^({_COLOUR})(?=[a-z]{{3,}})|(?<=[a-z]{{3}})({_COLOUR})$", "", token)
        if token and token not in COLOURS:
            kept.append(token)
    return f"{folder}/{'_'.join(kept) or name.lower()}"


def english_description(text: bytes) -> str | None:
    """The first line of a ``.txt`` that is not a ``<lang>.utf8=`` translation (None if none)."""
    for line in text.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if line and not _TRANSLATION.match(line):
            return line
    return None


def picture_png(files: dict[str, bytes], stem: str) -> bytes:
    """The stamp's picture as RGB PNG bytes on white, at most IMAGE_SIDE px on its longer side."""
    from PIL import Image

    if f"{stem}.png" in files:
        image = Image.open(io.BytesIO(files[f"{stem}.png"]))
    else:
        image = Image.open(io.BytesIO(render_svg(files[f"{stem}.svg"])))
    image = image.convert("RGBA")
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    image = Image.alpha_composite(white, image).convert("RGB")
    image.thumbnail((IMAGE_SIDE, IMAGE_SIDE), Image.LANCZOS)  # shrinks only, keeps the aspect
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def render_svg(svg: bytes) -> bytes:
    """PNG bytes of an SVG drawn by resvg (``resvg-py``), IMAGE_SIDE px on its longer side;
    system fonts are not loaded, so the rendering does not depend on the machine."""
    import resvg_py

    markup = re.sub(r"<svg\b[^>]*>", _pixel_size, svg.decode("utf-8", errors="replace"), count=1)
    png = bytes(resvg_py.svg_to_bytes(svg_string=markup, width=IMAGE_SIDE, skip_system_fonts=True))
    from PIL import Image

    if Image.open(io.BytesIO(png)).height > IMAGE_SIDE:  # taller than wide: fit the height instead
        png = bytes(resvg_py.svg_to_bytes(svg_string=markup, height=IMAGE_SIDE, skip_system_fonts=True))
    return png


_PX_PER_UNIT = {"pt": 4 / 3, "pc": 16.0, "mm": 96 / 25.4, "cm": 96 / 2.54, "in": 96.0}


def _pixel_size(tag: re.Match) -> str:
    """The root ``<svg>`` tag with its width and height in absolute units (pt, mm, ...) turned
    into pixels at 96 dpi: resvg-py 0.5.0 rejects such a size when the SVG has no viewBox."""
    def px(m: re.Match) -> str:
        return f'{m.group(1)}="{float(m.group(2)) * _PX_PER_UNIT[m.group(3)]:.6g}"'

    return re.sub(r'(?<![\w:-])(width|height)="\s*([\d.]+)\s*(pt|pc|mm|cm|in)\s*"', px, tag.group(0))


def stamp_rows(files: dict[str, bytes]) -> dict[str, list]:
    """One row per stamp (sorted by path) from the wanted files; see the module docstring."""
    stems = sorted({p.rsplit(".", 1)[0] for p in files if p.endswith((".png", ".svg"))
                    and "/" in p and not re.search(r"_(mirror|flip)$", p.rsplit(".", 1)[0])})
    rows: dict[str, list] = {k: [] for k in ("image", "text", "audio", "sound", "stamp", "group", "category")}
    for stem in stems:
        text = files.get(f"{stem}.txt")
        rows["image"].append({"bytes": picture_png(files, stem), "path": None})
        rows["text"].append(english_description(text) if text is not None else None)
        rows["audio"].append(files.get(f"{stem}_desc_{SPOKEN_LANGUAGE}.ogg"))
        rows["sound"].append(files.get(f"{stem}.ogg", files.get(f"{stem}.wav")))
        rows["stamp"].append(stem)
        rows["group"].append(base_name(stem))
        rows["category"].append(stem.split("/", 1)[0])
    return rows


def build_dataset(files: dict[str, bytes]):
    """The DatasetDict of the stamps: splits stratified by category with whole groups (seed 0,
    70/15/15 of the groups)."""
    import datasets as hf

    rows = stamp_rows(files)
    if not rows["stamp"]:
        raise RuntimeError(f"no stamp pictures (.png/.svg under {STAMPS_ROOT}<category>/) in the package")
    classes = sorted(set(rows.pop("category")))
    labels = np.array([classes.index(s.split("/", 1)[0]) for s in rows["stamp"]])
    features = hf.Features({
        "image": hf.Image(), "text": hf.Value("string"), "audio": hf.Value("binary"), "sound": hf.Value("binary"),
        "stamp": hf.Value("string"), "group": hf.Value("string"), "label": hf.ClassLabel(names=classes),
    })
    full = hf.Dataset.from_dict({**rows, "label": labels.tolist()}, features=features)
    splits = grouped_stratified_split(labels, rows["group"], **SPLIT)
    return hf.DatasetDict({name: full.select(idx) for name, idx in splits.items()})


def prepare_tuxpaint_stamps(downloads: Path):
    """Fetch ``tuxpaint-stamps-default`` (pinned version and sha256) and build the dataset."""
    deb = debian_download(PACKAGE, VERSION, POOL_PATH, SHA256, downloads)
    return build_dataset(read_deb(deb))
