"""What may be installed: weights only as safetensors or GGUF (never pickle, which runs
code when loaded), file names that stay inside their folder, sizes under the limits,
licences on the allow-list or accepted by the user."""

from __future__ import annotations

import re

from continuum_hub.errors import LicenseNotAccepted, UnsafeFile

SAFE_WEIGHTS = (".gguf", ".safetensors")
# formats that unpickle (run code) when a framework loads them
PICKLED = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".joblib", ".h5", ".msgpack")
_BAD_CHARS = re.compile(r"[\x00-\x1f\\:]")


def check_name(name: str) -> str:
    """A repo file name as a safe relative path, or :class:`UnsafeFile`."""
    if not name or _BAD_CHARS.search(name) or name.startswith("/"):
        raise UnsafeFile(f"refused file name {name!r}: not a plain relative path")
    if any(p in ("", ".", "..") for p in name.split("/")):
        raise UnsafeFile(f"refused file name {name!r}: it would leave its folder")
    return name


def is_weights(name: str) -> bool:
    return name.lower().endswith(SAFE_WEIGHTS + PICKLED)


def check_weights_format(name: str) -> str:
    lower = name.lower()
    if lower.endswith(PICKLED):
        raise UnsafeFile(
            f"{name}: pickle weights can run code when loaded; continuum installs only "
            "safetensors or GGUF"
        )
    if not lower.endswith(SAFE_WEIGHTS):
        raise UnsafeFile(f"{name}: not safetensors or GGUF")
    return name


def check_size(name: str, size: int, limit_mb: int) -> None:
    if size > limit_mb << 20:
        raise UnsafeFile(
            f"{name} is {size / 2**20:.0f} MB, over the {limit_mb} MB limit "
            "([plugins.hub] max_adapter_mb / max_model_mb)"
        )


def check_license(license: str, allowed: tuple[str, ...], accepted: str | None) -> None:
    """An allowed licence passes; another one only when the user accepted exactly it."""
    lic = (license or "").strip().lower()
    if lic and lic in {a.lower() for a in allowed}:
        return
    if accepted is not None and accepted.strip().lower() == (lic or "unknown"):
        return
    shown = lic or "unknown (the card names none)"
    raise LicenseNotAccepted(
        f"licence {shown} is not on the allow-list ({', '.join(allowed)}); read it on the "
        f"repo's card, then pull again with --accept-license {lic or 'unknown'}"
    )
