"""``continuum-lsp``: the language server an editor starts (stdio).

It attaches to the ``continuum serve`` that owns the data dir when one runs (the same
personas, memory and model as every other host) and runs its own runtime otherwise.
Only the protocol reaches stdout: anything else that would print there (a library, a
stray ``print``) goes to stderr, where editors show server logs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import anyio

from continuum.config import ContinuumConfig, load_config
from continuum.errors import ContinuumError


def _protocol_stdout() -> object:
    """The real stdout for the protocol; fd 1 and sys.stdout now point at stderr."""
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def _config(path: str | None) -> ContinuumConfig:
    chosen = path or os.environ.get("CONTINUUM_CONFIG")
    if chosen:
        return load_config(chosen)
    here = Path("continuum.toml")
    return load_config(here) if here.is_file() else ContinuumConfig()


def main(argv: list[str] | None = None, backend: object = None) -> int:
    """The server; ``backend`` replaces the configured model (tests use a scripted one)."""
    parser = argparse.ArgumentParser(
        prog="continuum-lsp",
        description="continuum's personas as a language server (stdio). Attaches to a "
        "running `continuum serve` on the same data dir, else runs its own runtime.",
    )
    parser.add_argument(
        "--config", help="continuum.toml (default: $CONTINUUM_CONFIG, ./continuum.toml)"
    )
    parser.add_argument("--stdio", action="store_true", help="talk LSP over stdio (the default)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="continuum-lsp %(levelname)s %(message)s",
    )
    try:
        config = _config(args.config)
    except ContinuumError as exc:
        print(f"continuum-lsp: {exc}", file=sys.stderr)
        return 2
    out = _protocol_stdout()

    from continuum.host_process import run_host
    from continuum_lsp.host import LspHost

    settings = dict(config.hosts.get("lsp", {}))
    settings.pop("enabled", None)  # false there keeps `continuum serve` from running it
    LspHost.stdin, LspHost.stdout = sys.stdin.buffer, out  # type: ignore[assignment]

    async def serve() -> None:
        hosts: list[LspHost] = []
        async with anyio.create_task_group() as tg:

            def ready(host: object, attached: bool) -> None:
                hosts.append(host)  # type: ignore[arg-type]
                how = "attached to the running runtime" if attached else "with its own runtime"
                logging.getLogger("continuum.lsp").info("continuum-lsp %s", how)

            async def until_done() -> None:
                while not hosts:
                    await anyio.sleep(0.05)
                await hosts[0].done.wait()
                tg.cancel_scope.cancel()  # the editor is gone: shut the runtime down cleanly

            tg.start_soon(until_done)
            await run_host(LspHost, settings, config=config, backend=backend, ready=ready)

    try:
        anyio.run(serve)
    except ContinuumError as exc:
        print(f"continuum-lsp: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
