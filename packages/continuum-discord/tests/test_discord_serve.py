"""`continuum serve` with [hosts.discord], as a user runs it: a refused token or a missing
one is one line and a non-zero exit; with the real embedded model, a mention in a channel
is answered through the persona's webhook, and SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import anyio
import pytest
from discord_peer import BOT_ID, SAM, TOKEN, until

pytestmark = pytest.mark.anyio
ROOT = Path(__file__).resolve().parents[3]


def config(tmp_path: Path, peer, **discord: object) -> Path:
    lines = [
        f"[memory]\ndata_dir = {str(tmp_path / 'data')!r}\n",
        f"[personas]\npaths = [{str(ROOT / 'examples' / 'personas')!r}]\nonly = ['maya']\n",
        "[policy]\nreply_max_tokens = 24\n",
        "[hosts.discord]",
    ]
    settings = {**peer.settings, **discord}
    lines += [f"{k} = {v!r}" for k, v in settings.items()]
    path = tmp_path / "continuum.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def environ(**env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DISCORD_")}
    return {**base, **env}


async def serve(path: Path, **env: str) -> tuple[int, str, str]:
    with anyio.fail_after(180):
        done = await anyio.run_process(
            [sys.executable, "-m", "continuum", "serve", "--config", str(path)],
            env=environ(**env),
            check=False,
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


async def test_a_refused_token_is_one_line_and_a_failure(tmp_path, peer):
    rc, out, err = await serve(config(tmp_path, peer), DISCORD_BOT_TOKEN="not-the-token")
    assert rc != 0 and "stopped cleanly" not in out
    assert "Discord refused the bot token" in one_line(err)


async def test_a_missing_token_names_the_variable(tmp_path, peer):
    rc, _, err = await serve(config(tmp_path, peer))
    assert rc != 0 and "DISCORD_BOT_TOKEN is not set" in one_line(err)


@pytest.mark.model
async def test_serve_answers_a_mention_with_the_real_model(tmp_path, peer):
    process = await anyio.open_process(
        [sys.executable, "-m", "continuum", "serve", "--config", str(config(tmp_path, peer))],
        env=environ(DISCORD_BOT_TOKEN=TOKEN),
    )
    try:
        await until(lambda: peer.identified.is_set(), timeout=120)
        await until(lambda: peer.commands.get("100"), timeout=30)
        await peer.say(SAM, f"<@{BOT_ID}> Maya, how do I find a slow query?", mentions=(BOT_ID,))
        [post] = await until(peer.executions, timeout=120)
        assert post.body["username"] == "Maya" and post.body["content"].strip()
        process.send_signal(signal.SIGTERM)
        with anyio.fail_after(60):
            rc = await process.wait()
        assert rc == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
