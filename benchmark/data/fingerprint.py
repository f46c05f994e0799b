"""What a dataset card's data is, as a fingerprint: part of every result's identity.

- **Local files** (``source.local``): the sha256 of the content of every file the card names
  (``data_files``, and every file under ``data_dir``), never their paths, so a rewritten file
  re-runs its cells and an unchanged file moved elsewhere does not. A file is hashed again only
  when its size, modification time or inode changed (:class:`DigestCache`, kept in the state
  folder); the recorded identity is always the content.
- **Built-in datasets** (``source.builtin``): the preparer's version, i.e. the source of the
  preparer function and of every helper function and constant it uses from the data package
  (among them the pinned name, version and sha256 of the package it is built from, which the
  fetch verifies). A prepared copy records it and is prepared again when it no longer matches.
- **Hub datasets** (``source.hub``): the revision resolved to its commit sha (a 40-hex revision
  is one already; a branch or tag is resolved through the hub, and stays ``unresolved:<name>``
  when the hub cannot be reached, so the identity changes once it can).

- **Files rows name by path** (an image or audio column of file names in a CSV, JSON or Parquet
  file): the content of each named file with a media suffix (:data:`MEDIA_SUFFIXES`), read from
  the modalities' columns, so rewriting an image behind an unchanged table re-runs its cells too.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.data.builtin import preparer_version
from benchmark.data.fetch import sha256_of
from benchmark.data.source_paths import resolve_source_path
from benchmark.paths import state_dir

if TYPE_CHECKING:
    from benchmark.data.cards import DatasetCard

# source.local fields that name files or folders (their content, not their path, is the identity)
LOCAL_PATH_FIELDS = ("data_files", "data_dir")
_SHA = re.compile(r"^[0-9a-f]{40}$")
_GLOB = re.compile(r"[*?\[]")


class DigestCache:
    """sha256 of files, recomputed only when a file's (size, mtime, inode) changed.

    Kept as one JSON file in the state folder, replaced atomically: two processes that hash at
    once lose at worst an entry (hashed again next time), never corrupt one."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / "file-digests.json"
        self._entries: dict[str, list] | None = None
        self._dirty = False

    def _load(self) -> dict[str, list]:
        if self._entries is None:
            try:
                self._entries = json.loads(self.path.read_text())
            except (OSError, ValueError):
                self._entries = {}
        return self._entries

    def digest(self, path: Path) -> str:
        """The sha256 of ``path``'s content."""
        stat = path.stat()
        stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
        key = str(path.resolve())
        entries = self._load()
        known = entries.get(key)
        if known is not None and known[:3] == stamp:
            return known[3]
        value = sha256_of(path)
        entries[key] = [*stamp, value]
        self._dirty = True
        return value

    def save(self) -> None:
        if not self._dirty:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            partial = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            partial.write_text(json.dumps(self._entries))
            os.replace(partial, self.path)
            self._dirty = False
        except OSError:  # a read-only state folder: the digests are computed again next time
            pass


def _files_of(path: Path) -> list[tuple[str, Path]]:
    """(name relative to ``path``, file) for a file, a folder (every file under it) or a glob."""
    if _GLOB.search(str(path)):
        matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
        return [(m.name, m) for m in matches if m.is_file()]
    if path.is_dir():
        return sorted((str(f.relative_to(path)), f) for f in path.rglob("*") if f.is_file())
    return [(path.name, path)]


def content_digest(path: Path, cache: DigestCache) -> str:
    """Fingerprint of the content under ``path`` (a file, a folder or a glob pattern); names
    inside a folder count (they are the data's structure, e.g. imagefolder's class folders), the
    folder's own path does not. A path to nothing gives ``missing``: loading names it later."""
    files = _files_of(path)
    if not files or not all(f.exists() for _, f in files):
        return "missing"
    if len(files) == 1 and files[0][1] == path:
        return cache.digest(path)
    listing = [[name, cache.digest(f)] for name, f in files]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


def resolve_local(card: DatasetCard, value: str) -> Path:
    """A path from ``source.local`` as loading resolves it: ``~`` and ``$VARS`` expanded, relative
    to the card's folder."""
    return resolve_source_path(card.path.parent, value)


def local_content(card: DatasetCard, cache: DigestCache) -> dict[str, Any]:
    """``source.local`` with every path replaced by the fingerprint of its content."""
    local = card.source["local"]

    def digest_of(value: Any) -> Any:
        if isinstance(value, str):
            return content_digest(resolve_local(card, value), cache)
        if isinstance(value, list):
            return [digest_of(v) for v in value]
        if isinstance(value, dict):
            return {k: digest_of(v) for k, v in value.items()}
        return value

    return {key: digest_of(value) if key in LOCAL_PATH_FIELDS else value for key, value in local.items()}


# --------------------------------------------------------------------------------------- hub


_resolved: dict[tuple[str, str], str] = {}


