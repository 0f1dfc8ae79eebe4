"""The host seam: a HostAdapter turns host events into envelopes and posts persona replies
as the persona (its name, avatar, voice). The core never imports a host library."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from continuum.backends.base import Backend
from continuum.cognition.state import PersonaStateStore
from continuum.envelope import Envelope, PersonaReply
from continuum.memory.engine import MemoryEngine
from continuum.persona import Persona
from continuum.room import Room, RoomPolicy


class HostAdapter(ABC):
    name: ClassVar[str]

    @abstractmethod
    def to_envelope(self, event: Any) -> Envelope | None:
        """Turn a raw host event into an envelope; None to ignore it (e.g. our own echo).
        Raise :class:`~continuum.errors.MalformedEvent` for forged or malformed events."""

    @abstractmethod
    async def send(self, reply: PersonaReply) -> None:
        """Post ``reply`` on the host as the persona."""


class RoomRouter:
    """Routes envelopes to rooms (one per host room id, created on first use) and sends
    the replies back through the host."""

    def __init__(
        self,
        personas: Sequence[Persona],
        backend: Backend,
        policy: RoomPolicy | None = None,
        room_factory: Callable[[str], Room] | None = None,
        memory: MemoryEngine | None = None,
        state_store: PersonaStateStore | None = None,
    ) -> None:
        self.personas = list(personas)
        self.state_store = state_store
        self.backend = backend
        self.policy = policy
        self.memory = memory
        self.rooms: dict[str, Room] = {}
        self._factory = room_factory or (
            lambda room_id: Room(
                room_id,
                self.personas,
                self.backend,
                policy=self.policy,
                memory=self.memory,
                state_store=self.state_store,
            )
        )

    def room(self, room_id: str) -> Room:
        if room_id not in self.rooms:
            self.rooms[room_id] = self._factory(room_id)
        return self.rooms[room_id]

    async def dispatch(self, envelope: Envelope, host: HostAdapter) -> list[PersonaReply]:
        room = self.room(f"{envelope.host}:{envelope.room_id}")
        return await room.handle(envelope, on_reply=host.send)
