"""PEFT LoRA → GGUF LoRA with llama.cpp's own ``convert_lora_to_gguf.py``.

The converter (with its ``conversion/`` package and the matching ``gguf-py``) ships in the
llama-cpp-python sdist, vendored under ``vendor/llama.cpp/``. It is taken from, in order:
``$CONTINUUM_LLAMA_CPP`` (a llama.cpp checkout), the cache
``~/.cache/continuum/llama-cpp-convert/<version>/``, or the sdist of the installed
llama-cpp-python version, fetched once from the package index with pip and cached.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from importlib import metadata
from pathlib import Path

from continuum.genome.pager import GenomeError

CONVERTER = "convert_lora_to_gguf.py"
# what the LoRA converter imports, relative to the llama.cpp root
MEMBERS = ("convert_lora_to_gguf.py", "convert_hf_to_gguf.py", "conversion/", "gguf-py/", "LICENSE")
DEFAULT_VERSION = "0.3.36"


def _version() -> str:
    try:
        return metadata.version("llama-cpp-python")
    except metadata.PackageNotFoundError:
        return DEFAULT_VERSION


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "continuum" / "llama-cpp-convert"


def _extract(sdist: Path, into: Path) -> None:
    with tarfile.open(sdist) as tar:
        wanted = []
        for member in tar.getmembers():
            parts = member.name.split("/")
            # <name>-<version>/vendor/llama.cpp/<path>
            if len(parts) < 4 or parts[1:3] != ["vendor", "llama.cpp"]:
                continue
            rel = "/".join(parts[3:])
            if not any(rel == m or (m.endswith("/") and rel.startswith(m)) for m in MEMBERS):
                continue
            if not (member.isfile() or member.isdir()):
                continue  # no links out of the archive
            member = member.replace(name=rel)  # type: ignore[attr-defined]
            wanted.append(member)
        tar.extractall(into, members=wanted, filter="data")


def converter_dir(fetch: bool = True) -> Path:
    """A directory holding ``convert_lora_to_gguf.py`` and what it imports."""
    if env := os.environ.get("CONTINUUM_LLAMA_CPP"):
        found = Path(env).expanduser()
        if not (found / CONVERTER).is_file():
            raise GenomeError(f"CONTINUUM_LLAMA_CPP={env} has no {CONVERTER}")
        return found
    version = _version()
    cached = cache_root() / version
    if (cached / CONVERTER).is_file():
        return cached
    if not fetch:
        raise GenomeError(f"llama.cpp's {CONVERTER} is not cached at {cached}")
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [
                sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                "--no-binary", ":all:", f"llama-cpp-python=={version}", "-d", tmp,
            ],
            capture_output=True,
            text=True,
        )  # fmt: skip
        sdists = list(Path(tmp).glob("llama_cpp_python-*.tar.gz"))
        if done.returncode != 0 or not sdists:
            raise GenomeError(
                f"could not fetch the llama-cpp-python {version} sdist for {CONVERTER} "
                f"({done.stderr.strip()[-300:]}). Offline, point CONTINUUM_LLAMA_CPP at a "
                "llama.cpp checkout of the same version."
            )
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=_mkdir(cache_root())))
        try:
            _extract(sdists[0], staging)
            if not (staging / CONVERTER).is_file():
                raise GenomeError(f"{sdists[0].name} holds no vendor/llama.cpp/{CONVERTER}")
            try:
                staging.replace(cached)
            except OSError:  # another process cached it first
                if not (cached / CONVERTER).is_file():
                    raise
                shutil.rmtree(staging, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    return cached


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def peft_to_gguf(peft_dir: Path, base_config_dir: Path, out: Path, outtype: str = "f32") -> Path:
    """Convert a PEFT adapter (adapter_config.json + adapter_model.safetensors) for the
    base whose ``config.json`` is in ``base_config_dir``. Needs torch (the train extra)."""
    script = converter_dir() / CONVERTER
    done = subprocess.run(
        [
            sys.executable, str(script), "--base", str(base_config_dir),
            "--outfile", str(out), "--outtype", outtype, str(peft_dir),
        ],
        capture_output=True,
        text=True,
    )  # fmt: skip
    if done.returncode != 0 or not out.is_file():
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise GenomeError(f"{CONVERTER} failed for {peft_dir}: " + " | ".join(tail))
    return out
