from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from slack_peer import APP_TOKEN, BOT_TOKEN, SECRET, SlackPeer

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
def slack_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SECRET)
    monkeypatch.setenv("SLACK_APP_TOKEN", APP_TOKEN)


@pytest.fixture
async def peer() -> AsyncIterator[SlackPeer]:
    p = await SlackPeer().start()
    yield p
    await p.stop()


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path,
    peer: SlackPeer,
    backend: ScriptedBackend | None = None,
    personas: tuple[Persona, ...] = (MAYA,),
    policy: dict | None = None,
    **slack: object,
) -> AsyncIterator[tuple[HostProbe, object]]:
    """The Slack host in a live runtime against the local peer (HTTP mode unless told),
    through continuum.testing.serve_host: the tests see a probe, never the runtime."""
    settings = {
        "api_url": f"{peer.url}/api/",
        "host": "127.0.0.1",
        "port": 0,
        "post_interval_s": 0.0,
        "update_interval_s": 0.0,
        **slack,
    }
    async with serve_host(
        "slack",
        settings,
        data_dir=tmp_path / "data",
        personas=personas,
        backend=backend or ScriptedBackend(lambda req: "Profile before you optimise."),
        policy={"cognition": "direct", **(policy or {})},
    ) as probe:
        with anyio.fail_after(10):
            await probe.host.ready.wait()
        yield probe, probe.host


async def until(check: Callable[[], object], timeout: float = 10.0) -> None:
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.02)