def hub_revision(hub_id: str, revision: str) -> str:
    """``revision`` as a commit sha: as given when it is one; else resolved on the hub (once per
    process); ``unresolved:<revision>`` offline."""
    if _SHA.match(revision):
        return revision
    key = (hub_id, revision)
    if key not in _resolved:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1"
        sha = None
        if not offline:
            try:
                from huggingface_hub import HfApi

                sha = HfApi().dataset_info(hub_id, revision=revision, timeout=10).sha
            except Exception:  # noqa: BLE001 - unreachable hub, unknown id: loading says which, later
                sha = None
        _resolved[key] = sha or f"unresolved:{revision}"
    return _resolved[key]


# ------------------------------------------------------------------ files rows name by path


# Suffixes of the image and audio files a column may name (benchmark/features/media.py reads them).
MEDIA_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff", ".svg",
                            ".wav", ".flac", ".ogg", ".mp3", ".m4a", ".opus"})
TABLE_FORMATS = ("csv", "json", "parquet")  # formats whose columns are read here with pandas


def _named_path(value: Any) -> str | None:
    """The file a cell names (a path string, or a ``{path}`` struct without bytes), if it has a
    media suffix."""
    if isinstance(value, dict) and not value.get("bytes"):
        value = value.get("path")
    if not isinstance(value, str) or len(value) > 4096 or "\n" in value:
        return None
    return value if os.path.splitext(value.strip())[1].lower() in MEDIA_SUFFIXES else None


def _table_files(card: DatasetCard) -> list[Path]:
    data_files = card.source["local"].get("data_files")
    values = list(data_files.values()) if isinstance(data_files, dict) else (
        data_files if isinstance(data_files, list) else [data_files] if data_files else [])
    return [f for v in values if isinstance(v, str) for _, f in _files_of(resolve_local(card, v))]


def _read_columns(path: Path, fmt: str, columns: list[str]):
    import pandas as pd

    if fmt == "csv":
        return pd.read_csv(path, usecols=lambda c: c in columns, dtype=str, keep_default_na=False)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        present = [c for c in columns if c in pq.ParquetFile(path).schema_arrow.names]
        return pd.read_parquet(path, columns=present)
    frame = pd.read_json(path, lines=path.suffix in (".jsonl", ".ndjson"), dtype=False)
    return frame[[c for c in columns if c in frame.columns]]


def referenced_files(card: DatasetCard, cache: DigestCache) -> str | None:
    """Fingerprint of the media files the modalities' columns name by path (relative paths resolve
    against the card's folder, as when encoding); None when the card's format is not a table read
    here or no cell names a file. A table that cannot be read here gives None: loading it names
    the problem."""
    fmt = card.source["local"].get("format")
    if fmt not in TABLE_FORMATS:
        return None
    columns = sorted({m.column for m in card.modalities if m.column} - {card.label})
    tables = _table_files(card)
    # The tables are read once per content: planning fingerprints a dataset several times per
    # command, and only the named files' stamps need checking again.
    key = (fmt, tuple(columns), tuple(cache.digest(t) if t.is_file() else "missing" for t in tables))
    if key not in _named_by_tables:
        _named_by_tables[key] = _named_files(tables, fmt, columns)
    named = _named_by_tables[key]
    if not named:
        return None
    listing = [[p, content_digest(resolve_local(card, p), cache)] for p in named]
    return hashlib.sha256(json.dumps(listing).encode()).hexdigest()


_named_by_tables: dict[tuple, list[str]] = {}


def _named_files(tables: list[Path], fmt: str, columns: list[str]) -> list[str]:
    """The media paths the tables' ``columns`` name, sorted; [] when a table cannot be read here
    (loading reports it, in one line)."""
    named: set[str] = set()
    for path in tables:
        try:
            frame = _read_columns(path, fmt, columns)
        except Exception:  # noqa: BLE001 - unreadable or not a table
            return []
        for column in frame.columns:
            named.update(p for p in map(_named_path, frame[column].tolist()) if p)
    return sorted(named)


# ---------------------------------------------------------------------------------- the card


def data_fingerprint(card: DatasetCard, cache: DigestCache | None = None) -> dict[str, Any]:
    """The card's ``source`` as the data it names: a JSON-able value that changes exactly when
    the data does (local paths replaced by their content's fingerprint, a built-in's preparer
    version added, a hub revision resolved)."""
    kind = card.source_kind
    if kind == "builtin":
        return {"builtin": card.source["builtin"], "preparer": preparer_version(card.source["builtin"])}
    if kind == "hub":
        hub = card.source["hub"]
        return {"hub": {**hub, "revision": hub_revision(hub["id"], hub["revision"])}}
    cache = cache or shared_digests()
    try:
        content: dict[str, Any] = {"local": local_content(card, cache)}
        files = referenced_files(card, cache)
        if files is not None:
            content["referenced_files"] = files
        return content
    finally:
        cache.save()


_shared: dict[Path, DigestCache] = {}


def shared_digests() -> DigestCache:
    """This process's digest cache for the current state folder (loaded once)."""
    path = state_dir() / "file-digests.json"
    if path not in _shared:
        _shared[path] = DigestCache(path)
    return _shared[path]
