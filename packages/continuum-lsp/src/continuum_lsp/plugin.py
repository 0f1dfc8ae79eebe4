"""Registers the editor host through the ``continuum`` entry-point group."""

from __future__ import annotations

from collections.abc import Callable

from continuum import HostAdapter, hookimpl
from continuum_lsp.host import LspHost


@hookimpl
def register_hosts(register: Callable[[type[HostAdapter]], None]) -> None:
    register(LspHost)
