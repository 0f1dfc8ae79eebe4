"""The plugin hooks (pluggy). Host packages implement these and register themselves under
the ``continuum`` entry-point group; the built-in console host and embedded backend are
registered the same way."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from continuum.backends.base import Backend
    from continuum.config import ContinuumConfig
    from continuum.hosts.base import HostAdapter
    from continuum.voice.tts import TTSEngine
    from continuum.voice.turn_detect import TurnDetector

hookspec = pluggy.HookspecMarker("continuum")
hookimpl = pluggy.HookimplMarker("continuum")

BackendFactory = Callable[..., "Backend"]
TTSFactory = Callable[[], "TTSEngine"]
TurnDetectorFactory = Callable[[], "TurnDetector"]
# a model named "<scheme>:<spec>" in [backend] model (``hub:OWNER/NAME/FILE.gguf@REV``):
# (the spec after the scheme, the whole config) -> a local GGUF path
ModelSource = Callable[[str, "ContinuumConfig"], "Path"]


@hookspec
def register_hosts(register: Callable[[type[HostAdapter]], None]) -> None:
    """Register HostAdapter classes (Slack, Discord, LSP, LiveKit, console, ...)."""


@hookspec
def register_backends(register: Callable[[str, BackendFactory], None]) -> None:
    """Register backend factories by name (``embedded``, ``llama-server``, ...)."""


@hookspec
def register_commands(subcommands: argparse._SubParsersAction) -> None:
    """Add ``continuum <command>`` sub-commands; set ``func`` with ``set_defaults``."""


@hookspec
def register_tts(register: Callable[[str, TTSFactory], None]) -> None:
    """Register text-to-speech engines by name (``espeak-ng``, ``piper``, ...); a persona's
    ``[voice] engine`` picks one."""


@hookspec
def register_turn_detectors(register: Callable[[str, TurnDetectorFactory], None]) -> None:
    """Register end-of-turn detectors by name (``smart-turn``, ``transcript``, ...); the
    ``[voice] turn_detector`` setting picks one."""


@hookspec
def register_model_sources(register: Callable[[str, ModelSource], None]) -> None:
    """Register where ``[backend] model = "<scheme>:<spec>"`` comes from (``hub``: a GGUF on
    the Hugging Face Hub, pulled with its checksums checked); the source returns the local
    file the backend loads."""
