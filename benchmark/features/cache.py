"""On-disk cache of encoded features, one safetensors file per (dataset revision, split,
column, encoder, encoder version, preprocessing). Entries are written to a temporary file
and renamed into place, so an interrupted write never leaves an entry a later run trusts.

Entries are read memory-mapped (:func:`load_entry`): the tensors keep their cached dtype
(fp16 features, uint8 masks) and their bytes stay in the file until a batch touches them,
so a worker holds each dataset once, in the page cache, however many units it runs.

Every entry carries a checksum of its tensors' bytes (metadata ``fusebench.sha256``), verified
when it is loaded: a file overwritten in place at the same size (zeros, NaN) passes the header
checks but not the checksum, and is encoded again with a warning naming it, never used."""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import tempfile
import warnings
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
from safetensors.torch import save_file

from benchmark.paths import cache_dir


REQUIRED = {"pooled", "tokens", "mask"}  # tensors every entry must hold

# safetensors dtype names -> torch dtypes (https://github.com/huggingface/safetensors, "Format")
DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U8": torch.uint8, "BOOL": torch.bool,
}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
MAX_HEADER = 100 * 2**20  # the format's own limit on the JSON header
CHECKSUM = "fusebench.sha256"  # metadata key: checksum of the tensors' bytes (``checksum``)


class DamagedEntry(ValueError):
    """A file that is not a complete, consistent safetensors entry."""


