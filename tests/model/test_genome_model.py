"""The genome on the real embedded model: LoRA adapters per request, KV never reused across
adapter sets (greedy output under each adapter equals a cold slot's, byte for byte, while
the base turns stay warm), and a room's renders running with the persona's specialty."""

from __future__ import annotations

import pytest

from continuum.backends.base import AdapterUse, CompletionRequest, GenerationSettings, SlotKey
from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig
from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart
from continuum.events import ReplyPosted
from continuum.persona import AdapterRef, Persona
from continuum.room import Room, RoomPolicy
from tests.conftest import THREADS
from tests.server.lora_fixture import make_lora

pytestmark = [pytest.mark.anyio, pytest.mark.model]

SYSTEM = (
    "You are Maya, a performance engineer who spent ten years making trading systems fast. "
    "You answer in one short sentence, with one concrete step the person can take today. "
) * 3
PROMPT = (
    f"<|im_start|>system\n{SYSTEM}<|im_end|>\n"
    "<|im_start|>user\nSam: Our API got slow after we added a cache. Where do I start?"
    "<|im_end|>\n<|im_start|>assistant\n"
)
GREEDY = GenerationSettings(max_tokens=16, temperature=0.0, repeat_penalty=1.0)


def request(*uses: AdapterUse) -> CompletionRequest:
    ids = tuple(sorted(u.id for u in uses))
    return CompletionRequest(
        prompt=PROMPT,
        slot=SlotKey(persona_id="maya", adapters=ids, room="r"),
        adapters=uses,
        settings=GREEDY,
    )


def backend(model_path) -> EmbeddedBackend:
    return EmbeddedBackend(
        model_path, EmbeddedConfig(live_slots=4, slot_ctx=1024, n_threads=THREADS)
    )


async def test_kv_under_one_adapter_set_is_never_reused_under_another(model_path, tmp_path):
    l1 = AdapterUse(id="skill-a", path=str(make_lora(tmp_path / "a.gguf", seed=7)))
    l2 = AdapterUse(id="skill-b", path=str(make_lora(tmp_path / "b.gguf", seed=11)))
    warm = backend(model_path)
    base1 = await warm.complete(request())
    a1 = await warm.complete(request(l1))
    a2 = await warm.complete(request(l2))
    both = await warm.complete(request(l1, l2))
    base2 = await warm.complete(request())
    a1_again = await warm.complete(request(l1))
    n = base1.metrics.prompt_tokens
    # base turns stay warm and say the same thing
    assert base2.metrics.reused_tokens >= n - 1 and base2.text == base1.text
    # an adapter set never starts from KV computed under another set (no sharing either)
    assert a1.metrics.reused_tokens == a2.metrics.reused_tokens == both.metrics.reused_tokens == 0
    assert a1_again.metrics.reused_tokens >= n - 1 and a1_again.text == a1.text
    assert a1.metrics.adapters == ("skill-a",) and both.metrics.adapters == ("skill-a", "skill-b")
    # the adapters really change the output
    assert len({base1.text, a1.text, a2.text, both.text}) == 4
    warm.close()
    # each equals a cold slot on a fresh context, byte for byte
    for uses, expected in (((l1,), a1.text), ((l2,), a2.text), ((l1, l2), both.text)):
        cold = backend(model_path)
        c = await cold.complete(request(*uses))
        assert c.text == expected, uses
        cold.close()


async def test_a_room_renders_each_persona_with_its_specialty_adapter(model_path, tmp_path):
    skill = make_lora(tmp_path / "perf.gguf", seed=3)
    maya = Persona(
        id="maya",
        name="Maya",
        identity="A performance engineer.",
        adapters=(
            AdapterRef(id="perf", path=str(skill)),
            AdapterRef(id="voice", kind="voice", path=str(skill)),
        ),
    )
    otto = Persona(id="otto", name="Otto", identity="An archivist.")
    b = backend(model_path)
    room = Room("r", [maya, otto], b, policy=RoomPolicy(cognition="direct", reply_max_tokens=8))
    await room.handle(
        Envelope(
            host="t",
            room_id="r",
            author=Participant(id="sam", name="Sam"),
            parts=(TextPart(text="How do I profile a slow cache?"),),
            reply_to=ReplyTarget(host="t", channel="r"),
        )
    )
    posted = {e.persona_id: e.metrics for e in room.events.of_type(ReplyPosted)}
    assert posted["maya"].adapters == ("perf",)  # the skill, not the voice adapter
    assert posted["otto"].adapters == ()
    assert b.adapters.resident() == ["perf"]
    b.close()
