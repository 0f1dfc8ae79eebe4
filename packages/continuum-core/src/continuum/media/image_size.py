"""An image's pixel size read from its header, before anything decodes it: a 40 KB PNG
can declare 100,000 × 100,000 pixels (40 GB decoded). Knows PNG, JPEG, GIF and WebP;
None for anything else (the decoder then decides)."""

from __future__ import annotations

import struct

MAX_PIXELS = 40_000_000  # 40 MP: larger than any phone photo, far below a bomb
MAX_SIDE = 16_384


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the header, or None when the format is not one of these or
    the header is cut short."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp(data)
        if data[:2] == b"\xff\xd8":
            return _jpeg(data)
    except struct.error:
        return None
    return None


def too_large(data: bytes) -> str | None:
    """Why an image must not be decoded (its declared size), or None."""
    size = image_size(data)
    if size is None:
        return None
    w, h = size
    if w > MAX_SIDE or h > MAX_SIDE or w * h > MAX_PIXELS:
        return f"the image declares {w}×{h} pixels (over {MAX_PIXELS // 1_000_000} MP)"
    return None


def _webp(data: bytes) -> tuple[int, int] | None:
    kind = data[12:16]
    if kind == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if kind == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if kind == b"VP8L":
        b = int.from_bytes(data[21:25], "little")
        return (b & 0x3FFF) + 1, ((b >> 14) & 0x3FFF) + 1
    return None


def _jpeg(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None
