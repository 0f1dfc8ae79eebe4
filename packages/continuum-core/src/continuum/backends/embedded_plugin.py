"""Registers the embedded llama.cpp backend as a plugin (like any external backend)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from continuum.hookspecs import BackendFactory, hookimpl


def create_embedded_backend(model: str | Path | None = None, **config: Any):  # noqa: ANN201
    from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig
    from continuum.models import default_model_path

    return EmbeddedBackend(model or default_model_path(), EmbeddedConfig(**config))


@hookimpl
def register_backends(register: Callable[[str, BackendFactory], None]) -> None:
    register("embedded", create_embedded_backend)
