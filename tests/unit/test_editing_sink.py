"""The core's editing sink: post at the first words, edits paced by the host's rate and
the platform's rate-limit answers, rollover at the length limit, a final edit that is
exactly the reply (continuum.hosts.editing)."""

from __future__ import annotations

import itertools
import time

import anyio
import pytest

from continuum.hosts.editing import EditingSink, RateLimited

pytestmark = pytest.mark.anyio


class Platform(EditingSink):
    """A far side that keeps what each message shows and answers every 4th edit with a
    429 (retry after 80 ms)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        self.messages: dict[str, str] = {}
        self.order: list[str] = []
        self.calls: list[tuple[float, str, str]] = []  # (time, op, id)
        self.edits = 0
        self.limited_until = 0.0

    async def post(self, text: str) -> str:
        host_id = f"m{len(self.order) + 1}"
        self.messages[host_id] = text
        self.order.append(host_id)
        self.calls.append((time.monotonic(), "post", host_id))
        return host_id

    async def edit(self, message_id: str, text: str) -> None:
        now = time.monotonic()
        assert now >= self.limited_until - 0.005, "edited inside a rate-limit window"
        self.edits += 1
        if self.edits % 4 == 0:
            self.limited_until = now + 0.08
            raise RateLimited(0.08)
        self.messages[message_id] = text
        self.calls.append((now, "edit", message_id))


async def stream(sink: EditingSink, text: str, delay: float = 0.002) -> None:
    for word in text.split(" "):
        await sink.write(word + " ")
        await anyio.sleep(delay)
    await sink.finish()


async def test_edits_are_paced_and_the_final_text_is_exactly_the_reply():
    sink = Platform(edit_every_s=0.05)
    reported: list[str] = []
    sink.watch_posts(reported.append)
    reply = " ".join(f"word{i}" for i in range(150))
    await stream(sink, reply)
    assert sink.order == ["m1"] and reported == ["m1"]
    assert sink.messages["m1"] == reply  # the last edit is the whole reply
    edits = [t for t, op, _ in sink.calls if op == "edit"]
    assert len(edits) >= 3
    gaps = [b - a for a, b in itertools.pairwise(edits)]
    assert min(gaps) >= 0.045  # at most one edit per edit_every_s


async def test_a_long_reply_rolls_over_and_each_message_is_whole():
    sink = Platform(edit_every_s=0.01, max_chars=200)
    code = "\n".join(f"    x{i} = {i}" for i in range(40))
    reply = "Here:\n```python\n" + code + "\n```\nDone. @everyone"
    reported: list[str] = []
    sink.watch_posts(reported.append)
    await stream(sink, reply, delay=0.0)
    assert len(sink.order) >= 3 and reported == sink.order
    shown = [sink.messages[i] for i in sink.order]
    assert all(len(m) <= 200 for m in shown)
    assert all(sum(ln.startswith("```") for ln in m.splitlines()) % 2 == 0 for m in shown)
    assert all(f"    x{i} = {i}" in "\n".join(shown) for i in range(40))
    assert "@everyone" not in shown[-1] and shown[-1].endswith("Done. @\u2060everyone")


async def test_a_reply_that_never_edits_posts_once_and_abort_says_why():
    sink = Platform(edit_every_s=10)
    await sink.write("Short answer.")
    await sink.finish()
    assert sink.messages == {"m1": "Short answer."}
    other = Platform(edit_every_s=0.0)
    await other.write("Half a tho")
    await other.abort("cancelled")
    assert other.messages["m1"] == "Half a tho … (cancelled)"
