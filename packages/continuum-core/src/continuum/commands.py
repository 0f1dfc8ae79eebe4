"""Commands people run from any host (a Slack slash command, an LSP command, a console
``/command``): the same verbs everywhere, answered by the runtime.

    personas            the personas in this room
    who                 who is in this room
    state [persona]     energy, mood, inbox and trust
    invite <persona>    bring a persona into this room
    remove <persona>    take a persona out of this room
    forget              forget everything the personas remember about you
    link                start linking this identity with another host (gives a code)
    link <code>         finish the link from the other host
    help                this list
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Sequence
from typing import Protocol

from continuum.genome.pairs import PairLog
from continuum.genome.registry import GenomeRegistry
from continuum.hosts.base import CommandEvent, CommandResult
from continuum.memory.engine import MemoryEngine
from continuum.people import IdentityError, PeopleDirectory, host_key
from continuum.persona import Persona
from continuum.router import RoomRouter


class CommandRuntime(Protocol):
    """What the commands need of the runtime."""

    router: RoomRouter
    people: PeopleDirectory
    memory: MemoryEngine | None
    personas: Sequence[Persona]
    pairs: PairLog | None
    genome: GenomeRegistry | None


LINK_TTL_S = 600.0
HELP = __doc__.split("\n\n", 1)[1].strip()


class CommandRouter:
    def __init__(self, runtime: CommandRuntime) -> None:
        self.runtime = runtime
        self._links: dict[str, tuple[str, str, str, float]] = {}  # code -> person, name, host id

    async def run(self, event: CommandEvent, raw_user_id: str | None = None) -> CommandResult:
        name = event.name.strip().lower().lstrip("/")
        handler = getattr(self, f"_cmd_{name}", None)
        if handler is None:
            return CommandResult(text=f"Unknown command {event.name!r}.\n{HELP}", ok=False)
        return await handler(event, raw_user_id or event.author.id)

    def _room(self, event: CommandEvent):
        return self.runtime.router.room(RoomRouter.key(event.host, event.room_id))

    async def _cmd_help(self, event: CommandEvent, raw: str) -> CommandResult:
        return CommandResult(text=HELP)

    async def _cmd_personas(self, event: CommandEvent, raw: str) -> CommandResult:
        room = self._room(event)
        lines = [
            f"{p.name} ({p.id}){': ' + p.specialty if p.specialty else ''}"
            for p in room.personas.values()
        ]
        return CommandResult(
            text="\n".join(lines) or "No personas in this room.",
            data={"personas": [p.id for p in room.personas.values()]},
        )

    async def _cmd_who(self, event: CommandEvent, raw: str) -> CommandResult:
        room = self._room(event)
        people = sorted({p.name for p in room.participants.values() if p.id not in room.personas})
        personas = sorted(p.name for p in room.personas.values())
        return CommandResult(
            text=f"Personas: {', '.join(personas) or 'none'}\nPeople: {', '.join(people) or 'none'}"
        )

    async def _cmd_state(self, event: CommandEvent, raw: str) -> CommandResult:
        room = self._room(event)
        wanted = [a.lower() for a in event.args]
        rows, data = [], {}
        now = time.time()
        for persona in room.personas.values():
            if wanted and persona.id not in wanted and persona.name.lower() not in wanted:
                continue
            state = room.state(persona.id)
            state.rest_until(now)
            rep = state.reputation
            rows.append(
                f"{persona.name}: energy {state.energy:.0%}, {state.mood_label}, "
                f"inbox {len(state.inbox)}, {rep.contributions} replies, trust {rep.trust:.2f}"
            )
            data[persona.id] = {
                "energy": state.energy,
                "mood": state.mood_label,
                "trust": rep.trust,
                "contributions": rep.contributions,
            }
        if not rows:
            return CommandResult(text=f"No persona {' '.join(event.args)!r} here.", ok=False)
        return CommandResult(text="\n".join(rows), data=data)

    def _persona_arg(self, event: CommandEvent) -> str | None:
        if not event.args:
            return None
        wanted = event.args[0].lower()
        for persona in self.runtime.personas:
            if wanted in (persona.id, persona.name.lower()):
                return persona.id
        return None

    async def _cmd_invite(self, event: CommandEvent, raw: str) -> CommandResult:
        persona_id = self._persona_arg(event)
        if persona_id is None:
            return CommandResult(text="Invite whom? Name a persona.", ok=False)
        self.runtime.router.set_member(RoomRouter.key(event.host, event.room_id), persona_id, True)
        return CommandResult(text=f"{persona_id} joined this room.")

    async def _cmd_remove(self, event: CommandEvent, raw: str) -> CommandResult:
        persona_id = self._persona_arg(event)
        if persona_id is None:
            return CommandResult(text="Remove whom? Name a persona.", ok=False)
        self.runtime.router.set_member(RoomRouter.key(event.host, event.room_id), persona_id, False)
        return CommandResult(text=f"{persona_id} left this room.")

    async def _cmd_forget(self, event: CommandEvent, raw: str) -> CommandResult:
        memory = self.runtime.memory
        if memory is None:
            return CommandResult(text="Memory is off; there is nothing to forget.")
        # the person, and every host id linked to them: what they said before a link is
        # stored under the host id it came from
        forgotten = pairs = 0
        adapters: list = []
        identities = self.runtime.people.identities(event.author.id)
        for room in list(self.runtime.router.rooms.values()):
            room.forget_author(identities)
        for who in identities:
            forgotten += memory.forget_person(who)
            self.runtime.router.messages.forget_author(who)
            pairs += self.runtime.pairs.forget_person(who) if self.runtime.pairs else 0
            adapters += self.runtime.genome.forget_person(who) if self.runtime.genome else []
        text = f"Forgotten: {forgotten} memories about you."
        if pairs or adapters:
            text += (
                f" Also {pairs} training examples with your words"
                + (f", and {len(adapters)} adapters trained on them" if adapters else "")
                + "."
            )
        return CommandResult(
            text=text,
            data={
                "forgotten": forgotten,
                "training_pairs": pairs,
                "adapters": [f"{a.owner}/{a.id}" for a in adapters],
            },
        )

    async def _cmd_link(self, event: CommandEvent, raw: str) -> CommandResult:
        """Two-sided: the code is made by one authenticated identity and redeemed by
        another, so nobody can claim someone else's memories by name."""
        people = self.runtime.people
        me_host = host_key(event.host, raw)
        now = time.time()
        self._links = {c: v for c, v in self._links.items() if v[3] > now}
        if not event.args:
            code = f"{secrets.token_hex(3)}-{secrets.token_hex(3)}"
            self._links[code] = (event.author.id, event.author.name, me_host, now + LINK_TTL_S)
            return CommandResult(
                text=f"Run `link {code}` from your other account within 10 minutes.",
                data={"code": code},
            )
        code = event.args[0].strip().lower()
        pending = self._links.pop(code, None)
        if pending is None:
            return CommandResult(text="That link code is unknown or expired.", ok=False)
        person_id, name, their_host, _ = pending
        if their_host == me_host:
            return CommandResult(text="Run it from your other account.", ok=False)
        if ":" in person_id:  # not linked yet: make a person for the first identity
            person_id = _slug(name, people)
        try:
            people.link(person_id, name, their_host, me_host)
        except IdentityError as exc:
            return CommandResult(text=str(exc), ok=False)
        return CommandResult(
            text=f"Linked: {their_host} and {me_host} are one person ({person_id}).",
            data={"person": person_id},
        )


def _slug(name: str, people: object) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:40] or "person"
    candidate, n = base, 1
    while people.get(candidate) is not None:  # type: ignore[attr-defined]
        n += 1
        candidate = f"{base}-{n}"
    return candidate
