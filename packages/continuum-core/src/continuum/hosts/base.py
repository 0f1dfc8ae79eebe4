"""The host contract: what a host plugin implements and what the runtime offers it.

A host (Slack, Discord, the editor, LiveKit, the console, yours) is a
:class:`HostAdapter`. It runs inside the runtime (``run`` until cancelled), turns its
platform's events into :mod:`host events <continuum.hosts.base>` and hands them to the
runtime through :class:`HostServices`, and posts persona replies when the core opens one
(:meth:`HostAdapter.open_reply` → a :class:`ReplySink` that receives *visible* text deltas
— think-blocks are stripped by the core, never by a host — and returns the host's message
id on ``finish``). A host without streaming subclasses :class:`BufferedReplySink` and
posts once.

This module imports nothing of the engine (only the envelope types), so a host package
depends on a small, stable surface.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from continuum.envelope import (
    AudioPart,
    Envelope,
    ImagePart,
    Participant,
    PersonaReply,
    ReplyTarget,
    Visibility,
)
from continuum.errors import ConfigError, ContinuumError
from continuum.hosts.audio import AudioOutput, Ear

Markup = Literal["plain", "markdown", "slack_mrkdwn", "slack_markdown", "discord_markdown", "html"]


class HostCapabilities(BaseModel):
    """What a host's platform can do; the core adapts to it (one final post without
    streaming, splitting at ``max_message_chars``, no typing calls without ``typing``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    threads: bool = False
    edits: bool = False
    reactions: bool = False
    typing: bool = False
    streaming: bool = False
    audio_in: bool = False
    audio_out: bool = False
    max_message_chars: int | None = Field(default=None, gt=0)
    markup: Markup = "plain"
    attachments: bool = False  # a reply can carry a file (ReplySink.attach)


class HostConfig(BaseModel):
    """A host's ``[hosts.<name>]`` table. Hosts subclass it; secrets are never values in
    the file, only the *names* of environment variables (fields ending in ``_env``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True

    def secret(self, field: str) -> str:
        """The value of the environment variable a ``*_env`` field names (a clear error
        naming both when it is not set)."""
        var = getattr(self, field)
        value = os.environ.get(var, "") if var else ""
        if not value:
            raise ConfigError(
                "continuum.toml", f"{field}", f"environment variable {var or '(none)'} is not set"
            )
        return value


class ReplyStart(BaseModel):
    """The core opens a reply: who speaks, where, in answer to what, to whom.

    Two kinds of ids, never mixed: *room* message ids are continuum's (``in_reply_to``,
    ``reply_id``); the *platform's* ids live in ``reply_to`` (``reply_to.message_id``)
    and are what a sink reports with ``posted`` and returns from ``finish``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    persona_id: str
    persona_name: str
    avatar_url: str | None = None
    voice: str | None = None
    reply_to: ReplyTarget  # where on the platform, in the platform's ids
    in_reply_to: str  # the room message id (envelope id) being answered
    reply_id: str  # the room message id this reply will have
    # the author of the message being answered as the platform knows them (its own user
    # id, not continuum's person id): for a host that must name a recipient
    recipient: Participant | None = None
    room_key: str  # "<host>:<room id>"
    topics: tuple[str, ...] = ()  # the shared analysis's topics (reactions credit them)


class ReplySink(ABC):
    """One reply in flight on a host. ``write`` gets visible text deltas in order;
    ``finish`` posts/ends it and returns the host's message id (None if it has none);
    ``abort`` ends it early (the turn was cancelled or failed midway).

    A sink calls :meth:`posted` with the platform's id of every message it puts on the
    platform (a long reply rolls over into several): the core maps each one to the
    reply (a reaction on any chunk credits the persona) and remembers it as open until
    the reply finishes, so a reply a crash left open is closed on the next start
    (:meth:`HostAdapter.close_stale_replies`)."""

    _on_posted: Callable[[str], None] | None = None

    def posted(self, host_message_id: str) -> None:
        """Report a platform message this reply put up (as soon as it is up)."""
        if self._on_posted is not None:
            self._on_posted(host_message_id)

    def watch_posts(self, callback: Callable[[str], None]) -> None:
        """The core's: called with every id :meth:`posted` reports."""
        self._on_posted = callback

    def heard(self) -> str | None:
        """What of this reply reached people so far, when that is less than what was
        written to it (a spoken reply cut off mid-sentence: the played words). A turn
        cancelled midway keeps this in the persona's history. None (the default): all of
        what was written."""
        return None

    async def attach(self, part: AudioPart | ImagePart, name: str = "") -> None:
        """Send a file with this reply (an image, a voice clip), where the host has
        ``capabilities.attachments``. The default refuses."""
        raise ContinuumError("this host cannot send attachments")

    @abstractmethod
    async def write(self, delta: str) -> None: ...

    @abstractmethod
    async def finish(self) -> str | None: ...

    @abstractmethod
    async def abort(self, reason: str) -> None: ...


