"""Embed a continuum room in your own program (run: .venv/bin/python examples/embed_room.py).

Several personas answer a message on the embedded default model; the coordination
stream is printed as it happens, and each reply's metrics show the slot reuse.
"""

import anyio

from continuum import EmbeddedBackend, Room, default_model_path, load_personas
from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart
from continuum.events import ReplyPosted


async def main() -> None:
    personas = load_personas(["examples/personas"])
    backend = EmbeddedBackend(default_model_path())
    room = Room("kitchen", personas, backend)

    def show(event: object) -> None:
        if isinstance(event, ReplyPosted):
            m = event.metrics
            print(
                f"  [{event.persona_id}] reused {m.reused_tokens}/{m.prompt_tokens} tokens, "
                f"TTFT {m.ttft_ms:.0f} ms"
            )

    room.events.subscribe(show)
    for text in ["What should I cook tonight?", "Something with rice, please."]:
        envelope = Envelope(
            host="app",
            room_id="kitchen",
            author=Participant(id="u", name="Sam"),
            parts=(TextPart(text=text),),
            reply_to=ReplyTarget(host="app", channel="kitchen"),
        )
        print(f"Sam: {text}")
        for reply in await room.handle(envelope):
            print(f"{reply.persona_name}: {reply.message.text}\n")


if __name__ == "__main__":
    anyio.run(main)
