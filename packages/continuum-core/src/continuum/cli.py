"""``continuum``: the command line. Sub-commands come from plugins (the console host adds
``room``); ``personas`` validates and shows persona files and character cards."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from continuum.errors import ContinuumError
from continuum.persona import load_personas


def _personas_command(args: argparse.Namespace) -> int:
    personas = load_personas(args.paths)
    if args.action == "validate":
        for persona in personas:
            print(f"ok  {persona.id:<16} {persona.name}")
    else:
        print(json.dumps([p.model_dump(mode="json") for p in personas], indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from continuum.plugins import plugin_manager

    parser = argparse.ArgumentParser(prog="continuum", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log metrics and events")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("personas", help="validate or show persona files and character cards")
    p.add_argument("action", choices=["validate", "show"])
    p.add_argument("paths", nargs="+", type=Path)
    p.set_defaults(func=_personas_command)
    plugin_manager().hook.register_commands(subcommands=sub)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        code = args.func(args)
    except ContinuumError as exc:
        print(f"continuum: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)
