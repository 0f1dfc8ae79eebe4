"""RoomRouter: envelopes to rooms, and host message ids to room message ids.

Rooms are keyed ``<host>:<room id>`` and created on first use, each with the runtime's
memory, persona-state store and hippocampus. The :class:`MessageMap` remembers which host
message is which room message (people's messages as they arrive, persona replies when the
host's reply sink finishes) — persisted in SQLite, so a reaction, edit or deletion that
arrives after a restart still finds its message and its persona.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from continuum.backends.base import Backend
from continuum.cognition.state import PersonaStateStore
from continuum.envelope import AudioPart, Envelope, ImagePart, PersonaReply
from continuum.errors import ContinuumError, UnknownMessage
from continuum.hosts.base import ReplySink, ReplyStart
from continuum.memory.atomic import private_file, tighten
from continuum.memory.crypto import Cipher
from continuum.memory.engine import MemoryEngine
from continuum.memory.hippocampus import Hippocampus
from continuum.persona import Persona
from continuum.room import ReplyOpener, Room, RoomPolicy
from continuum.room.room import ReplyCallback

log = logging.getLogger("continuum.router")


class MappedMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    host: str
    host_message_id: str
    room_key: str
    message_id: str
    author_id: str
    is_persona: bool
    topics: tuple[str, ...] = ()


class PendingMessage(BaseModel):
    model_config = ConfigDict(frozen=True)

    envelope: Envelope
    delivered_at: float
    answered_by: tuple[str, ...] = ()


class MessageMap:
    """(host, host message id) ↔ (room, room message id, author), in SQLite (or memory);
    room membership changes; and the messages being answered (``pending``), so a message
    delivered before a crash is answered, or shed with a reason, after the restart. With
    a memory key, pending messages are stored encrypted."""

    def __init__(self, path: Path | None = None, cipher: Cipher | None = None) -> None:
        self.path = path
        self.cipher = cipher
        if path is not None:
            private_file(path)  # its -wal and -shm files take these permissions
        self._db = sqlite3.connect(
            str(path) if path else ":memory:", check_same_thread=False, isolation_level=None
        )
        if path is not None:
            for extra in ("-wal", "-shm"):
                tighten(path.with_name(path.name + extra))
            # WAL + NORMAL: durable across a process crash (what SIGKILL tests), one fsync
            # per checkpoint rather than per message
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS messages (host TEXT NOT NULL, host_message_id TEXT NOT"
            " NULL, room_key TEXT NOT NULL, message_id TEXT NOT NULL, author_id TEXT NOT NULL,"
            " is_persona INTEGER NOT NULL, topics TEXT NOT NULL DEFAULT '[]',"
            " PRIMARY KEY (host, host_message_id))"
        )
        self._db.execute(
            "CREATE INDEX IF NOT EXISTS messages_room ON messages (room_key, message_id)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS members (room_key TEXT NOT NULL, persona_id TEXT NOT"
            " NULL, present INTEGER NOT NULL, PRIMARY KEY (room_key, persona_id))"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS pending (message_id TEXT PRIMARY KEY, envelope BLOB NOT"
            " NULL, delivered_at REAL NOT NULL, answered_by TEXT NOT NULL DEFAULT '[]')"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS open_replies (host TEXT NOT NULL, host_message_id TEXT"
            " NOT NULL, PRIMARY KEY (host, host_message_id))"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS threads (host TEXT NOT NULL, channel TEXT NOT NULL,"
            " thread TEXT NOT NULL, persona_id TEXT NOT NULL, PRIMARY KEY (host, channel, thread))"
        )
        self._lock = threading.Lock()

    # --- messages being answered ------------------------------------------------------------

    def add_pending(self, envelope: Envelope, at: float) -> None:
        blob = envelope.model_dump_json().encode()
        if self.cipher is not None:
            blob = self.cipher.encrypt(blob)
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO pending (message_id, envelope, delivered_at)"
                " VALUES (?, ?, ?)",
                (envelope.id, blob, at),
            )

    def mark_answered(self, message_id: str, persona_id: str) -> None:
        with self._lock:
            row = self._db.execute(
                "SELECT answered_by FROM pending WHERE message_id = ?", (message_id,)
            ).fetchone()
            if row is None:
                return
            answered = [*json.loads(row[0]), persona_id]
            self._db.execute(
                "UPDATE pending SET answered_by = ? WHERE message_id = ?",
                (json.dumps(answered), message_id),
            )

    def done(self, message_id: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM pending WHERE message_id = ?", (message_id,))

    def pending(self) -> list[PendingMessage]:
        with self._lock:
            rows = self._db.execute(
                "SELECT message_id, envelope, delivered_at, answered_by FROM pending"
                " ORDER BY delivered_at"
            ).fetchall()
        out = []
        for message_id, blob, at, answered in rows:
            try:
                if self.cipher is not None:
                    blob = self.cipher.decrypt(blob, f"pending message {message_id}")
                envelope = Envelope.model_validate_json(blob)
            except (ContinuumError, ValueError) as exc:
                log.warning("dropping unreadable pending message %s: %s", message_id, exc)
                self.done(message_id)
                continue
            out.append(
                PendingMessage(
                    envelope=envelope, delivered_at=at, answered_by=tuple(json.loads(answered))
                )
            )
        return out

    def record(
        self,
        host: str,
        host_message_id: str,
        room_key: str,
        message_id: str,
        author_id: str,
        is_persona: bool,
        topics: Sequence[str] = (),
    ) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO messages VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    host,
                    host_message_id,
                    room_key,
                    message_id,
                    author_id,
                    int(is_persona),
                    json.dumps(list(topics)),
                ),
            )

    # --- replies on a platform that are not finished yet --------------------------------------

    def open_reply(self, host: str, host_message_id: str) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO open_replies VALUES (?, ?)", (host, host_message_id)
            )

    def close_replies(self, host: str, host_message_ids: Sequence[str]) -> None:
        with self._lock:
            self._db.executemany(
                "DELETE FROM open_replies WHERE host = ? AND host_message_id = ?",
                [(host, i) for i in host_message_ids],
            )

    def claim_thread(self, host: str, channel: str, thread: str, persona_id: str) -> None:
        """The first persona to post in a thread started it: replies there address it."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO threads VALUES (?, ?, ?, ?)",
                (host, channel, thread, persona_id),
            )

    def thread_owner(self, host: str, channel: str, thread: str) -> str | None:
        with self._lock:
            row = self._db.execute(
                "SELECT persona_id FROM threads WHERE host = ? AND channel = ? AND thread = ?",
                (host, channel, thread),
            ).fetchone()
        return row[0] if row else None

    def open_replies(self, host: str) -> list[str]:
        """Host message ids of replies posted and never finished (a crash)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT host_message_id FROM open_replies WHERE host = ?", (host,)
            ).fetchall()
        return [r[0] for r in rows]

    def lookup(self, host: str, host_message_id: str) -> MappedMessage | None:
        with self._lock:
            row = self._db.execute(
                "SELECT host, host_message_id, room_key, message_id, author_id, is_persona,"
                " topics FROM messages WHERE host = ? AND host_message_id = ?",
                (host, host_message_id),
            ).fetchone()
        return None if row is None else _mapped(row)

    def host_ids(self, room_key: str, message_id: str) -> list[MappedMessage]:
        """The host messages a room message became (a long reply can be several)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT host, host_message_id, room_key, message_id, author_id, is_persona,"
                " topics FROM messages WHERE room_key = ? AND message_id = ?",
                (room_key, message_id),
            ).fetchall()
        return [_mapped(r) for r in rows]

    def set_member(self, room_key: str, persona_id: str, present: bool) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO members VALUES (?, ?, ?)",
                (room_key, persona_id, int(present)),
            )

    def members(self, room_key: str) -> dict[str, bool]:
        """Persona membership changes made in a room (invite/remove)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT persona_id, present FROM members WHERE room_key = ?", (room_key,)
            ).fetchall()
        return {r[0]: bool(r[1]) for r in rows}

    def forget_author(self, author_id: str) -> int:
        with self._lock:
            return self._db.execute(
                "DELETE FROM messages WHERE author_id = ?", (author_id,)
            ).rowcount

    def close(self) -> None:
        self._db.close()


def _mapped(row: tuple) -> MappedMessage:
    return MappedMessage(
        host=row[0],
        host_message_id=row[1],
        room_key=row[2],
        message_id=row[3],
        author_id=row[4],
        is_persona=bool(row[5]),
        topics=tuple(json.loads(row[6])),
    )


class _MappedSink(ReplySink):
    """Wraps a host's sink: every platform message it posts is mapped to the reply (and
    open until the reply ends); on finish, the id it returns too."""

    def __init__(self, inner: ReplySink, start: ReplyStart, host: str, messages: MessageMap):
        self.inner, self.start, self.host, self.messages = inner, start, host, messages
        self.host_ids: list[str] = []
        inner.watch_posts(self._posted)

    def _posted(self, host_id: str) -> None:
        s = self.start
        self.messages.record(
            self.host, host_id, s.room_key, s.reply_id, s.persona_id, True, s.topics
        )
        if s.reply_to.thread:
            to = s.reply_to
            self.messages.claim_thread(self.host, to.channel, to.thread, s.persona_id)
        self.messages.open_reply(self.host, host_id)
        self.host_ids.append(host_id)

    async def write(self, delta: str) -> None:
        await self.inner.write(delta)

    async def finish(self) -> str | None:
        host_id = await self.inner.finish()
        s = self.start
        self.messages.mark_answered(s.in_reply_to, s.persona_id)
        if host_id:
            self.messages.record(
                self.host, host_id, s.room_key, s.reply_id, s.persona_id, True, s.topics
            )
            if s.reply_to.thread:
                self.messages.claim_thread(
                    self.host, s.reply_to.channel, s.reply_to.thread, s.persona_id
                )
        self.messages.close_replies(self.host, self.host_ids)
        return host_id

    async def abort(self, reason: str) -> None:
        await self.inner.abort(reason)
        self.messages.close_replies(self.host, self.host_ids)

    def heard(self) -> str | None:
        return self.inner.heard()

    async def attach(self, part: AudioPart | ImagePart, name: str = "") -> None:
        await self.inner.attach(part, name)


class RoomRouter:
    """Routes envelopes to rooms (one per host room, created on first use)."""

    def __init__(
        self,
        personas: Sequence[Persona],
        backend: Backend,
        policy: RoomPolicy | None = None,
        room_factory: Callable[[str], Room] | None = None,
        memory: MemoryEngine | None = None,
        state_store: PersonaStateStore | None = None,
        messages: MessageMap | None = None,
        hippocampus: Hippocampus | None = None,
    ) -> None:
        self.personas = list(personas)
        self.state_store = state_store
        self.backend = backend
        self.policy = policy
        self.memory = memory
        self.messages = messages or MessageMap()
        self.hippocampus = hippocampus
        self.rooms: dict[str, Room] = {}
        self.on_new_room: list[Callable[[Room], None]] = []
        self._factory = room_factory or (
            lambda key: Room(
                key,
                self.personas,
                self.backend,
                policy=self.policy,
                memory=self.memory,
                state_store=self.state_store,
            )
        )

    @staticmethod
    def key(host: str, room_id: str) -> str:
        return f"{host}:{room_id}"

    def room(self, key: str) -> Room:
        room = self.rooms.get(key)
        if room is None:
            room = self.rooms[key] = self._factory(key)
            for persona_id, present in self.messages.members(key).items():
                if not present:
                    room.remove_persona(persona_id)
            if self.hippocampus is not None:  # every room is consolidated, not just one
                self.hippocampus.attach(room.events, room.id, lambda: list(room.personas))
            for callback in self.on_new_room:
                callback(room)
        return room

    def set_member(self, key: str, persona_id: str, present: bool) -> None:
        """Invite a persona into a room or remove it (persisted across restarts)."""
        self.messages.set_member(key, persona_id, present)
        room = self.room(key)
        persona = next((p for p in self.personas if p.id == persona_id), None)
        if present and persona is not None:
            room.add_persona(persona)
        elif not present:
            room.remove_persona(persona_id)

    def opener(self, host: str, open_reply: ReplyOpener) -> ReplyOpener:
        """Wrap a host's ``open_reply`` so finished replies are mapped to room messages."""

        async def open_mapped(start: ReplyStart) -> ReplySink:
            return _MappedSink(await open_reply(start), start, host, self.messages)

        return open_mapped

    async def dispatch(
        self,
        envelope: Envelope,
        replies: ReplyOpener | None = None,
        on_reply: ReplyCallback | None = None,
    ) -> list[PersonaReply]:
        """Hand ``envelope`` to its room; ``replies`` opens each reply on the host."""
        key = self.key(envelope.host, envelope.room_id)
        room = self.room(key)
        if envelope.host_message_id:
            self.messages.record(
                envelope.host, envelope.host_message_id, key, envelope.id, envelope.author.id, False
            )
        opener = self.opener(envelope.host, replies) if replies is not None else None
        return await room.handle(envelope, on_reply=on_reply, replies=opener)

    def find(self, host: str, host_message_id: str) -> tuple[Room, MappedMessage]:
        mapped = self.messages.lookup(host, host_message_id)
        if mapped is None:
            raise UnknownMessage(f"{host} message {host_message_id} is not known")
        return self.room(mapped.room_key), mapped

    def react(self, host: str, host_message_id: str, positive: bool) -> MappedMessage:
        """A reaction on a host message: a persona's reply feeds its reputation (also
        after a restart: the map is persisted)."""
        room, mapped = self.find(host, host_message_id)
        if not mapped.is_persona:
            return mapped  # reactions on people's messages do not move reputation
        room.react(mapped.message_id, positive, persona_id=mapped.author_id, topics=mapped.topics)
        return mapped

    def edit(self, host: str, host_message_id: str, text: str) -> None:
        room, mapped = self.find(host, host_message_id)
        try:
            room.edit_message(mapped.message_id, text)
        except UnknownMessage:
            log.info("edit of %s: no longer in %s's history", host_message_id, room.key)

    def delete(self, host: str, host_message_id: str) -> None:
        room, mapped = self.find(host, host_message_id)
        try:
            room.delete_message(mapped.message_id)
        except UnknownMessage:
            log.info("deletion of %s: no longer in %s's history", host_message_id, room.key)

    def close(self) -> None:
        self.messages.close()