class BufferedReplySink(ReplySink):
    """For hosts without streaming: collects the deltas and posts once, through ``post``
    (which returns the host's message id) — in several messages when the reply is longer
    than ``max_chars`` (split at boundaries, code fences kept whole; each id reported
    with :meth:`posted`, the first returned)."""

    def __init__(
        self, post: Callable[[str], Awaitable[str | None]], max_chars: int | None = None
    ) -> None:
        self._post = post
        self.max_chars = max_chars
        self.parts: list[str] = []

    @property
    def text(self) -> str:
        return "".join(self.parts)

    async def write(self, delta: str) -> None:
        self.parts.append(delta)

    async def finish(self) -> str | None:
        first: str | None = None
        for chunk in split_message(self.text, self.max_chars):
            host_id = await self._post(chunk)
            if host_id:
                self.posted(host_id)
                first = first or host_id
        return first

    async def abort(self, reason: str) -> None:
        self.parts.clear()


# --- inbound: host events -------------------------------------------------------------


class _HostEvent(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str
    room_id: str


class MessageEvent(_HostEvent):
    """A message (the envelope carries author, parts, mentions, reply target)."""

    kind: Literal["message"] = "message"
    envelope: Envelope


class ReactionEvent(_HostEvent):
    """Someone reacted to a message; ``positive`` None means a neutral reaction."""

    kind: Literal["reaction"] = "reaction"
    host_message_id: str
    reaction: str
    positive: bool | None
    author: Participant
    removed: bool = False


class EditEvent(_HostEvent):
    kind: Literal["edit"] = "edit"
    host_message_id: str
    text: str
    author: Participant


class DeleteEvent(_HostEvent):
    kind: Literal["delete"] = "delete"
    host_message_id: str


class CommandEvent(_HostEvent):
    """A slash command, an LSP command, a console ``/command``."""

    kind: Literal["command"] = "command"
    name: str
    args: tuple[str, ...] = ()
    author: Participant
    reply_to: ReplyTarget | None = None


class MembershipEvent(_HostEvent):
    kind: Literal["membership"] = "membership"
    participant: Participant
    joined: bool


HostEvent = Annotated[
    MessageEvent | ReactionEvent | EditEvent | DeleteEvent | CommandEvent | MembershipEvent,
    Field(discriminator="kind"),
]


class CommandResult(BaseModel):
    """What a command answers (hosts show it to the person who ran it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    ok: bool = True
    data: dict[str, Any] = Field(default_factory=dict)


class PersonaCard(BaseModel):
    """What a host needs to know of a persona: to address it and to post as it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    name: str
    avatar_url: str | None = None
    voice: str | None = None
    specialty: str = ""


# How a delivered message ended: answered (replies posted), silent (nobody answered; the
# reason says why each persona stayed quiet), shed (load or shutdown), failed (the reason
# is the error), cancelled (barge-in, shutdown), duplicate (redelivered, or our own echo)
Outcome = Literal["answered", "silent", "shed", "failed", "cancelled", "duplicate"]


@runtime_checkable
class TurnHandle(Protocol):
    """A delivered message being answered: ``wait`` for the replies, ``cancel`` to stop
    (barge-in: replies in flight are aborted, the room goes on). Once done, ``outcome``
    and ``reason`` say how it ended: a host that answers requests (an editor) returns a
    result or an error from them, never a hang."""

    message_id: str
    outcome: Outcome | None
    reason: str

    async def wait(self) -> list[PersonaReply]: ...

    def cancel(self) -> None: ...


class HostServices(Protocol):
    """What the runtime offers a host (one instance per host)."""

    host: str

    def personas(self) -> Sequence[PersonaCard]: ...

    async def deliver(self, envelope: Envelope) -> TurnHandle:
        """Hand a message to its room; returns at once with a handle (replies come back
        through ``open_reply``). Raises MalformedEvent for an envelope of another host."""
        ...

    async def submit(self, event: HostEvent) -> CommandResult | None:
        """Reactions, edits, deletions, commands, joins/leaves (and messages)."""
        ...

    async def remember_context(self, envelope: Envelope) -> None:
        """Put a message into its room's history without a turn: context the platform
        already had (a thread's parent message, backfill after a restart)."""
        ...

    def addressed(
        self,
        text: str,
        *,
        channel: str | None = None,
        thread: str | None = None,
        replying_to: str | None = None,
    ) -> tuple[str, ...]:
        """The personas a message speaks to: named in it (``continuum.addressing``), else
        the author of the platform message it replies to (``replying_to``, a host message
        id) when that is a persona's, else the persona that started its ``thread`` in
        ``channel``. From the persisted message map: it holds after a restart."""
        ...

    async def ear(
        self,
        room_id: str,
        speaker: Participant,
        *,
        reply_to: ReplyTarget | None = None,
        visibility: Visibility = "public",
        on_heard: Callable[[str], Awaitable[None] | None] | None = None,
    ) -> Ear:
        """Listen to one person's audio stream in a room (see :mod:`continuum.hosts.audio`):
        the runtime ends their turns, transcribes them once for the whole room (or not at
        all, for a model that hears audio), pauses a persona speaking over them and
        delivers each utterance as a message from ``speaker`` (resolved through the people
        directory like any host user). ``on_heard`` gets the transcript of each utterance
        as its turn ends (a host's captions); never called for one with no transcript."""
        ...

    def watch(self, room_id: str, callback: Callable[[Any], None]) -> Callable[[], None]:
        """Follow a room's coordination stream (analysis, silences, levers, posted replies
        with metrics); returns an unsubscribe function."""
        ...


class HostAdapter(ABC):
    """A host plugin. Registered by class through the ``register_hosts`` hook; the runtime
    builds it with its services and its validated ``[hosts.<name>]`` table."""

    name: ClassVar[str]
    capabilities: ClassVar[HostCapabilities] = HostCapabilities()
    config_model: ClassVar[type[HostConfig]] = HostConfig
    # [policy] fields this host's rooms start from (an editor: {"cognition": "direct"});
    # the user's [policy] and [policies.<host>] still win
    default_policy: ClassVar[dict[str, Any]] = {}

    def __init__(self, services: HostServices, config: HostConfig | None = None) -> None:
        self.services = services
        self.config = config or self.config_model()

    @abstractmethod
    async def run(self) -> None:
        """Receive platform events until cancelled, handing them to ``self.services``."""

    @abstractmethod
    async def open_reply(self, start: ReplyStart) -> ReplySink:
        """Begin posting a persona's reply (as the persona: name, avatar, voice)."""

    def speaks_in(self, room_id: str) -> bool:
        """Whether replies in ``room_id`` are spoken (through :meth:`open_audio`) — for a
        host whose rooms are not all voice rooms (Discord: only the voice channel the bot
        joined). The runtime asks it for every reply and for a room's policy (one floor,
        few voices). Default: ``capabilities.audio_out``, for every room."""
        return self.capabilities.audio_out

    async def open_audio(self, start: ReplyStart) -> AudioOutput:
        """Where a persona's spoken reply goes, in rooms where :meth:`speaks_in` is true
        (the runtime synthesizes it in the persona's voice and paces it; see
        :class:`~continuum.hosts.audio.AudioOutput`). ``open_reply`` still gets the text."""
        raise ContinuumError(f"host {self.name} has no audio output")

    async def close_stale_replies(self, host_message_ids: Sequence[str]) -> None:  # noqa: B027
        """Replies a crashed process left open on the platform (posted, never finished):
        end them (a streaming message stopped, a note that it was interrupted). Called
        before :meth:`run`; the message they answered is answered again if it is recent.
        Optional: the default does nothing."""

    async def typing(self, reply_to: ReplyTarget, persona_id: str | None) -> None:  # noqa: B027
        """Show that the room (``persona_id`` None: the shared analysis) or a persona is
        thinking. Called only for hosts with ``capabilities.typing``."""

    async def aclose(self) -> None:  # noqa: B027 - optional
        """Release connections; called once at shutdown after ``run`` is cancelled."""


_FENCE = re.compile(r"^[ \t]*(```|~~~)(.*)$", re.MULTILINE)


def open_fence(text: str) -> str | None:
    """The opening line of a Markdown code fence still open at the end of ``text``
    (`````python``), or None."""
    fence: str | None = None
    for m in _FENCE.finditer(text):
        if fence is None:
            fence = m.group(1) + m.group(2).strip()
        elif fence.startswith(m.group(1)) and not m.group(2).strip():
            fence = None
    return fence


def message_cut(text: str, limit: int, prefix: str = "") -> int:
    """Where the first message of ``text`` ends: at a paragraph, line or word boundary in
    the second half of ``limit``, else hard. Inside a code fence (``prefix``: what the
    message already holds before ``text``) only at a line end, 4 characters earlier to
    leave room to close it."""
    if len(text) <= limit:
        return len(text)

    def boundary(n: int, words: bool) -> int:
        window = text[:n]
        cut = max(window.rfind("\n"), window.rfind(" ") if words else -1)
        return n if cut < n // 2 else cut

    cut = boundary(limit, words=True)
    if open_fence(prefix + text[:cut]) is not None:
        cut = boundary(limit - 4, words=False)
    return cut


def split_message(text: str, limit: int | None) -> list[str]:
    """Split ``text`` at a host's message length limit (see :func:`message_cut`). A code
    fence open at a cut is closed at the end of its message and opened again (with its
    language) at the start of the next, so each message renders on its own."""
    if limit is None or len(text) <= limit:
        return [text]
    chunks: list[str] = []
    rest, carry = text, ""
    while len(carry) + len(rest) > limit:
        cut = message_cut(rest, limit - len(carry), carry)
        head = rest[:cut].rstrip()
        fence = open_fence(carry + head)
        chunks.append(carry + head + ("\n" + fence[:3] if fence else ""))
        rest = rest[cut:].lstrip("\n") if fence else rest[cut:].lstrip()
        carry = fence + "\n" if fence else ""
    if rest.strip():
        chunks.append(carry + rest)
    return chunks
