"""A reply that is posted at its first words and edited as it grows — the streaming most
platforms allow (Discord webhook edits, Slack's chat.update, Matrix edits).

A host subclasses :class:`EditingSink` and implements :meth:`~EditingSink.post` (a new
platform message, its id back) and :meth:`~EditingSink.edit`. The core's part:

- edits coalesced to at most one per ``edit_every_s`` per reply (what the platform allows),
  pushed further out when the platform answers "rate limited" (raise :class:`RateLimited`
  with its ``retry_after``);
- a reply longer than ``max_chars`` finishes its message at a boundary and goes on in a
  new one (code fences closed and reopened, each id reported with ``posted``);
- the final edit is exactly the reply (rendered for the host's dialect, mass mentions
  neutralised), whatever edits were skipped on the way.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable

import anyio

from continuum.errors import ContinuumError
from continuum.hosts.base import ReplySink, message_cut, open_fence, split_message
from continuum.markup import partial_word_tail, render


class RateLimited(ContinuumError):
    """The platform said "too many requests": try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:.2f}s")
        self.retry_after = max(0.0, retry_after)


class EditingSink(ReplySink):
    MAX_RETRIES = 5

    def __init__(
        self,
        *,
        max_chars: int | None = None,
        edit_every_s: float = 1.2,
        dialect: str = "markdown",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_chars = max_chars
        self.edit_every_s = edit_every_s
        self.dialect = dialect
        self._clock = clock
        self.raw = ""  # what the persona wrote
        self.text = ""  # rendered, with anything that could still become a ping held back
        self.offset = 0  # where the current message starts in ``text``
        self.prefix = ""  # a code fence reopened at the start of the current message
        self.current: str | None = None  # the platform id of the message being edited
        self.shown = ""  # what that message shows now
        self.first: str | None = None
        self.ids: list[str] = []
        self._next_edit = 0.0

    # --- what a host implements ------------------------------------------------------------

    @abstractmethod
    async def post(self, text: str) -> str:
        """Put a new message on the platform; its id. May raise :class:`RateLimited`."""

    @abstractmethod
    async def edit(self, message_id: str, text: str) -> None:
        """Replace a message's text. May raise :class:`RateLimited`."""

    # --- the sink ------------------------------------------------------------------------------

    def _now(self) -> float:
        return self._clock()

    def _settle(self, final: bool) -> None:
        hold = 0 if final else partial_word_tail(self.raw)
        self.text = render(self.raw[: len(self.raw) - hold], self.dialect)

    def _body(self) -> str:
        return self.prefix + self.text[self.offset :]

    async def write(self, delta: str) -> None:
        self.raw += delta
        self._settle(final=False)
        await self._roll_over_while_full()
        body = self._body()
        if not body.strip():
            return
        if self.current is None:
            await self._open(body)
        elif body != self.shown and self._now() >= self._next_edit:
            await self._edit(body, final=False)

    async def finish(self) -> str | None:
        self._settle(final=True)
        await self._roll_over_while_full()
        body = self._body().rstrip()
        if self.current is None:
            for chunk in split_message(body, self.max_chars):
                if chunk.strip():
                    await self._open(chunk)
        elif body != self.shown:
            await self._edit(body, final=True)
        return self.first

    async def abort(self, reason: str) -> None:
        self._settle(final=True)
        if self.current is not None:
            await self._edit(f"{self._body().rstrip()} … ({reason})", final=True)

    # --- the platform, paced ---------------------------------------------------------------

    async def _call(self, make: Callable[[], Awaitable[object]], final: bool) -> object:
        """Run a post or an edit; a rate limit delays the next one (and a final one waits
        and tries again, up to MAX_RETRIES)."""
        for _ in range(self.MAX_RETRIES):
            try:
                return await make()
            except RateLimited as exc:
                self._next_edit = self._now() + exc.retry_after
                if not final:
                    return None
                await anyio.sleep(exc.retry_after)
        raise ContinuumError(f"still rate limited after {self.MAX_RETRIES} tries")

    async def _open(self, body: str) -> None:
        host_id = await self._call(lambda: self.post(body), final=True)
        assert isinstance(host_id, str)
        self.current, self.shown = host_id, body
        self.first = self.first or host_id
        self.ids.append(host_id)
        self.posted(host_id)
        self._next_edit = max(self._next_edit, self._now() + self.edit_every_s)

    async def _edit(self, body: str, final: bool) -> None:
        assert self.current is not None
        current = self.current
        if final:  # the last edit keeps the pace too: it waits for its turn
            await anyio.sleep(max(0.0, self._next_edit - self._now()))
        done = await self._call(lambda: self._edit_call(current, body), final=final)
        if done is not None:
            self.shown = body
            self._next_edit = max(self._next_edit, self._now() + self.edit_every_s)

    async def _edit_call(self, message_id: str, body: str) -> bool:
        await self.edit(message_id, body)
        return True

    async def _roll_over_while_full(self) -> None:
        limit = self.max_chars
        while limit is not None and len(self._body()) > limit:
            current = self.text[self.offset :]
            head = current[: message_cut(current, limit - len(self.prefix), self.prefix)].rstrip()
            fence = open_fence(self.prefix + head)
            finished = self.prefix + head + ("\n" + fence[:3] if fence else "")
            if self.current is None:
                await self._open(finished)
            elif finished != self.shown:
                await self._edit(finished, final=True)
            self.offset += len(head)
            skip = "\n" if fence else " \n\t"
            while self.text[self.offset : self.offset + 1] and self.text[self.offset] in skip:
                self.offset += 1
            self.prefix = fence + "\n" if fence else ""
            self.current, self.shown = None, ""
