from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from discord_peer import TOKEN, DiscordPeer

from continuum.persona import Persona
from continuum.testing import HostProbe, ScriptedBackend, serve_host

MAYA = Persona(
    id="maya",
    name="Maya",
    identity="A performance engineer.",
    specialty="performance",
    expertise=("latency", "cache", "profiling"),
    avatar_url="https://example.com/maya.png",
)
JUNO = Persona(
    id="juno",
    name="Juno",
    identity="A security reviewer.",
    specialty="security",
    expertise=("security", "password", "attack"),
    avatar_url="https://example.com/juno.png",
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def discord_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_BOT_TOKEN", TOKEN)


@pytest.fixture
async def peer() -> AsyncIterator[DiscordPeer]:
    p = await DiscordPeer().start()
    yield p
    await p.stop()


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path,
    peer: DiscordPeer,
    backend: ScriptedBackend | None = None,
    personas: tuple[Persona, ...] = (MAYA, JUNO),
    policy: dict | None = None,
    config: dict | None = None,
    hosts: dict | None = None,
    **discord: object,
) -> AsyncIterator[tuple[HostProbe, object]]:
    """The Discord host in a live runtime against the local peer, through
    continuum.testing.serve_host (discord.py unpatched, pointed at the peer)."""
    async with serve_host(
        "discord",
        {**peer.settings, **discord},
        data_dir=tmp_path / "data",
        personas=personas,
        backend=backend or ScriptedBackend(lambda req: "Profile before you optimise."),
        policy={"cognition": "direct", **(policy or {})},
        config=config,
        host_classes=hosts,  # the Discord host is the installed plugin
    ) as probe:
        with anyio.fail_after(15):
            await probe.host.ready.wait()
        yield probe, probe.host
