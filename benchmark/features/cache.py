"""On-disk cache of encoded features, one safetensors file per (dataset revision, split,
column, encoder, encoder version, preprocessing). Entries are written to a temporary file
and renamed into place, so an interrupted write never leaves an entry a later run trusts."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from benchmark.paths import cache_dir


REQUIRED = {"pooled", "tokens", "mask"}  # tensors every entry must hold


def cache_key(**parts: object) -> str:
    """A content hash of everything that determines the features."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def entry_path(key: str, root: Path | None = None) -> Path:
    return (root or cache_dir()) / f"{key}.safetensors"


def load_entry(key: str, root: Path | None = None) -> dict[str, torch.Tensor] | None:
    path = entry_path(key, root)
    if not path.is_file():
        return None
    try:
        tensors = load_file(str(path))
    except Exception:  # a damaged (e.g. truncated) entry is treated as a miss and rewritten
        path.unlink(missing_ok=True)
        return None
    if not REQUIRED <= set(tensors) or tensors["pooled"].shape[0] != tensors["tokens"].shape[0]:
        path.unlink(missing_ok=True)  # incomplete entry: never trusted
        return None
    return tensors


def save_entry(key: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str], root: Path | None = None) -> Path:
    path = entry_path(key, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def list_entries(root: Path | None = None) -> list[dict[str, object]]:
    from safetensors import safe_open

    rows = []
    for path in sorted((root or cache_dir()).glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
        rows.append({"key": path.stem, "bytes": path.stat().st_size, **meta})
    return rows


def clear(root: Path | None = None) -> tuple[int, int]:
    """Delete every entry (and stale temporaries). Returns (files, bytes) removed."""
    folder = root or cache_dir()
    count = size = 0
    if folder.is_dir():
        for path in list(folder.glob("*.safetensors")) + list(folder.glob(".*.tmp")):
            size += path.stat().st_size
            path.unlink()
            count += 1
    return count, size
