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
                _read(f, "<I")  # type
                _read(f, "<Q")  # offset
                header.tensors[name] = shape
            return header
    except OSError as exc:
        raise GGUFError(f"cannot read {path}: {exc.strerror}") from exc
