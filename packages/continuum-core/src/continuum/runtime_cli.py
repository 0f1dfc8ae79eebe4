"""``continuum serve``, ``continuum init`` and ``continuum people``: the runtime's commands.
Registered as a plugin through the entry-point group, like every other command."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import anyio

from continuum.config import DEFAULT_CONFIG, STARTER_CONFIG, load_config
from continuum.errors import ContinuumError
from continuum.hookspecs import hookimpl


def _serve(args: argparse.Namespace) -> int:
    from continuum.runtime import Runtime

    config = load_config(args.config)

    if not any(table.get("enabled", True) for table in config.hosts.values()):
        raise ContinuumError(
            f"{args.config}: no hosts to serve: add a [hosts.console], [hosts.slack] or "
            "[hosts.discord] table (continuum init writes a commented example)"
        )

    async def main() -> None:
        runtime = Runtime(config)
        async with runtime:
            hosts = ", ".join(runtime.hosts)
            print(f"continuum: serving {len(runtime.personas)} personas on {hosts}", flush=True)
            await runtime.serve()
        print("continuum: stopped cleanly", flush=True)

    anyio.run(main)
    return 0


def _init(args: argparse.Namespace) -> int:
    path: Path = args.config
    if not path.parent.is_dir():
        raise ContinuumError(f"--config {path}: no such directory {path.parent}")
    if path.exists() and not args.force:
        raise ContinuumError(f"{path} exists; use --force to overwrite it")
    path.write_text(STARTER_CONFIG)
    print(f"wrote {path}; edit it, then run: continuum serve --config {path}")
    return 0


def _people(args: argparse.Namespace) -> int:
    from continuum.data_lock import exclusive_data_dir
    from continuum.memory.engine import default_data_dir
    from continuum.people import PeopleDirectory

    if args.config.exists():
        config = load_config(args.config)
        root = config.relative(config.memory.data_dir) if config.memory.data_dir else None
    else:
        root = None
    root = args.data_dir or root or default_data_dir()
    if root.exists() and not root.is_dir():
        raise ContinuumError(f"--data-dir {root} is not a directory")
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    if args.action == "list":
        for person in PeopleDirectory(root / "people.json").people():
            print(f"{person.id:<16} {person.name:<20} {', '.join(person.host_ids)}")
        return 0
    with exclusive_data_dir(root, f"people {args.action}"):
        people = PeopleDirectory(root / "people.json")
        if args.action == "link":
            if not args.host_ids:
                raise ContinuumError("people link PERSON HOST:ID [HOST:ID ...] (e.g. slack:U123)")
            person = people.link(args.person, args.name or args.person, *args.host_ids)
            print(f"{person.id} ({person.name}): {', '.join(person.host_ids)}")
        else:
            for host_id in [args.person, *args.host_ids]:
                owner = people.unlink(host_id)
                print(f"{host_id}: " + (f"unlinked from {owner}" if owner else "was not linked"))
    return 0


@hookimpl
def register_commands(subcommands: argparse._SubParsersAction) -> None:
    default = Path(os.environ.get("CONTINUUM_CONFIG", DEFAULT_CONFIG))
    p = subcommands.add_parser("serve", help="run every configured host in one process")
    p.add_argument("--config", type=Path, default=default, help="continuum.toml to read")
    p.set_defaults(func=_serve)
    p = subcommands.add_parser("init", help="write a commented starter continuum.toml")
    p.add_argument("--config", type=Path, default=Path(DEFAULT_CONFIG), help="where to write it")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=_init)
    p = subcommands.add_parser(
        "people", help="link one person's identities across hosts (memory follows them)"
    )
    p.add_argument("action", choices=["list", "link", "unlink"])
    p.add_argument("person", nargs="?", help="link: person id; unlink: a HOST:ID")
    p.add_argument("host_ids", nargs="*", metavar="HOST:ID", help="e.g. slack:U123 discord:42")
    p.add_argument("--name", help="link: the person's display name")
    p.add_argument("--config", type=Path, default=default, help="continuum.toml (data dir)")
    p.add_argument("--data-dir", type=Path, help="the data dir (overrides the config)")
    p.set_defaults(func=_people)
