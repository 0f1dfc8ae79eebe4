"""continuum-hub (also: continuum hub) - browse, preview, pull, publish, list and remove
voice and skill LoRAs, and GGUF models, on the Hugging Face Hub.

Every pull pins a commit, refuses pickle weights and file names that leave their folder,
asks before a licence outside the allow-list, verifies the Hub's checksums, checks an
adapter against your base model, and installs atomically (an interrupted download
resumes on the next pull). Adapters go into the genome: a persona's with --persona, else
the shared library. Models go under the data dir, for
  [backend] model = "hub:OWNER/NAME/FILE.gguf@REV"   in continuum.toml.

The Hub: [plugins.hub] endpoint, else $HF_ENDPOINT. A token (publish, private repos):
$HF_TOKEN. HF_HUB_OFFLINE=1: only what was pulled before, nothing downloaded."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from continuum.errors import ContinuumError

EXAMPLES = """examples:
  continuum-hub browse --kind voice                  voices for the model you run
  continuum-hub preview alice/warm-alto --sample a.wav   hear it first (nothing installed)
  continuum-hub pull alice/warm-alto --persona maya  pinned, checked, installed for Maya
  continuum-hub pull bartowski/Qwen2.5-1.5B-Instruct-GGUF --kind model --file X.gguf
  continuum-hub publish --persona maya --adapter perf --repo me/maya-perf --license mit
  continuum-hub list                                 what was pulled, from where
