"""Where an image or audio cell's encoded bytes come from. A cell may hold the raw encoded bytes
(PNG, JPEG; WAV, FLAC), a file path (relative paths resolve against the card's folder, not the
current directory), or a Hugging Face ``{bytes, path}`` struct (the ``Image``/``Audio`` feature
read undecoded). A null cell, an empty path or an empty struct is an absent modality."""

from __future__ import annotations

import math
from pathlib import Path, PurePath
from typing import Any

from benchmark.features.base import Encoder, EncodingError

MISSING_HINT = "if this modality may be absent for some rows, add 'missing: allowed' to it in the card"


def resolve_path(path: str | PurePath, base_dir: Path | None) -> Path:
    """A path from a column: ``~`` expanded, a relative one joined to ``base_dir`` (the card's folder)."""
    resolved = Path(path).expanduser()
    if not resolved.is_absolute() and base_dir is not None:
        resolved = Path(base_dir) / resolved
    return resolved


def is_absent_media(value: Any) -> bool:
    """A null cell, an empty path, empty bytes, or a struct with neither bytes, path nor samples."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    if isinstance(value, (str, PurePath)):
        return not str(value).strip()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return len(value) == 0
    if isinstance(value, dict):
        return not value.get("bytes") and not value.get("path") and value.get("array") is None
    return False


def named_file(value: Any, base_dir: Path | None) -> Path | None:
    """The file a cell points at (resolved), or None when the cell holds the data itself."""
    if isinstance(value, (str, PurePath)) and str(value).strip():
        return resolve_path(value, base_dir)
    if isinstance(value, dict) and not value.get("bytes") and value.get("array") is None and value.get("path"):
        return resolve_path(value["path"], base_dir)
    return None


def encoded_source(value: Any, row: int, base_dir: Path | None) -> bytes | Path | None:
    """The cell's encoded bytes, or the existing file that holds them; None for other forms (a
    decoded image, an array of samples) that the encoder handles itself. A path to no file is an
    :class:`EncodingError` naming the row and the file."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, dict) and value.get("bytes"):
        return bytes(value["bytes"])
    path = named_file(value, base_dir)
    if path is None:
        return None
    if not path.is_file():
        where = f" (relative paths resolve against the card's folder {base_dir})" if base_dir is not None else ""
        raise EncodingError(row, f"file not found: {path}{where}; {MISSING_HINT}")
    return path


class MediaInput(Encoder):
    """Encoders of files or bytes (images, audio): empty paths and structs are absent, and a cell
    naming a file tells ``build_features`` which file to look for (``missing: allowed``)."""

    def is_absent(self, value: Any) -> bool:
        return is_absent_media(value)

    def referenced_file(self, value: Any) -> Path | None:
        return named_file(value, self.base_dir)

    def source(self, value: Any, row: int) -> bytes | Path | None:
        return encoded_source(value, row, self.base_dir)
