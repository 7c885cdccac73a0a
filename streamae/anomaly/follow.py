"""Read a WAV file while it is still being written.

A recorder writes the RIFF header first with a placeholder size (0, 0xFFFFFFFF, or the size
it had when the header was last updated) and fixes it when it closes the file. `WavFollower`
trusts the header's data size only when it is final (non-zero and inside the file); otherwise
it reads as far as the file's data goes, in whole frames, and each call returns only the
frames that arrived since the last one, so every sample is read exactly once.
"""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from ..errors import StreamaeError

PCM, FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
_PLACEHOLDER_SIZES = (0, 0xFFFFFFFF)


def is_wav(path: str | Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(12)
    except OSError:
        return False
    return len(head) == 12 and head[:4] == b"RIFF" and head[8:12] == b"WAVE"


class WavFollower:
    """`read_new()` -> float32 [channels, n]: the whole frames written since the last call
    (none, [channels, 0], while the header itself is still incomplete)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.samplerate = self.channels = 0
        self._data_at: int | None = None  # byte offset of the first sample
        self._declared = 0  # the header's data size, as it was when last read
        self._consumed = 0  # data bytes already returned
        self._width = self._format = self._bits = 0

    @property
    def frames_read(self) -> int:
        return self._consumed // self._frame_bytes if self._data_at is not None else 0

    @property
    def _frame_bytes(self) -> int:
        return self._width * self.channels

    def read_new(self) -> np.ndarray:
        with open(self.path, "rb") as f:
            if self._data_at is None and not self._parse_header(f):
                return np.zeros((max(self.channels, 1), 0), np.float32)
            size = f.seek(0, 2)
            self._declared = self._reread_declared(f)  # the recorder may have finalised it since
            available = size - self._data_at
            if self._declared not in _PLACEHOLDER_SIZES and self._declared <= available:
                available = self._declared  # final header: stop at the data's end (chunks may follow)
            available -= available % self._frame_bytes
            if available <= self._consumed:
                return np.zeros((self.channels, 0), np.float32)
            f.seek(self._data_at + self._consumed)
            raw = f.read(available - self._consumed)
        raw = raw[: len(raw) - len(raw) % self._frame_bytes]
        self._consumed += len(raw)
        return self._decode(raw)

    def _reread_declared(self, f) -> int:
        f.seek(self._data_at - 4)
        return struct.unpack("<I", f.read(4))[0]

    def _parse_header(self, f) -> bool:
        """Find 'fmt ' and the start of 'data'; False while they are not all written yet."""
        head = f.read(12)
        if len(head) < 12:
            return False
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise StreamaeError("not a RIFF/WAVE file", self.path)
        fmt = None
        while True:
            chunk = f.read(8)
            if len(chunk) < 8:
                return False
            cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                if fmt is None:
                    raise StreamaeError("WAV data before its format chunk", self.path)
                self._data_at = f.tell()
                self._declared = csize
                return True
            body = f.read(csize + (csize & 1))
            if len(body) < csize:
                return False
            if cid == b"fmt ":
                fmt = body
                self._set_format(body)

    def _set_format(self, body: bytes) -> None:
        tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
        if tag == EXTENSIBLE and len(body) >= 26:
            tag = struct.unpack("<H", body[24:26])[0]
        if (tag, bits) not in ((PCM, 8), (PCM, 16), (PCM, 24), (PCM, 32), (FLOAT, 32), (FLOAT, 64)):
            raise StreamaeError(f"unsupported WAV sample format (tag {tag}, {bits} bits)", self.path)
        if channels < 1 or rate < 1:
            raise StreamaeError("WAV header has no channels or no sample rate", self.path)
        self._format, self._bits, self._width = tag, bits, bits // 8
        self.channels, self.samplerate = channels, rate

    def _decode(self, raw: bytes) -> np.ndarray:
        if self._format == FLOAT:
            x = np.frombuffer(raw, "<f4" if self._bits == 32 else "<f8").astype(np.float32)
        elif self._bits == 8:
            x = (np.frombuffer(raw, np.uint8).astype(np.float32) - 128.0) / 128.0
        elif self._bits == 24:
            b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
            v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            x = (np.where(v >= 1 << 23, v - (1 << 24), v) / float(1 << 23)).astype(np.float32)
        else:
            x = np.frombuffer(raw, "<i2" if self._bits == 16 else "<i4").astype(np.float32)
            x /= float(1 << (self._bits - 1))
        return np.ascontiguousarray(x.reshape(-1, self.channels).T)