def cache_key(**parts: object) -> str:
    """A content hash of everything that determines the features."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def entry_path(key: str, root: Path | None = None) -> Path:
    return (root or cache_dir()) / f"{key}.safetensors"


def read_header(path: Path) -> tuple[int, dict, dict]:
    """(offset of the data buffer, the header's tensor entries, its metadata) of a safetensors file, checked:
    every tensor's byte range matches its dtype and shape, and the ranges end exactly at the
    end of the file (a truncated or padded file is damaged). Raises :class:`DamagedEntry`."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        if len(prefix) < 8:
            raise DamagedEntry(f"{path}: shorter than a header")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(MAX_HEADER, size - 8):
            raise DamagedEntry(f"{path}: header of {length} bytes in a {size}-byte file")
        try:
            header = json.loads(handle.read(length))
        except ValueError as exc:
            raise DamagedEntry(f"{path}: unreadable header ({exc})") from None
    if not isinstance(header, dict):
        raise DamagedEntry(f"{path}: header is not a JSON object")
    start = 8 + length
    tensors = {k: v for k, v in header.items() if k != "__metadata__"}
    end = 0
    for name, info in tensors.items():
        try:
            dtype = DTYPES[info["dtype"]]
            shape = [int(d) for d in info["shape"]]
            begin, stop = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise DamagedEntry(f"{path}: tensor {name!r} has no valid dtype, shape or offsets") from None
        expected = math.prod(shape) * dtype.itemsize
        if min(shape, default=0) < 0 or not 0 <= begin <= stop or stop - begin != expected:
            raise DamagedEntry(f"{path}: tensor {name!r}: bytes {begin}..{stop} do not hold {info['dtype']}{shape}")
        end = max(end, stop)
    if start + end != size:
        raise DamagedEntry(f"{path}: tensors end at byte {start + end}, the file at {size}")
    metadata = header.get("__metadata__")
    return start, tensors, metadata if isinstance(metadata, dict) else {}


def _tensor_hash(tensor: torch.Tensor):
    """sha256 of a tensor's bytes, as stored (any dtype; no copy when it is contiguous)."""
    return hashlib.sha256(tensor.contiguous().reshape(-1).view(torch.uint8).numpy())


def _combined(hashes: dict[str, "hashlib._Hash"]) -> str:
    """One checksum from per-tensor hashes, by tensor name: the same whatever order the file
    holds the tensors in (``save_file`` and ``save_entry_streamed`` order them differently)."""
    whole = hashlib.sha256()
    for name in sorted(hashes):
        whole.update(name.encode() + b"\0" + hashes[name].digest())
    return whole.hexdigest()


def checksum(tensors: dict[str, torch.Tensor]) -> str:
    """The checksum of an entry's tensors (their names and bytes). Verifying it reads every byte
    of the entry once per load: sequential reads at page-cache or disk speed and sha256 at over
    1 GB/s, small next to encoding, and the only check that catches a same-size overwrite."""
    return _combined({name: _tensor_hash(tensor) for name, tensor in tensors.items()})


def map_tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a safetensors file, memory-mapped copy-on-write (``MAP_PRIVATE``): no
    byte is read until used, and a write to a tensor would stay private to this process,
    never reaching the file. Raises :class:`DamagedEntry`."""
    start, header, _ = read_header(path)
    tensors = {}
    for name, info in header.items():
        dtype, shape = DTYPES[info["dtype"]], [int(d) for d in info["shape"]]
        begin, stop = (int(o) for o in info["data_offsets"])
        if stop == begin:  # an empty tensor (mmap cannot map zero bytes)
            tensors[name] = torch.empty(shape, dtype=dtype)
            continue
        raw = np.memmap(path, dtype=np.uint8, mode="c", offset=start + begin, shape=(stop - begin,))
        tensors[name] = torch.from_numpy(raw).view(dtype).reshape(shape)
    return tensors


def load_entry(key: str, root: Path | None = None) -> dict[str, torch.Tensor] | None:
    """The entry's tensors, memory-mapped in their cached dtype, or None on a miss. A damaged
    entry (truncated, incomplete, or bytes that do not match its checksum) is a miss: deleted,
    with a warning naming it, to be encoded again."""
    path = entry_path(key, root)
    if not path.is_file():
        return None
    try:
        tensors = map_tensors(path)
        _, _, metadata = read_header(path)
        if not REQUIRED <= set(tensors) or tensors["pooled"].shape[0] != tensors["tokens"].shape[0]:
            raise DamagedEntry(f"{path}: incomplete (tensors {sorted(tensors)})")
        if CHECKSUM not in metadata:
            raise DamagedEntry(f"{path}: no checksum (written by an older fusebench)")
        if checksum(tensors) != metadata[CHECKSUM]:
            raise DamagedEntry(f"{path}: its bytes do not match its checksum (overwritten or corrupted)")
    except (DamagedEntry, OSError) as exc:
        warnings.warn(f"feature cache entry damaged, encoding it again: {exc}", stacklevel=2)
        path.unlink(missing_ok=True)
        return None
    return tensors


def save_entry(key: str, tensors: dict[str, torch.Tensor], metadata: dict[str, str], root: Path | None = None) -> Path:
    path = entry_path(key, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        tensors = {k: v.contiguous() for k, v in tensors.items()}
        save_file(tensors, tmp, metadata={**metadata, CHECKSUM: checksum(tensors)})
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_entry_streamed(key: str, layout: dict[str, tuple[torch.dtype, tuple[int, ...]]],
                        chunks: Iterable[tuple[str, np.ndarray]], metadata: dict[str, str],
                        root: Path | None = None) -> Path:
    """Write an entry too large to hold in memory: ``layout`` gives each tensor's dtype and
    shape, in file order; ``chunks`` yields (tensor name, array) pieces in that order, each
    the next rows of its tensor. The same format and atomic rename as :func:`save_entry`."""
    # The checksum is known once every chunk is written: a placeholder of the same length, patched then.
    header: dict[str, object] = {"__metadata__": {**metadata, CHECKSUM: "0" * 64}}
    offset = 0
    for name, (dtype, shape) in layout.items():
        nbytes = math.prod(shape) * dtype.itemsize
        header[name] = {"dtype": DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # the format pads the header to 8 bytes
    path = entry_path(key, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{key}.", suffix=".tmp", dir=path.parent)
    need = {name: info["data_offsets"][1] - info["data_offsets"][0] for name, info in header.items()
            if name != "__metadata__"}
    written = dict.fromkeys(layout, 0)
    hashes = {name: hashlib.sha256() for name in layout}
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(struct.pack("<Q", len(blob)) + blob)
            order = iter(layout)
            current = next(order, None)
            for name, array in chunks:
                while current is not None and current != name and written[current] == need[current]:
                    current = next(order, None)  # the tensor ahead is complete: on to the next
                data = np.ascontiguousarray(array)
                if name != current or written[name] + data.nbytes > need[name]:
                    raise ValueError(f"chunk of {name!r} out of the layout's order or past its end")
                if torch.from_numpy(data[:0]).dtype != layout[name][0]:
                    raise ValueError(f"chunk of {name!r} is {data.dtype}, its layout says {layout[name][0]}")
                written[name] += data.nbytes
                hashes[name].update(data.data)
                handle.write(data.data)
            short = {n: f"{written[n]} of {need[n]} bytes" for n in layout if written[n] != need[n]}
            if short:
                raise ValueError(f"entry {key}: tensors left incomplete: {short}")
            header["__metadata__"][CHECKSUM] = _combined(hashes)
            patched = json.dumps(header, separators=(",", ":")).encode()
            handle.seek(8)
            handle.write(patched + b" " * (len(blob) - len(patched)))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def stats_dir(root: Path | None = None) -> Path:
    """Where encoders keep statistics fitted on a training split (benchmark/features/standardize.py)."""
    return (root or cache_dir()) / "train-stats"


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
        for path in list(folder.glob("*.safetensors")) + list(folder.glob(".*.tmp")) + list(stats_dir(folder).glob("*")):
            size += path.stat().st_size
            path.unlink()
            count += 1
    return count, size
