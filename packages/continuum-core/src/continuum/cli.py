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
from continuum.persona_files import load_personas


def _personas_command(args: argparse.Namespace) -> int:
    if args.action == "state":
        return _state_command(args)
    if not args.paths:
        raise ContinuumError(f"personas {args.action} needs persona files or directories")
    personas = load_personas(args.paths)
    if args.action == "validate":
        for persona in personas:
            print(f"ok  {persona.id:<16} {persona.name}")
    else:
        print(json.dumps([p.model_dump(mode="json") for p in personas], indent=2))
    return 0


def _state_command(args: argparse.Namespace) -> int:
    """Energy, mood, inbox and reputation of every persona with saved state."""
    import time

    from continuum.cognition.state import PersonaStateStore
    from continuum.memory.engine import default_data_dir

    directory = (args.data_dir or default_data_dir()) / "state"
    if not directory.is_dir():
        print(f"no persona state yet in {directory}", file=sys.stderr)
        return 0
    store = PersonaStateStore(directory)
    now = time.time()
    rows = []
    for path in sorted(directory.glob("*.json")):
        state = store.load(path.stem)
        state.rest_until(now)  # what it feels like now, after the rest since it last worked
        rep = state.reputation
        top = sorted(rep.proficiency.items(), key=lambda kv: -kv[1])[:3]
        rows.append(
            {
                "persona": state.persona_id,
                "energy": round(state.energy, 3),
                "mood": state.mood_label,
                "inbox": len(state.inbox),
                "contributions": rep.contributions,
                "successful": rep.successful,
                "trust": round(rep.trust, 3),
                "proficiency": dict(top),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"{'persona':<12} {'energy':>6} {'mood':<12} {'inbox':>5} {'turns':>5} {'liked':>5} trust"
    )
    for r in rows:
        print(
            f"{r['persona']:<12} {r['energy']:>6.0%} {r['mood']:<12} {r['inbox']:>5} "
            f"{r['contributions']:>5} {r['successful']:>5} {r['trust']:.2f}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from continuum.plugins import plugin_manager

    parser = argparse.ArgumentParser(prog="continuum", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log metrics and events")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "personas",
        help="validate or show persona files and character cards; state: energy, mood, trust",
    )
    p.add_argument("action", choices=["validate", "show", "state"])
    p.add_argument("paths", nargs="*", type=Path)
    p.add_argument("--data-dir", type=Path, help="state: the data dir (default: $CONTINUUM_DATA)")
    p.add_argument("--json", action="store_true", help="state: print JSON")
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
