"""``continuum livekit token ROOM NAME``: a token for a person to join a room the personas
are in, from any LiveKit client (LiveKit Meet, the Agents Playground, your app)."""

from __future__ import annotations

import argparse
import datetime
import os
import re
import urllib.parse
from pathlib import Path

from continuum.config import DEFAULT_CONFIG, load_config, parse_config
from continuum.errors import ConfigError, ContinuumError
from continuum_livekit.config import LiveKitConfig
from continuum_livekit.tokens import mint_token


def _configs(path: Path) -> tuple[LiveKitConfig, set[str]]:
    """``[hosts.livekit]`` from the config file (the defaults when there is none) and the
    identities continuum's own participants take: the listener's and every persona id."""
    from continuum.runtime import load_runtime_personas

    config = load_config(path) if path.exists() else parse_config({})
    try:
        livekit = LiveKitConfig.model_validate(config.hosts.get("livekit", {}))
    except ValueError as exc:
        raise ConfigError(path, "hosts.livekit", str(exc)) from exc
    ours = {livekit.listener_identity} | {p.id for p in load_runtime_personas(config)}
    return livekit, ours


def _token(args: argparse.Namespace) -> int:
    config, ours = _configs(args.config)
    key, secret = config.credentials()
    identity = args.identity or re.sub(r"[^a-z0-9_-]+", "-", args.name.lower()).strip("-")
    identity = identity or "guest"
    if identity in ours:  # LiveKit would disconnect one of the two participants
        raise ContinuumError(
            f"identity {identity!r} is taken by continuum's own participant in the room; "
            "choose another with --identity"
        )
    token = mint_token(
        key,
        secret,
        args.room,
        identity,
        name=args.name,
        ttl=datetime.timedelta(hours=args.hours),
    )
    print(token)
    try:
        url = config.server_url()
    except ConfigError:
        return 0
    query = urllib.parse.urlencode({"liveKitUrl": url, "token": token})
    print(f"\njoin from LiveKit Meet: https://meet.livekit.io/custom?{query}", flush=True)
    print(f"server: {url}  room: {args.room}  identity: {identity}", flush=True)
    return 0


def add_livekit_command(subcommands: argparse._SubParsersAction) -> None:
    default = Path(os.environ.get("CONTINUUM_CONFIG", DEFAULT_CONFIG))
    p = subcommands.add_parser("livekit", help="LiveKit rooms: mint a token to join one")
    sub = p.add_subparsers(dest="livekit_action", required=True)
    t = sub.add_parser(
        "token",
        help="a token for a person to join ROOM (prints it, and a LiveKit Meet link)",
        description=(
            "Mint an access token with the API key and secret [hosts.livekit] names "
            "(LIVEKIT_API_KEY / LIVEKIT_API_SECRET by default) for a person to join ROOM "
            "from a LiveKit client."
        ),
    )
    t.add_argument("room", help="the room the personas are in (a [hosts.livekit] rooms entry)")
    t.add_argument("name", help="the person's display name")
    t.add_argument("--identity", help="their participant identity (default: from the name)")
    t.add_argument("--hours", type=float, default=6.0, help="how long it is valid (default 6)")
    t.add_argument("--config", type=Path, default=default, help="continuum.toml to read")
    t.set_defaults(func=_token)
