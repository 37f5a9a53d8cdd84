"""The fake upstream's images: real, deterministic PNGs of the requested size, from the seed,
prompt, model id and index.
"""

from __future__ import annotations

import hashlib
import json
import struct
import zlib
from typing import Any

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLUMN_BANDS = 8
_ROW_STEPS = 64


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _band_bounds(length: int, bands: int) -> list[tuple[int, int]]:
    return [(b * length // bands, (b + 1) * length // bands) for b in range(bands)]


def make_png(width: int, height: int, seed: Any, prompt: Any, model_id: Any, index: int) -> bytes:
    """Render a valid 8-bit RGB PNG, deterministic in (seed, prompt, model_id, index).

    The picture is a set of vertical colour bands, each a vertical gradient between two
    colours derived from a hash of the inputs. Only ``min(height, 64)`` distinct rows are
    built, so a 1024x1024 image costs a few thousand byte operations plus zlib.
    """
    if width < 1 or height < 1:
        raise ValueError("width and height must be positive")
    key = json.dumps(
        {"seed": seed, "prompt": prompt, "model_id": model_id, "index": index},
        sort_keys=True,
        default=str,
    ).encode("utf-8")
    palette = hashlib.shake_256(hashlib.sha256(key).digest()).digest(_COLUMN_BANDS * 6)
    tops = [palette[c * 6 : c * 6 + 3] for c in range(_COLUMN_BANDS)]
    bottoms = [palette[c * 6 + 3 : c * 6 + 6] for c in range(_COLUMN_BANDS)]
    columns = _band_bounds(width, _COLUMN_BANDS)

    steps = min(height, _ROW_STEPS)
    patterns: list[bytes] = []
    for step in range(steps):
        t_num, t_den = step, max(steps - 1, 1)
        parts = [b"\x00"]  # filter type "None" for every scanline
        for band, (start, end) in enumerate(columns):
            if end <= start:
                continue
            top, bottom = tops[band], bottoms[band]
            colour = bytes(
                (top[ch] * (t_den - t_num) + bottom[ch] * t_num) // t_den for ch in range(3)
            )
            parts.append(colour * (end - start))
        patterns.append(b"".join(parts))

    raw = b"".join(patterns[y * steps // height] for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        _PNG_SIGNATURE
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(raw, 6))
        + _png_chunk(b"IEND", b"")
    )
