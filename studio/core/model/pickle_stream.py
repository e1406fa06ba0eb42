"""A pickle's bytes as `joblib.load` would unpickle them, streamed within limits.

The child process loads every pickle with joblib, so the scan opens files the same way: joblib
picks a decompressor by the first bytes, and the decompressors here are joblib's own, so the scan
reads exactly the bytes the loader will. Nothing is read whole: opcodes are read up to `limit`
bytes, a compressed file is inflated up to `inflate_limit` bytes in all, and data the scan only
needs to step over (joblib's array bytes, long strings) is seeked past in a plain file.
"""

from __future__ import annotations

import io
import sys
from typing import IO, Any

from studio.core.units import human_size

DEFAULT_LIMIT = 64 * 1024**2
DEFAULT_INFLATE_LIMIT = 1024**3
CHUNK = 1 << 20
LONGEST_LINE = 1 << 20


class Stop(Exception):
    """The scan cannot go on; the message ends 'the scan stopped at byte N: ...'."""


class CutShort(Stop):
    """A limit ended the scan; the message is the whole note shown in the list."""


class Source:
    """Reads within the limits. `position` counts bytes from the start of the (decompressed)
    stream, skipped ones included."""

    def __init__(self, stream: IO[bytes], *, size: int | None, limit: int, inflate_limit: int):
        self.stream = stream
        self.size = size  # None for a compressed stream, which cannot seek
        self.position = 0
        self.limit, self.read_left = limit, limit
        # A plain file inflates nothing: its inflate budget never runs out.
        self.inflate_limit = inflate_limit
        self.inflate_left = inflate_limit if size is None else sys.maxsize

    def read(self, wanted: int) -> bytes:
        allowed = min(wanted, self.read_left, self.inflate_left)
        data = self.stream.read(allowed)
        got = len(data)
        self.position += got
        self.read_left -= got
        self.inflate_left -= got
        if got < wanted:
            if got == allowed:  # a limit ran out, not the file
                raise self._cut_short()
            raise Stop("the file ends before the pickle does")
        return data

    def readline(self) -> bytes:
        allowed = min(LONGEST_LINE, self.read_left, self.inflate_left)
        data = self.stream.readline(allowed)
        self._consumed(len(data))
        if not data.endswith(b"\n"):
            if len(data) == allowed < LONGEST_LINE:
                raise self._cut_short()
            raise Stop("a line of the pickle has no end")
        return data

    def skip(self, count: int) -> None:
        if self.size is not None:  # a plain file: seek, nothing is read
            if self.position + count > self.size:
                raise Stop("the file ends inside data it says follows")
            self.stream.seek(count, io.SEEK_CUR)
            self._consumed(count, read=False)
            return
        while count:  # a compressed stream: inflate and drop, within the inflate limit
            if self.inflate_left <= 0:
                raise self._cut_short()
            chunk = self.stream.read(min(count, CHUNK, self.inflate_left))
            if not chunk:
                raise Stop("the file ends inside data it says follows")
            self._consumed(len(chunk), read=False)
            count -= len(chunk)

    def _consumed(self, count: int, *, read: bool = True) -> None:
        self.position += count
        if read:
            self.read_left -= count
        self.inflate_left -= count

    def _cut_short(self) -> CutShort:
        limit, what = ((self.limit, "read") if self.read_left <= 0
                       else (self.inflate_limit, "decompressed"))
        return CutShort(f"(the scan was cut short by its limit of {human_size(limit)} {what}: "
                        "the rest of the file is not listed and may import anything)")


def open_as_joblib_does(raw: IO[bytes], size: int) -> tuple[IO[bytes], int | None, bool]:
    """The stream joblib.load would unpickle, the file's size when that stream is the file itself,
    and whether joblib's NumpyArrayWrapper reads array bytes from it (not in the old format).

    joblib tries the magics in its own registration order (joblib/numpy_pickle.py), and so does
    this; a file that matches none is a plain pickle.
    """
    from joblib import compressor

    head = raw.read(8)
    raw.seek(0)
    if head.startswith(b"ZF"):
        # joblib < 0.10 (numpy_pickle_compat.read_zfile): "ZF", the length in 19 characters,
        # maybe a space, then one zlib stream whose pickle keeps arrays in companion files.
        header = raw.read(2 + len(hex(2**64)) + 1)
        raw.seek(len(header) - (0 if header.endswith(b" ") else 1))
        return _buffered(compressor.BinaryZlibFile(raw, "rb")), None, False
    for wrapper in (compressor.ZlibCompressorWrapper(), compressor.GzipCompressorWrapper(),
                    compressor.BZ2CompressorWrapper(), compressor.LZMACompressorWrapper(),
                    compressor.XZCompressorWrapper(), compressor.LZ4CompressorWrapper()):
        if head.startswith(wrapper.prefix):
            try:
                return _buffered(wrapper.decompressor_file(raw)), None, True
            except ValueError as exc:  # lz4 is not installed: joblib.load cannot open it either
                raise Stop(f"the file is compressed with {wrapper.extension.lstrip('.')}, which "
                           f"cannot be decompressed here: {exc}") from exc
    return raw, size, True


def _buffered(stream: Any) -> IO[bytes]:
    return io.BufferedReader(stream, CHUNK)