"""


def _context(args: argparse.Namespace):
    from continuum_hub.context import HubContext

    return HubContext.load(args.config, args.data_dir, args.model, args.voice_model)


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB"


def _browse(args: argparse.Namespace) -> int:
    from continuum_hub.remote import browse

    ctx = _context(args)
    bases: tuple[str, ...] = tuple(args.base or ())
    if not bases and args.kind != "model":
        mine = ctx.voice_model if args.kind == "voice" else ctx.base_model
        found = ctx.settings.hub_id_of(mine)
        bases = (found,) if found else ()
    rows = browse(ctx.settings, args.kind, bases, args.search, args.limit, args.page)
    if not rows:
        where = f" for {', '.join(bases)}" if bases else ""
        print(f"nothing on page {args.page}{where} (try --search, another --base, or --page 1)")
        return 0
    print(f"{'repo':<40} {'kind':<6} {'base':<36} {'licence':<12} {'downloads':>9} size")
    for r in rows:
        print(
            f"{r.repo_id:<40} {r.kind:<6} {r.base[:36]:<36} {r.license[:12]:<12} "
            f"{r.downloads:>9} {_size(r.size)}"
        )
    if len(rows) == args.limit:
        print(f"(more: --page {args.page + 1})")
    return 0


def _preview(args: argparse.Namespace) -> int:
    from continuum_hub.preview import preview

    ctx = _context(args)
    shown = preview(args.repo, ctx.settings, sample=args.sample)
    v = shown.view
    print(f"{v.repo_id} @ {v.sha}")
    print(f"  kind     {v.kind}")
    print(f"  base     {', '.join(v.base_models) or '(none named)'}")
    print(f"  licence  {v.license or '(none named)'}")
    print(f"  author   {v.author}")
    print("  files")
    for f in v.files:
        print(f"    {f.path:<48} {_size(f.size):>10}  {(f.sha256 or f.git_oid)[:16]}")
    print()
    print(shown.card_text)
    if shown.sample is not None:
        print(f"\nsample: {shown.sample}")
    return 0


def _pull(args: argparse.Namespace) -> int:
    from continuum_hub.pull import kind_of, pull

    ctx = _context(args)
    result = pull(
        args.repo,
        ctx.data_dir,
        ctx.settings,
        kind=kind_of(args.kind),
        file=args.file,
        persona=args.persona,
        adapter_id=args.id,
        accept_license=args.accept_license,
        base_model=ctx.base_model,
        voice_model=ctx.voice_model,
        progress=not args.quiet,
    )
    r = result.record
    if result.view is None:
        print(f"{r.ref} is already installed as {r.installed_as}")
        return 0
    resumed = f", resumed after {_size(result.resumed_from)}" if result.resumed_from else ""
    print(
        f"pulled {r.ref} ({r.file}, {_size(r.size)}, sha256 {r.sha256[:16]}…, "
        f"{r.license or 'no licence named'}) in {result.seconds:.1f} s{resumed}"
    )
    if r.kind == "model":
        path = ctx.data_dir / r.installed_as
        print(f"installed at {path}")
        print(f'use it: [backend] model = "hub:{r.repo}/{r.file}@{r.revision}"')
    else:
        print(f"installed as {r.installed_as} in the genome ({r.kind})")
    return 0


def _publish(args: argparse.Namespace) -> int:
    from continuum_hub.publish import publish

    ctx = _context(args)
    released = tuple(p.strip() for p in (args.released_by or "").split(",") if p.strip())
    done = publish(
        ctx.data_dir,
        args.adapter,
        args.repo,
        ctx.settings,
        persona=args.persona,
        private=args.private,
        license=args.license,
        released_by=released,
        base_model=ctx.base_model,
        voice_model=ctx.voice_model,
        description=args.description or "",
    )
    print(f"published {args.adapter} to {done.repo_id} @ {done.commit[:12]}: {done.url}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from continuum_hub.store import PulledStore

    ctx = _context(args)
    records = PulledStore(ctx.data_dir).records()
    if not records:
        print("nothing pulled yet (continuum-hub browse, then continuum-hub pull OWNER/NAME)")
        return 0
    print(f"{'installed as':<28} {'kind':<6} {'from':<52} {'licence':<12} size")
    for r in records:
        print(
            f"{r.installed_as[:28]:<28} {r.kind:<6} {r.ref + ' ' + r.file:<52} "
            f"{r.license[:12]:<12} {_size(r.size)}"
        )
    return 0


def _remove(args: argparse.Namespace) -> int:
    from continuum_hub.pull import remove

    ctx = _context(args)
    for r in remove(ctx.data_dir, args.what, base_model=ctx.base_model):
        print(f"removed {r.installed_as} ({r.ref})")
    return 0


def add_commands(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="continuum.toml (default: ./continuum.toml)")
    parser.add_argument("--data-dir", type=Path, help="default: [memory] data_dir, $CONTINUUM_DATA")
    parser.add_argument("--model", type=Path, help="the base GGUF adapters are checked against")
    parser.add_argument(
        "--voice-model",
        type=Path,
        help="the codec voice's backbone (default: $CONTINUUM_CODEC_TTS_BACKBONE)",
    )
    sub = parser.add_subparsers(dest="hub_command", required=True, metavar="COMMAND")

    p = sub.add_parser("browse", help="adapters for your models, and GGUF models, on the Hub")
    p.add_argument("--kind", choices=["voice", "skill", "model"])
    p.add_argument("--base", action="append", help="a base model's Hub id (default: yours)")
    p.add_argument("--search", help="text in the repo name")
    p.add_argument("--limit", type=int, default=20, help="rows per page (default 20)")
    p.add_argument("--page", type=int, default=1)
    p.set_defaults(func=_browse)

    p = sub.add_parser("preview", help="card, base, licence, files; a voice's sample line")
    p.add_argument("repo", metavar="OWNER/NAME[@REV]")
    p.add_argument("--sample", type=Path, help="a voice: write a sample line to this .wav")
    p.set_defaults(func=_preview)

    p = sub.add_parser("pull", help="download (resumable), check and install")
    p.add_argument("repo", metavar="OWNER/NAME[@REV]")
    p.add_argument("--kind", choices=["voice", "skill", "model"], help="default: from its tags")
    p.add_argument("--file", help="which weights file, where the repo has several")
    p.add_argument("--persona", help="install for this persona (default: the shared library)")
    p.add_argument("--id", help="the adapter's id in the genome (default: the repo's name)")
    p.add_argument(
        "--accept-license",
        metavar="LICENSE",
        help="install under this licence, outside the allow-list (read it first)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_pull)

    p = sub.add_parser("publish", help="upload a persona's adapter with its card")
    p.add_argument("--persona", help="whose adapter (default: the shared library)")
    p.add_argument("--adapter", required=True, help="the adapter's id (continuum genome list)")
    p.add_argument("--repo", required=True, metavar="OWNER/NAME")
    p.add_argument("--private", action="store_true")
    p.add_argument("--license", help="default: the licence the adapter records")
    p.add_argument("--description", help="a paragraph for the card")
    p.add_argument(
        "--released-by",
        metavar="PEOPLE",
        help="comma-separated: the people whose words trained it, who agreed to its release",
    )
    p.set_defaults(func=_publish)

    p = sub.add_parser("list", help="what was pulled, from which repo and commit")
    p.set_defaults(func=_list)

    p = sub.add_parser("remove", help="remove what was pulled from a repo")
    p.add_argument("what", metavar="OWNER/NAME|OWNER/ID", help="a repo, or an installed owner/id")
    p.set_defaults(func=_remove)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="continuum-hub",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_commands(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s", stream=sys.stderr)
    try:
        code = args.func(args)
    except ContinuumError as exc:
        print(f"continuum-hub: {exc}", file=sys.stderr)
        code = 2
    except KeyboardInterrupt:
        print("continuum-hub: interrupted; pull again to resume the download", file=sys.stderr)
        code = 130
    sys.exit(code)
