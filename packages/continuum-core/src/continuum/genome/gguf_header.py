"""Read a GGUF file's metadata and tensor table (not its data) — enough to check that a
LoRA adapter is a LoRA, for which architecture, at which rank and alpha, touching which
tensors, and that its shapes fit a base model. No dependency beyond the standard library.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from continuum.errors import ContinuumError

MAGIC = b"GGUF"
_SCALARS = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
MAX_ITEMS = 1 << 20  # a hostile header cannot make us allocate without bound


class GGUFError(ContinuumError):
    """Not a readable GGUF file."""


@dataclass
class GGUFHeader:
    version: int
    metadata: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, tuple[int, ...]] = field(default_factory=dict)  # name -> shape (ggml order)
    layout: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (type, offset)
    data_start: int = 0  # where tensor data begins (offsets are relative to it)


def _read(f: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise GGUFError("truncated GGUF header")
    return struct.unpack(fmt, data)[0]


def _string(f: BinaryIO) -> str:
    n = _read(f, "<Q")
    if n > 1 << 24:
        raise GGUFError("GGUF string too long")
    data = f.read(n)
    if len(data) != n:
        raise GGUFError("truncated GGUF string")
    return data.decode("utf-8", errors="replace")


def _value(f: BinaryIO, kind: int, depth: int = 0) -> Any:
    if kind in _SCALARS:
        return _read(f, _SCALARS[kind])
    if kind == _STRING:
        return _string(f)
    if kind == _ARRAY and depth < 2:
        item, n = _read(f, "<I"), _read(f, "<Q")
        if n > MAX_ITEMS:
            raise GGUFError("GGUF array too long")
        values = [_value(f, item, depth + 1) for _ in range(n)]
        return values if n <= 64 else values[:64]  # keep headers small in memory
    raise GGUFError(f"unknown GGUF value type {kind}")


def read_header(path: Path | str) -> GGUFHeader:
    path = Path(path)
    try:
        with path.open("rb") as f:
            if f.read(4) != MAGIC:
                raise GGUFError(f"{path} is not a GGUF file")
            version = _read(f, "<I")
            n_tensors, n_kv = _read(f, "<Q"), _read(f, "<Q")
            if n_tensors > MAX_ITEMS or n_kv > MAX_ITEMS:
                raise GGUFError(f"{path}: implausible GGUF header")
            header = GGUFHeader(version=version)
            for _ in range(n_kv):
                key = _string(f)
                header.metadata[key] = _value(f, _read(f, "<I"))
            for _ in range(n_tensors):
                name = _string(f)
                dims = _read(f, "<I")
                if dims > 8:
                    raise GGUFError(f"{path}: tensor {name} has {dims} dimensions")
                shape = tuple(_read(f, "<Q") for _ in range(dims))
                header.tensors[name] = shape
                header.layout[name] = (_read(f, "<I"), _read(f, "<Q"))  # type, offset
            align = int(header.metadata.get("general.alignment", 32) or 32)
            header.data_start = -(-f.tell() // align) * align
            return header
    except OSError as exc:
        raise GGUFError(f"cannot read {path}: {exc.strerror}") from exc


# ggml tensor types an adapter may use: type -> (values per block, bytes per block)
_BLOCKS = {
    0: (1, 4),
    1: (1, 2),
    30: (1, 2),
    2: (32, 18),
    3: (32, 20),
    6: (32, 22),
    7: (32, 24),
    8: (32, 34),
}
_FLOATS = {0: "<f4", 1: "<f2"}  # checked value by value for NaN and infinity


def check_tensor_data(path: Path | str, header: GGUFHeader) -> None:
    """Every tensor's data is in the file (none cut off, none past its end) and every
    float value is finite: a truncated or NaN adapter would load and wreck every turn."""
    import numpy as np

    path = Path(path)
    size = path.stat().st_size
    for name, (kind, offset) in header.layout.items():
        if kind not in _BLOCKS:
            raise GGUFError(f"{path}: tensor {name} has a type adapters do not use ({kind})")
        per_block, block_bytes = _BLOCKS[kind]
        count = 1
        for d in header.tensors[name]:
            count *= d
        if count % per_block:
            raise GGUFError(f"{path}: tensor {name} does not fill whole blocks")
        start, nbytes = header.data_start + offset, count // per_block * block_bytes
        if start + nbytes > size:
            raise GGUFError(f"{path}: tensor {name} is cut off (the file is truncated)")
        if kind in _FLOATS or kind == 30:
            raw = np.memmap(path, dtype=np.uint8, mode="r", offset=start, shape=(nbytes,))
            if kind == 30:  # bf16: the high half of a float32
                values = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
            else:
                values = raw.view(_FLOATS[kind])
            if not np.isfinite(values).all():
                raise GGUFError(f"{path}: tensor {name} holds NaN or infinite values")
