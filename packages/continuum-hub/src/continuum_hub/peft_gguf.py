"""PEFT adapters from the Hub (``adapter_config.json`` + ``adapter_model.safetensors``)
into the GGUF LoRA the runtime pages in.

The safetensors file is parsed first — its JSON header only (safetensors cannot hold code),
every tensor a LoRA A/B matrix of a plain float type, the data the size the header says —
then converted with llama.cpp's own ``convert_lora_to_gguf.py`` (``continuum.genome``'s
cached converter) against the base's config, read from the base GGUF by transformers in a
child process. The GGUF that comes out is checked against the base like any adapter."""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

from continuum_hub.errors import HubError, UnsafeFile

PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors")
INSTALL = "pip install 'continuum-core[train]'  (torch and transformers, for llama.cpp's converter)"
FLOAT_TYPES = {"F16", "BF16", "F32", "F64"}
MAX_HEADER = 100 << 20


def check_safetensors(path: Path) -> dict[str, tuple[int, ...]]:
    """The tensors of a safetensors LoRA (name -> shape), or why it is refused."""
    size = path.stat().st_size
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise UnsafeFile(f"{path.name}: not a safetensors file (too short)")
        (n,) = struct.unpack("<Q", raw)
        if n > min(MAX_HEADER, size - 8):
            raise UnsafeFile(f"{path.name}: not a safetensors file (header of {n} bytes)")
        try:
            header = json.loads(f.read(n))
        except ValueError as exc:
            raise UnsafeFile(f"{path.name}: its safetensors header is not JSON") from exc
    if not isinstance(header, dict):
        raise UnsafeFile(f"{path.name}: its safetensors header is not a table")
    header.pop("__metadata__", None)
    shapes: dict[str, tuple[int, ...]] = {}
    end = 0
    for name, info in header.items():
        if not isinstance(info, dict) or info.get("dtype") not in FLOAT_TYPES:
            raise UnsafeFile(f"{path.name}: tensor {name!r} is not a float tensor")
        if ".lora_A." not in name and ".lora_B." not in name:
            raise HubError(f"{path.name}: {name!r} is not a LoRA A/B matrix (a full model?)")
        shape = tuple(int(d) for d in info.get("shape", ()))
        start, stop = (int(x) for x in info.get("data_offsets", (0, 0)))
        if len(shape) != 2 or stop < start:
            raise UnsafeFile(f"{path.name}: tensor {name!r} has a bad shape or offsets")
        shapes[name] = shape
        end = max(end, stop)
    if not shapes:
        raise HubError(f"{path.name} holds no LoRA tensors")
    if 8 + n + end != size:
        raise UnsafeFile(f"{path.name}: {size} bytes, its header describes {8 + n + end}")
    return shapes


def check_adapter_config(path: Path) -> dict:
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HubError(f"{path.name}: not JSON ({exc})") from exc
    if not isinstance(config, dict) or str(config.get("peft_type", "")).upper() != "LORA":
        raise HubError(f"{path.name}: not a LoRA adapter config (peft_type)")
    return config


def _base_config(base_model: Path, into: Path) -> None:
    """The base model's config.json (what the converter reads), from its GGUF."""
    code = (
        "import sys, json; from transformers import AutoConfig; "
        "c = AutoConfig.from_pretrained(sys.argv[1], gguf_file=sys.argv[2]); "
        "d = c.to_dict(); d.pop('quantization_config', None); "
        "d['architectures'] = d.get('architectures') or "
        "[c.model_type.capitalize() + 'ForCausalLM']; "
        "open(sys.argv[3], 'w').write(json.dumps(d))"
    )
    into.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            str(base_model.parent),
            base_model.name,
            str(into / "config.json"),
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"},
    )
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise HubError(f"could not read the base model's config from {base_model.name}: {tail}")


def peft_to_gguf_lora(peft_dir: Path, base_model: Path, out: Path) -> Path:
    """Convert the checked PEFT adapter in ``peft_dir`` for ``base_model`` (a GGUF)."""
    missing = [m for m in ("torch", "transformers") if importlib.util.find_spec(m) is None]
    if missing:
        raise HubError(
            f"this adapter is PEFT safetensors; converting it to GGUF needs {', '.join(missing)}: "
            + INSTALL
        )
    from continuum.genome.convert import peft_to_gguf
    from continuum.genome.pager import GenomeError

    try:
        _base_config(base_model, peft_dir.parent / "base")
        return peft_to_gguf(peft_dir, peft_dir.parent / "base", out)
    except GenomeError as exc:
        raise HubError(str(exc)) from exc
