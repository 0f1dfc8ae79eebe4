"""``continuum genome``: list, add, remove, export and train a persona's LoRA adapters,
and list the training pairs its turns left.
Registered as a plugin through the entry-point group, like every other command."""

from __future__ import annotations

import argparse
import json
import os
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
    # an adapter may carry what people said (trained on their turns): owner-only
    weights, card = out / f"{record.id}.gguf", out / f"{record.id}.json"
    for path in (weights, card):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        path.chmod(0o600)
    shutil.copyfile(registry.dir / record.file, weights)
    card.write_text(json.dumps(registry.export(owner, args.id), indent=2))
    print(f"exported {record.id} to {out}")
    return 0


def _pair_log(args: argparse.Namespace):
    from continuum.genome.pairs import PairLog
    from continuum.memory.crypto import cipher_from_environment

    return PairLog(_registry(args).dir.parent, cipher=cipher_from_environment())


def _pairs(args: argparse.Namespace) -> int:
    log = _pair_log(args)
    personas = [args.persona] if args.persona else log.personas()
    shown = 0
    for persona_id in personas:
        for domain, count in log.domains(persona_id).items():
            scores = [p.score for p in log.pairs(persona_id, domain)]
            liked = sum(1 for s in scores if s > 0)
            disliked = sum(1 for s in scores if s < 0)
            print(f"{persona_id:<12} {domain:<20} {count:>5} pairs  +{liked} -{disliked}")
            shown += 1
    if not shown:
        print("no training pairs yet (set [learning] enabled = true in a persona file)")
    return 0


def _train(args: argparse.Namespace) -> int:
    from continuum.genome.pairs import load_pairs_jsonl
    from continuum.genome.train import train_adapter
    from continuum.genome.train_spec import TrainSpec

    if not args.persona:
        raise ContinuumError("name the persona: --persona ID")
    registry = _registry(args)
    pairs = (
        load_pairs_jsonl(args.pairs)
        if args.pairs
        else _pair_log(args).pairs(args.persona, args.domain)
    )
    spec = TrainSpec(
        rank=args.rank,
        alpha=2.0 * args.rank,
        learning_rate=args.lr,
        epochs=args.epochs,
        steps=args.steps,
        threads=args.threads,
    )
    print(f"training on {len(pairs)} pairs of {args.persona}/{args.domain} (a few minutes)")
    record, report = train_adapter(
        registry, args.persona, args.domain, pairs, args.id, spec, replace=args.replace
    )
    print(
        f"{record.id}: {report.train_pairs} pairs ({report.dropped_disliked} disliked left "
        f"out), {report.steps} steps in {report.train_s:.0f} s; held-out loss "
        f"{report.heldout_loss_before} -> {report.heldout_loss_after} "
        f"({report.heldout_pairs} pairs); registered for {args.persona}"
    )
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
    add("pairs", _pairs, "training pairs recorded from turns, per persona and domain")
    train = add("train", _train, "train a skill LoRA from a persona's turns (the train extra)")
    train.add_argument("--domain", default="general", help="which pairs (default: general)")
    train.add_argument("--id", help="the adapter id (default: <domain>-learned)")
    train.add_argument("--pairs", type=Path, help="train on this JSONL of pairs instead")
    train.add_argument("--rank", type=int, default=8)
    train.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    train.add_argument("--epochs", type=float, default=3.0)
    train.add_argument("--steps", type=int, help="optimizer steps (overrides --epochs)")
    train.add_argument("--threads", type=int, default=2)
    train.add_argument("--replace", action="store_true", help="retrain over an earlier one")
