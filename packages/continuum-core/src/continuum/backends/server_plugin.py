"""Registers the OpenAI-compatible / llama-server backend as a plugin."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from continuum.hookspecs import BackendFactory, hookimpl

if TYPE_CHECKING:
    from continuum.backends.server import ServerBackend


def create_server_backend(
    model: str | None = None, urls: Sequence[str] | str | None = None, **config: Any
) -> ServerBackend:
    """``urls``: one or more base URLs (default: $CONTINUUM_SERVER_URLS, comma-separated,
    else http://127.0.0.1:8080). Other keyword arguments are ServerConfig fields."""
    from continuum.backends.server import ServerBackend, ServerConfig

    if not urls:
        urls = os.environ.get("CONTINUUM_SERVER_URLS", "http://127.0.0.1:8080").split(",")
    fields = {k: v for k, v in config.items() if k in ServerConfig.model_fields}
    if model:
        fields["model"] = model
    return ServerBackend(urls, ServerConfig(**fields))


@hookimpl
def register_backends(register: Callable[[str, BackendFactory], None]) -> None:
    register("server", create_server_backend)
