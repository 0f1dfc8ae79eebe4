"""Registers ``continuum hub …`` and the ``hub:`` model source through the ``continuum``
entry-point group."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from continuum import hookimpl
from continuum.hookspecs import ModelSource

if TYPE_CHECKING:
    from continuum.config import ContinuumConfig


def hub_model(spec: str, config: ContinuumConfig) -> Path:
    """``[backend] model = "hub:OWNER/NAME/FILE.gguf@REV"``: pulled once (checked), then
    served from the data dir; offline, what was pulled before."""
    from continuum_hub.context import HubContext
    from continuum_hub.pull import resolve_model

    ctx = HubContext.from_config(config)
    return resolve_model(spec, ctx.data_dir, ctx.settings)


@hookimpl
def register_model_sources(register: Callable[[str, ModelSource], None]) -> None:
    register("hub", hub_model)


@hookimpl
def register_commands(subcommands: argparse._SubParsersAction) -> None:
    from continuum_hub.cli import __doc__ as doc
    from continuum_hub.cli import add_commands

    p = subcommands.add_parser(
        "hub",
        help="voice and skill LoRAs, and models, on the Hugging Face Hub",
        description=doc,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_commands(p)
