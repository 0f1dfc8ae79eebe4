"""Background work gives the model back: a keep-warm prefill or a memory consolidation
that holds the embedded model stops at its next batch when a turn starts waiting, and
leaves its slot consistent (what it evaluated is reused when it runs again). Token counts
and outcomes only: the same on every CPU."""

from __future__ import annotations

import anyio
import pytest

from continuum.backends.base import CompletionRequest, GenerationSettings, Priority, SlotKey
from continuum.errors import BackendPreempted

pytestmark = [pytest.mark.anyio, pytest.mark.model]


def prompt(words: int) -> str:
    body = " ".join(f"note{i % 97}" for i in range(words))
    return f"<|im_start|>system\n{body}<|im_end|>\n<|im_start|>assistant\n"


async def test_a_turn_takes_the_model_from_a_background_pass(backend):
    key = SlotKey(persona_id="preempt-bg", room="preempt")
    long = CompletionRequest(
        prompt=prompt(640), slot=key, priority=Priority.BACKGROUND,
        settings=GenerationSettings(max_tokens=1, temperature=0.0),
    )  # fmt: skip
    turn = CompletionRequest(
        prompt=prompt(8), priority=Priority.RENDER,
        settings=GenerationSettings(max_tokens=2, temperature=0.0),
    )  # fmt: skip
    total = backend.count_tokens(long.prompt)
    before = backend.scheduler.preempted
    outcome: dict[str, object] = {}

    async def background() -> None:
        try:
            outcome["bg"] = await backend.complete(long)
        except BackendPreempted as exc:
            outcome["bg"] = exc

    async with anyio.create_task_group() as tg:
        tg.start_soon(background)
        with anyio.fail_after(30):
            while backend.slot_tokens(key) == 0:  # its first batches are in
                await anyio.sleep(0.01)
        done = await backend.complete(turn)
    assert isinstance(outcome["bg"], BackendPreempted), outcome["bg"]
    assert backend.scheduler.preempted == before + 1
    assert done.finish_reason in ("stop", "length") and done.metrics.generated_tokens >= 1
    kept = backend.slot_tokens(key)
    assert 0 < kept < total  # stopped part way, at a batch boundary
    again = await backend.complete(long)  # run again: what it evaluated is reused
    assert again.metrics.reused_tokens >= kept - 1 and again.finish_reason != "cancelled"


async def test_a_turn_runs_to_its_end_whatever_waits(backend):
    """Only background work yields: a render is never stopped by another render."""
    a = CompletionRequest(prompt=prompt(400), priority=Priority.RENDER,
                          settings=GenerationSettings(max_tokens=2, temperature=0.0))  # fmt: skip
    b = CompletionRequest(prompt=prompt(8), priority=Priority.ANALYSIS,
                          settings=GenerationSettings(max_tokens=1, temperature=0.0))  # fmt: skip
    results = []
    async with anyio.create_task_group() as tg:

        async def run(r: CompletionRequest) -> None:
            results.append(await backend.complete(r))

        tg.start_soon(run, a)
        await anyio.sleep(0.05)
        tg.start_soon(run, b)
    assert len(results) == 2 and all(r.finish_reason != "cancelled" for r in results)
