"""The frame count a WAV file's header declares, to tell a complete file from one whose data was
cut short (an interrupted copy or download). libsndfile (``soundfile``) reads such a file without
complaint: it returns the frames that are there and reports their number as the file's length,
so a truncated clip would be encoded as if it were whole. FLAC and Ogg need no such check:
libsndfile refuses a truncated one."""

from __future__ import annotations

import io
import struct
from pathlib import Path
from typing import BinaryIO

# Formats whose block (nBlockAlign bytes) holds exactly one frame: PCM, IEEE float, A-law, mu-law
# and WAVE_FORMAT_EXTENSIBLE (PCM or float inside). Compressed formats (ADPCM) pack several frames
# into a block, so their data size does not count frames.
_ONE_FRAME_PER_BLOCK = {0x0001, 0x0003, 0x0006, 0x0007, 0xFFFE}
# A data size a writer that could not seek back leaves in the header (a WAV written to a pipe).
_UNKNOWN_SIZES = {0, 0xFFFFFFFF}


class TruncatedAudio(ValueError):
    """An audio file holds fewer frames than its header declares."""

    def __init__(self, declared: int, found: int, rate: int) -> None:
        self.declared, self.found = declared, found
        super().__init__(f"its header declares {declared} frames ({declared / rate:.2f} s at {rate} Hz), the "
                         f"file holds {found} ({found / rate:.2f} s); it was cut short (an interrupted copy or "
                         "download?): replace it with a complete copy")


def declared_wav_frames(source: bytes | str | Path) -> int | None:
    """Frames declared by a RIFF/WAVE header (data chunk size / block size), or None when ``source``
    is no such file, or its header does not say (a compressed format, a size left unknown)."""
    if isinstance(source, (bytes, bytearray)):
        return _declared_frames(io.BytesIO(source))
    with open(source, "rb") as handle:
        return _declared_frames(handle)


def _declared_frames(handle: BinaryIO) -> int | None:
    head = handle.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    format_tag = block_align = None
    while True:
        chunk = handle.read(8)
        if len(chunk) < 8:
            return None
        chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
        if chunk_id == b"fmt ":
            body = handle.read(size + (size & 1))
            if len(body) < 16:
                return None
            format_tag, _, _, _, block_align = struct.unpack("<HHIIH", body[:14])
        elif chunk_id == b"data":
            if format_tag not in _ONE_FRAME_PER_BLOCK or not block_align or size in _UNKNOWN_SIZES:
                return None
            return size // block_align
        else:
            handle.seek(size + (size & 1), io.SEEK_CUR)  # chunks are padded to an even size


def check_complete(source: bytes | str | Path, frames: int, rate: int) -> None:
    """Raise TruncatedAudio when ``source`` is a WAV whose header declares more than ``frames``."""
    declared = declared_wav_frames(source)
    if declared is not None and frames < declared:
        raise TruncatedAudio(declared, frames, rate)
