"""``continuum genome``: list, add, remove and export a persona's LoRA adapters.
Registered as a plugin through the entry-point group, like every other command."""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from continuum.errors import ContinuumError
from continuum.hookspecs import hookimpl

if TYPE_CHECKING:
    from continuum.genome.registry import GenomeRegistry


def _registry(args: argparse.Namespace) -> GenomeRegistry:
    from continuum.genome.registry import GenomeRegistry
    from continuum.memory.engine import default_data_dir
    from continuum.models import default_model_path

    root = args.data_dir or default_data_dir()
    if root.exists() and not root.is_dir():
        raise ContinuumError(f"--data-dir {root} is not a directory")
    model = args.model or default_model_path()
    return GenomeRegistry(root, base_model=model)


def _owner(args: argparse.Namespace) -> str:
    from continuum.genome.registry import SHARED

    if bool(args.persona) == bool(args.shared):
        raise ContinuumError("name one owner: --persona ID or --shared")
    return SHARED if args.shared else args.persona


def _list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    records = registry.records(args.persona)
    for r in records:
        print(
            f"{r.owner:<12} {r.id:<20} {r.kind:<6} rank {r.rank:<3} alpha {r.alpha:<5g} "
            f"{r.size / 1e6:6.2f} MB  {','.join(r.targets)}  {r.license or '(no license)'}"
        )
    if not records:
        print("no adapters yet (continuum genome add --persona ID --id NAME FILE.gguf)")
    return 0


def _add(args: argparse.Namespace) -> int:
    record = _registry(args).add(
        _owner(args), args.id, args.file, kind=args.kind, license=args.license or ""
    )
    print(f"added {record.id} to {record.owner}: rank {record.rank}, {record.size} bytes")
    return 0


def _remove(args: argparse.Namespace) -> int:
    if not _registry(args).remove(_owner(args), args.id):
        raise ContinuumError(f"{_owner(args)} has no adapter {args.id!r}")
    print(f"removed {args.id}")
    return 0


def _export(args: argparse.Namespace) -> int:
    """The adapter file and its record (provenance, license, base model) into a folder."""
    registry = _registry(args)
    owner = _owner(args)
    record = registry.get(owner, args.id)
    if record is None:
        raise ContinuumError(f"{owner} has no adapter {args.id!r}")
    out: Path = args.output
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(registry.dir / record.file, out / f"{record.id}.gguf")
    (out / f"{record.id}.json").write_text(json.dumps(registry.export(owner, args.id), indent=2))
    print(f"exported {record.id} to {out}")
    return 0


@hookimpl
def register_commands(subcommands: argparse._SubParsersAction) -> None:
    genome = subcommands.add_parser("genome", help="a persona's LoRA adapters (skills, voice)")
    genome.add_argument("--data-dir", type=Path, help="default: $CONTINUUM_DATA or XDG data")
    genome.add_argument("--model", type=Path, help="the base GGUF (default: the embedded model)")
    sub = genome.add_subparsers(dest="genome_command", required=True)

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("--persona", help="the persona that owns it")
        p.set_defaults(func=func, shared=False)
        return p

    add("list", _list, "list adapters (all, or one persona's)")
    for name, func, help in (
        ("add", _add, "register a GGUF LoRA (checked against the base model)"),
        ("remove", _remove, "remove an adapter"),
        ("export", _export, "copy an adapter and its record into a folder"),
    ):
        p = add(name, func, help)
        p.add_argument("--shared", action="store_true", help="the shared library")
        p.add_argument("--id", required=True, help="the adapter's id (letters, digits, -_.)")
        if name == "add":
            p.add_argument("file", type=Path, help="a GGUF LoRA adapter")
            p.add_argument("--kind", choices=["skill", "voice"], default="skill")
            p.add_argument("--license", help="its license (recorded)")
        if name == "export":
            p.add_argument("-o", "--output", type=Path, required=True, help="a folder")
