"""Registers the LiveKit host and ``continuum livekit`` through the ``continuum``
entry-point group."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from continuum import HostAdapter, hookimpl
from continuum_livekit.cli import add_livekit_command
from continuum_livekit.host import LiveKitHost


@hookimpl
def register_hosts(register: Callable[[type[HostAdapter]], None]) -> None:
    register(LiveKitHost)


@hookimpl
def register_commands(subcommands: argparse._SubParsersAction) -> None:
    add_livekit_command(subcommands)
