"""Photos for people played by the simulator: tiny valid PNGs, each `n` a different file (photos
are stored by content hash, so repeats would collapse into one)."""

from __future__ import annotations

import io
import struct
import zlib


def photo(n: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    pixel = bytes([n % 256, n // 256 % 256, n // 65536 % 256])
    raw = b"".join(b"\x00" + pixel * 4 for _ in range(4))
    out = io.BytesIO()
    out.write(b"\x89PNG\r\n\x1a\n")
    out.write(chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)))
    out.write(chunk(b"IDAT", zlib.compress(raw)))
    out.write(chunk(b"IEND", b""))
    return out.getvalue()
