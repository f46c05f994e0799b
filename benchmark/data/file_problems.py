"""What is wrong with a card's local data files, in one line that names the file: the diagnosis
made when Hugging Face ``datasets`` fails to read them. Its DatasetGenerationError says only "An
error occurred while generating the dataset": the cause (a UnicodeDecodeError, a pandas
ParserError, an EmptyDataError, a pyarrow error) is chained to it, and the file is named only in
a log line. The checks here run on the failure path only, so a good dataset pays nothing."""

from __future__ import annotations

import codecs
import glob
import re
from pathlib import Path

# A file with a NUL byte in its first block is no text file (a binary file given a .csv name).
_PROBE_BYTES = 8192
_CHUNK_BYTES = 1 << 20


def split_files(data_files: dict | list | str | None) -> dict[str, list[Path]]:
    """Split name -> the existing files its ``data_files`` entry names (globs expanded). A single
    entry (not a mapping) is the one split "train" that fusebench divides."""
    if data_files is None:
        return {}
    entries = data_files if isinstance(data_files, dict) else {"train": data_files}
    out: dict[str, list[Path]] = {}
    for split, value in entries.items():
        paths = []
        for pattern in value if isinstance(value, (list, tuple)) else [value]:
            matches = sorted(glob.glob(str(pattern))) if glob.has_magic(str(pattern)) else [str(pattern)]
            paths += [Path(p) for p in matches if Path(p).is_file()]
        out[str(split)] = paths
    return out


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of ``exc``'s chain (``raise ... from`` first, else the context)."""
    seen = {id(exc)}
    while True:
        inner = exc.__cause__ or exc.__context__
        if inner is None or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


def file_problem(path: Path, fmt: str) -> str | None:
    """What keeps ``datasets`` from reading ``path`` as ``fmt``, in words (None: nothing found)."""
    if path.stat().st_size == 0:
        return "is empty (0 bytes: no header and no rows)"
    if fmt not in ("csv", "json"):
        return _parquet_problem(path) if fmt == "parquet" else None
    with path.open("rb") as handle:
        if b"\0" in handle.read(_PROBE_BYTES):
            return f"is not a text file (it holds NUL bytes); expected {fmt.upper()} text in UTF-8"
    return _utf8_problem(path) or (_csv_problem(path) if fmt == "csv" else _json_problem(path))


def _utf8_problem(path: Path) -> str | None:
    """Where ``path`` stops being UTF-8 (read in chunks: a large file is never held whole)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = line = 0
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(_CHUNK_BYTES)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # exc.object is the decoder's buffered bytes (an unfinished character) and this chunk.
                start = offset - (len(exc.object) - len(chunk))
                line += exc.object[: exc.start].count(b"\n")
                return (f"is not UTF-8 text (byte {start + exc.start}, line {line + 1}: {exc.reason}); re-save it "
                        "as UTF-8 (e.g. iconv -f latin1 -t utf-8)")
            if not chunk:
                return None
            offset += len(chunk)
            line += chunk.count(b"\n")


def _csv_problem(path: Path) -> str | None:
    """The pandas parser's complaint about ``path`` (as ``datasets`` reads CSV), or "no rows"."""
    import pandas as pd

    rows = 0
    try:
        for chunk in pd.read_csv(path, chunksize=100_000):
            rows += len(chunk)
    except pd.errors.EmptyDataError:
        return "has no header and no rows"
    except pd.errors.ParserError as exc:
        reason = re.sub(r"^Error tokenizing data\. C error: ", "", str(exc).strip())
        return f"cannot be parsed as CSV ({reason}); every row needs as many fields as the header"
    return None if rows else "has no rows (only a header)"


def _json_problem(path: Path) -> str | None:
    """Where ``path`` is neither one JSON document nor JSON Lines (one object per line), as
    ``datasets`` accepts both."""
    import json

    text = path.read_text(encoding="utf-8")
    try:
        json.loads(text)
        return None
    except json.JSONDecodeError:
        pass
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            if line.strip():
                json.loads(line)
        except json.JSONDecodeError as exc:
            return (f"is neither a JSON document nor JSON Lines (line {number}, column {exc.colno}: {exc.msg}); "
                    "expected one JSON object per line")
    return None


def _parquet_problem(path: Path) -> str | None:
    import pyarrow.parquet as pq

    try:
        pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow's error for a damaged file varies (ArrowInvalid, OSError)
        return f"is not a readable Parquet file ({exc})"
    return None


def unreadable_files_message(card, fmt: str, data_files, exc: BaseException) -> str:
    """One line for a failure of ``datasets.load_dataset`` on the card's local files: the split and
    file at fault and what is wrong with it, else the innermost error and the field to look at."""
    where = f"({card.path}, field 'source.local.data_files')"
    files = split_files(data_files)
    empty = re.search(r'Instruction "(\w+)" corresponds to no data', str(exc))
    if empty:  # every file of the split parsed, and none holds a row
        split = empty.group(1)
        named = ", ".join(map(str, files.get(split, []))) or "its files"
        return f"dataset {card.name!r}: split {split!r} is empty: file {named} has no rows {where}"
    for split, paths in files.items():
        for path in paths:
            try:
                problem = file_problem(path, fmt)
            except OSError as error:
                problem = f"cannot be read ({error.strerror or error})"
            if problem:
                return f"dataset {card.name!r}: split {split!r} file {path} {problem} {where}"
    cause = root_cause(exc)
    return (f"dataset {card.name!r}: cannot read the local files named in {card.path} (field 'source.local'): "
            f"{cause.__class__.__name__}: {cause}")
