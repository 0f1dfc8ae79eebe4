"""A Slack host that cannot run says why in one line and `continuum serve` exits
non-zero (a service manager must see a failure): a refused bot token, a port in use,
Socket Mode without its app token or with a refused one, and a config with no hosts."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import anyio
import pytest
from slack_peer import APP_TOKEN, BOT_TOKEN, SECRET

pytestmark = pytest.mark.anyio


def config(tmp_path: Path, peer_url: str, **slack: object) -> Path:
    lines = [f"[memory]\ndata_dir = {str(tmp_path / 'data')!r}\n", "[hosts.slack]"]
    lines.append(f"api_url = {peer_url + '/api/'!r}\nhost = '127.0.0.1'")
    lines += [f"{k} = {v!r}" for k, v in slack.items()]
    if "port" not in slack:
        lines.append("port = 0")
    path = tmp_path / "continuum.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def serve(path: Path, **env: str) -> tuple[int, str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SLACK_")}
    environ.update(env)
    with anyio.fail_after(180):
        done = await anyio.run_process(
            [sys.executable, "-m", "continuum", "serve", "--config", str(path)],
            env=environ,
            check=False,
        )
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


GOOD = {"SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SECRET}


async def test_a_refused_bot_token_is_one_line_and_a_failure(tmp_path, peer):
    rc, out, err = await serve(config(tmp_path, peer.url), **{**GOOD, "SLACK_BOT_TOKEN": "xoxb-x"})
    assert rc != 0 and "stopped cleanly" not in out
    assert "refused the bot token (invalid_auth)" in one_line(err)


async def test_a_port_in_use_is_one_line_and_a_failure(tmp_path, peer):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc, out, err = await serve(config(tmp_path, peer.url, port=port), **GOOD)
    assert rc != 0 and "stopped cleanly" not in out
    assert f"cannot listen on 127.0.0.1:{port}" in one_line(err)


async def test_socket_mode_without_its_app_token(tmp_path, peer):
    rc, _, err = await serve(config(tmp_path, peer.url, mode="socket"), **GOOD)
    assert rc != 0 and "SLACK_APP_TOKEN is not set" in one_line(err)


async def test_socket_mode_with_a_refused_app_token_stops_at_once(tmp_path, peer):
    env = {**GOOD, "SLACK_APP_TOKEN": "xapp-wrong"}
    rc, _, err = await serve(config(tmp_path, peer.url, mode="socket"), **env)
    assert rc != 0 and "refused the app token (invalid_auth)" in one_line(err)
    opens = [c for c in peer.of("apps.connections.open") if c.token != APP_TOKEN]
    assert len(opens) == 1  # asked once, not retried forever


async def test_a_config_with_no_hosts_is_refused(tmp_path):
    path = tmp_path / "continuum.toml"
    path.write_text(f"[memory]\ndata_dir = {str(tmp_path)!r}\n")
    rc, _, err = await serve(path)
    assert rc == 2 and "no hosts to serve" in one_line(err)
