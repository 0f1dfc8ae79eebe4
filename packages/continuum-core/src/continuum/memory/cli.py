"""``continuum memory``: list, search, show, forget, export, rebuild, encrypt, keygen.
Registered as a plugin through the entry-point group, like every other command."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from continuum.errors import ContinuumError
from continuum.hookspecs import hookimpl
from continuum.memory.journal import UnknownEntry


def _engine(args: argparse.Namespace):
    from continuum.memory.engine import MemoryEngine
    from continuum.memory.journal import check_persona_id

    if getattr(args, "persona", None) is not None:
        check_persona_id(args.persona)  # before any directory is made from it
    return MemoryEngine(args.data_dir)


def _writing(args: argparse.Namespace, what: str):
    """The data dir held for a command that changes memory (refused while serving)."""
    from continuum.data_lock import exclusive_data_dir
    from continuum.memory.engine import default_data_dir

    return exclusive_data_dir(Path(args.data_dir or default_data_dir()), what)


def _report(broken: list[str]) -> None:
    for problem in broken:
        print(f"continuum: skipped {problem}", file=sys.stderr)


def _list(args: argparse.Namespace) -> int:
    engine = _engine(args)
    broken: list[str] = []
    for entry in engine.entries(args.persona, broken):
        first = entry.text.strip().splitlines()[0][:70] if entry.text.strip() else ""
        print(f"{entry.id}  {entry.timestamp:%Y-%m-%d %H:%M}  s={entry.salience:.2f}  {first}")
    _report(broken)
    return 1 if broken else 0


def _date(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError as exc:
        raise ContinuumError(
            f"{flag} {value!r}: use a date like 2026-11-30 or 2026-11-30T09:00"
        ) from exc


def _search(args: argparse.Namespace) -> int:
    from continuum.memory.index import RecallFilters

    engine = _engine(args)
    filters = RecallFilters(
        partner=args.partner,
        topic=args.topic,
        emotion=args.emotion,
        since=_date(args.since, "--since"),
        until=_date(args.until, "--until"),
    )
    for r in engine.recall(args.persona, " ".join(args.query), k=args.k, filters=filters):
        print(f"{r.entry_id}  score={r.score:.3f}  {r.render()}")
    return 0


def _show(args: argparse.Namespace) -> int:
    from continuum.memory.journal import entry_to_markdown

    engine = _engine(args)
    entry = engine.journal(args.persona).get(args.entry_id)
    sys.stdout.write(entry_to_markdown(entry))
    if args.versions:
        print(f"\n{len(engine.journal(args.persona).versions(args.entry_id))} version(s) kept")
    return 0


def _forget(args: argparse.Namespace) -> int:
    with _writing(args, "memory forget"):
        engine = _engine(args)
        existed = engine.forget(args.persona, args.entry_id, purge_history=not args.keep_history)
    if not existed:
        raise UnknownEntry(f"{args.persona} has no journal entry {args.entry_id}")
    print("forgot " + args.entry_id)
    return 0


def _export(args: argparse.Namespace) -> int:
    engine = _engine(args)
    broken: list[str] = []
    data = {
        "persona": args.persona,
        "entries": [e.model_dump(mode="json") for e in engine.entries(args.persona, broken)],
        "profile": engine.profile(args.persona).export(),
    }
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if args.output:
        out = Path(args.output)
        if not out.parent.is_dir():
            raise ContinuumError(f"-o {out}: no such directory {out.parent}")
        try:  # an export holds memories in plain text: owner-only, like the data dir
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            raise ContinuumError(f"-o {out}: {exc.strerror}") from exc
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text + "\n")
    else:
        print(text)
    _report(broken)
    return 0


def _rebuild(args: argparse.Namespace) -> int:
    with _writing(args, "memory rebuild"):
        report = _engine(args).rebuild()
    print(f"indexed {report.added} entries; {len(report.broken)} broken")
    for problem in report.broken:
        print(f"  {problem}")
    return 0 if not report.broken else 1


def _encrypt(args: argparse.Namespace) -> int:
    """Encrypt a plaintext memory in place (the key from CONTINUUM_MEMORY_KEY)."""
    from continuum.memory.migrate import encrypt_in_place

    with _writing(args, "memory encrypt"):
        report = encrypt_in_place(args.data_dir)
    print(f"encrypted {report.files} files; removed the plaintext index")
    return 0


def _keygen(args: argparse.Namespace) -> int:
    from continuum.memory.crypto import ENV_KEY, Cipher

    print(f"export {ENV_KEY}={Cipher.generate_key()}")
    return 0


@hookimpl
def register_commands(subcommands: argparse._SubParsersAction) -> None:
    memory = subcommands.add_parser("memory", help="list, search, show, forget, export memories")
    memory.add_argument("--data-dir", type=Path, help="default: $CONTINUUM_DATA or XDG data")
    sub = memory.add_subparsers(dest="memory_command", required=True)

    def add(
        name: str, func: Callable[[argparse.Namespace], int], help: str, persona: bool = True
    ) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        if persona:
            p.add_argument("--persona", required=True)
        p.set_defaults(func=func)
        return p

    add("list", _list, "list a persona's journal entries")
    p = add("search", _search, "hybrid recall (BM25 + embeddings + filters + recency)")
    p.add_argument("query", nargs="+")
    p.add_argument("-k", type=int, default=5)
    for name in ("partner", "topic", "emotion", "since", "until"):
        p.add_argument(f"--{name}")
    p = add("show", _show, "print one entry as Markdown")
    p.add_argument("entry_id")
    p.add_argument("--versions", action="store_true", help="also count kept versions")
    p = add("forget", _forget, "remove an entry from files, index and history")
    p.add_argument("entry_id")
    p.add_argument("--keep-history", action="store_true", help="keep old versions")
    p = add("export", _export, "export entries and profile as JSON")
    p.add_argument("-o", "--output")
    add("rebuild", _rebuild, "rebuild the index from the journal files", persona=False)
    add("encrypt", _encrypt, "encrypt a plaintext memory in place (crash-safe)", persona=False)
    add("keygen", _keygen, "print a new key for encryption at rest", persona=False)
