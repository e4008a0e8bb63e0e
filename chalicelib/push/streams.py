"""Byte streams the pusher reads blobs from: a window into a file (a tar member, read in
place rather than extracted) and gzip compression on the fly (for uncompressed layers)."""

from __future__ import annotations

import io
import zlib
from pathlib import Path
from typing import BinaryIO

READ_SIZE = 1024 * 1024
GZIP_LEVEL = 6  # fixed, like mtime 0 in the header, so a second pass writes the same bytes


class Window(io.RawIOBase):
    """`length` bytes of a file from `offset`: a tar member without extracting it."""

    def __init__(self, path: Path, offset: int, length: int) -> None:
        self._file = path.open("rb")
        self._offset, self._length, self._position = offset, length, 0
        self._file.seek(offset)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        wanted = min(len(buffer), self._length - self._position)
        if wanted <= 0:
            return 0
        data = self._file.read(wanted)
        buffer[: len(data)] = data
        self._position += len(data)
        return len(data)

    def close(self) -> None:
        self._file.close()
        super().close()


class Gzipped(io.RawIOBase):
    """The gzip compression of another stream, produced as it is read (deterministic)."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        # wbits 31: a gzip header with mtime 0 and no file name, so the output is reproducible.
        self._compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        self._pending = b""
        self._finished = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._pending and not self._finished:
            chunk = self._source.read(READ_SIZE)
            if chunk:
                self._pending = self._compressor.compress(chunk)
            else:
                self._pending = self._compressor.flush()
                self._finished = True
        taken = self._pending[: len(buffer)]
        buffer[: len(taken)] = taken
        self._pending = self._pending[len(taken) :]
        return len(taken)

    def close(self) -> None:
        self._source.close()
        super().close()


def read_exactly(stream: BinaryIO, size: int) -> bytes:
    """Up to `size` bytes, fewer only at the end of the stream (raw reads may return less)."""
    pieces: list[bytes] = []
    remaining = size
    while remaining > 0:
        piece = stream.read(min(remaining, 8 * READ_SIZE))
        if not piece:
            break
        pieces.append(piece)
        remaining -= len(piece)
    return b"".join(pieces)
