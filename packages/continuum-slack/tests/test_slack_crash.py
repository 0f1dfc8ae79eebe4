"""`continuum serve` with Slack, killed with SIGKILL mid-reply twice, then restarted: the
message is answered once more and completely, every stream a crash left open is stopped,
an explicit "remember" is one journal entry, and the persona's inbox holds the message
once (hardening, second pass: item 7). The far side is the local Slack peer; it stalls on
what a cut reply sends after its start, so each kill lands mid-stream on any machine and
for any reply the model samples, and a server a failed run leaves behind is killed, never
waited on."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import anyio
import pytest
from slack_peer import BOT_TOKEN, SECRET, event_payload, post_event

pytestmark = [pytest.mark.anyio, pytest.mark.model]

PERSONA = """id = "maya"
name = "Maya"
identity = "A performance engineer who explains caches at length."
specialty = "performance"
"""


def config(tmp_path: Path, peer_url: str, port: int) -> Path:
    (tmp_path / "personas").mkdir(exist_ok=True)
    (tmp_path / "personas" / "maya.toml").write_text(PERSONA)
    path = tmp_path / "continuum.toml"
    path.write_text(
        f"[memory]\ndata_dir = {str(tmp_path / 'data')!r}\n"
        f"[personas]\npaths = [{str(tmp_path / 'personas')!r}]\n"
        "[backend]\nthreads = 2\n"
        "[policy]\ncognition = 'direct'\nreply_max_tokens = 400\n"
        f"[hosts.slack]\napi_url = {peer_url + '/api/'!r}\nhost = '127.0.0.1'\nport = {port}\n"
        "post_interval_s = 0.0\n"
    )
    return path


async def wait_for(check, timeout: float = 120.0) -> None:
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.05)


async def test_sigkill_mid_reply_twice_then_restart(tmp_path, peer):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = config(tmp_path, peer.url, port)
    env = {**os.environ, "SLACK_BOT_TOKEN": BOT_TOKEN, "SLACK_SIGNING_SECRET": SECRET}
    cmd = [sys.executable, "-m", "continuum", "--verbose", "serve", "--config", str(path)]
    text = "Maya, please remember that my locker code is 4417. And tell me all about caches."
    event = {"type": "message", "channel": "C1", "channel_type": "channel", "user": "U1",
             "text": text, "ts": "1700000000.000001"}  # fmt: skip
    url = f"http://127.0.0.1:{port}/slack/events"

    def streaming(n: int) -> bool:
        """The n-th reply (1-based) has started and sent more (an append or, for a short
        reply, its stop): Slack holds that call, so the reply is mid-stream."""
        starts = peer.of("chat.startStream")
        if len(starts) < n:
            return False
        ts = starts[n - 1].result["ts"]
        more = peer.of("chat.appendStream") + peer.of("chat.stopStream")
        return any(c.args.get("ts") == ts for c in more)

    def finished(n: int) -> bool:
        starts = peer.of("chat.startStream")
        stopped = {c.args["ts"] for c in peer.of("chat.stopStream")}
        return len(starts) >= n and {c.result["ts"] for c in starts} <= stopped

    # Slack stalls on what a cut reply sends after its start (an append, or the stop of a
    # reply the model kept short), so each kill lands mid-stream however long the sampled
    # reply is; the third run gets a prompt far side
    stall = asyncio.Event()
    peer.hold.update({"chat.appendStream": stall, "chat.stopStream": stall})
    peer.hold_if["chat.stopStream"] = lambda args: "interrupted" not in str(args)  # a restart's
    for run in (1, 2, 3):
        if run == 3:
            stall.set()
        # the server's output goes to a file: a pipe nobody reads fills and stalls it
        log = tmp_path / f"serve-{run}.log"
        with log.open("wb") as out:
            proc = await anyio.open_process(cmd, env=env, stdout=out, stderr=out)
        try:
            await wait_for(lambda: listening(port))
            if run == 1:
                assert await post_event(url, event_payload(event)) == 200
            if run < 3:  # killed mid-stream: started, appended to, never stopped
                await wait_for(lambda n=run: streaming(n))
                proc.send_signal(signal.SIGKILL)
            else:  # the restart answers it once more, to the end
                await wait_for(lambda: finished(3), timeout=180)
                proc.send_signal(signal.SIGTERM)
            with anyio.fail_after(60):
                await proc.wait()
        except BaseException as exc:
            exc.add_note(f"run {run}; the server said:\n{log.read_text(errors='replace')[-4000:]}")
            raise
        finally:
            if proc.returncode is None:  # never leave a server behind a failed test
                proc.kill()
                with anyio.CancelScope(shield=True):
                    await proc.wait()
    started = [c.result["ts"] for c in peer.of("chat.startStream")]
    stopped = [c.args["ts"] for c in peer.of("chat.stopStream")]
    assert len(started) == 3  # one reply per run: two cut by the kills, one whole
    assert set(started) <= set(stopped)  # none left open on Slack
    interrupted = [c for c in peer.of("chat.stopStream") if "interrupted" in str(c.args)]
    assert {c.args["ts"] for c in interrupted} == set(started[:2])
    journal = tmp_path / "data" / "personas" / "maya" / "journal"
    notes = [
        p for p in journal.rglob("*.md")
        if ".history" not in p.parts
        and "4417" in p.read_text() and "asked me to remember" in p.read_text()
    ]  # fmt: skip
    assert len(notes) == 1, notes
    state = json.loads((tmp_path / "data" / "state" / "maya.json").read_text())
    assert state["inbox"]["items"] == []


def listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
