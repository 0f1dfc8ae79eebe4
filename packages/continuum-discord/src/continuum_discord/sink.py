"""A persona's reply in Discord: posted through the channel's webhook under the
persona's name and avatar as soon as its first sentence is written, then edited as it
grows (the core's EditingSink: about one edit per 1.2 s, rolled over into a new message
at 2,000 characters, the final edit exactly the reply). Mass mentions never ping
(``allowed_mentions`` none). In a DM (no webhooks there) the bot posts, the persona's
name in bold when there is more than one persona.

discord.py paces every call from Discord's ``X-RateLimit-*`` headers (waiting out an
empty bucket) and answers a 429 by waiting ``retry_after`` and trying again. Edits run
in the background, latest text wins: a webhook whose bucket is empty (several personas
streaming in one channel share it) delays what people see, never the persona's
generation, and an edit that waited is replaced by the newest text instead of queueing.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import discord

from continuum.envelope import AudioPart, ImagePart
from continuum.errors import ContinuumError
from continuum.hosts.base import ReplyStart
from continuum.hosts.editing import EditingSink, RateLimited
from continuum_discord.names import webhook_name

log = logging.getLogger("continuum.discord")
NO_PINGS = discord.AllowedMentions.none()
_SENTENCE_END = re.compile(r"[.!?…:;](\s|$)|\n")
FIRST_POST_CHARS = 120  # a first sentence longer than this is posted anyway


def _rate_limited(exc: discord.HTTPException) -> RateLimited | None:
    if exc.status != 429:
        return None
    retry = getattr(exc, "retry_after", None)
    return RateLimited(float(retry) if retry else 1.0)


class DiscordReplySink(EditingSink):
    def __init__(
        self,
        start: ReplyStart,
        *,
        webhook: discord.Webhook | None,
        channel: discord.abc.Messageable,
        thread: discord.abc.Snowflake | None,
        name_prefix: bool,
        max_chars: int,
        edit_every_s: float,
        on_gone: Callable[[], Awaitable[discord.Webhook | None]] | None = None,
    ) -> None:
        self.prefix_line = f"**{start.persona_name}:** " if name_prefix and webhook is None else ""
        super().__init__(
            max_chars=max_chars - len(self.prefix_line),
            edit_every_s=edit_every_s,
            dialect="discord_markdown",
        )
        self.start = start
        self.webhook = webhook
        self.channel = channel
        self.thread = thread
        self.username = webhook_name(start.persona_name)
        self._on_gone = on_gone
        self._messages: dict[str, Any] = {}
        self._pending: dict[str, str] = {}  # message id -> the newest text to show
        self._flusher: asyncio.Task[None] | None = None

    # --- when to show the first words ------------------------------------------------------

    async def write(self, delta: str) -> None:
        if self.current is None and not self.ids:
            pending = self.raw + delta
            if not _SENTENCE_END.search(pending) and len(pending) < FIRST_POST_CHARS:
                self.raw = pending  # the first sentence is not done: keep it
                return
            self.raw, delta = "", pending
        await super().write(delta)

    # --- the platform ----------------------------------------------------------------------

    async def _send(self, **kwargs: Any) -> discord.Message | discord.WebhookMessage:
        try:
            if self.webhook is not None:
                return await self._via_webhook(**kwargs)
            if "content" in kwargs:
                kwargs["content"] = self.prefix_line + kwargs["content"]
            return await self.channel.send(allowed_mentions=NO_PINGS, **kwargs)
        except discord.HTTPException as exc:
            limited = _rate_limited(exc)
            if limited is not None:
                raise limited from None
            raise ContinuumError(f"Discord refused the post: {exc.status} {exc.text}") from None

    async def _via_webhook(self, **kwargs: Any) -> discord.WebhookMessage:
        """As the persona; a webhook deleted on Discord is made again once."""
        for attempt in range(2):
            assert self.webhook is not None
            try:
                return await self.webhook.send(
                    username=self.username,
                    avatar_url=self.start.avatar_url or discord.utils.MISSING,
                    wait=True,
                    allowed_mentions=NO_PINGS,
                    **({"thread": self.thread} if self.thread else {}),
                    **kwargs,
                )
            except discord.NotFound:
                self.webhook = await self._on_gone() if self._on_gone and not attempt else None
                if self.webhook is None:
                    raise
        raise AssertionError("unreachable")

    async def post(self, text: str) -> str:
        message = await self._send(content=text)
        self._messages[str(message.id)] = message
        return str(message.id)

    async def edit(self, message_id: str, text: str) -> None:
        """Queue the newest text for ``message_id``; the flusher shows it."""
        self._pending[message_id] = text
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            message_id = next(iter(self._pending))
            text = self._pending.pop(message_id)
            for _ in range(self.MAX_RETRIES):
                try:
                    await self._edit_now(message_id, text)
                    break
                except RateLimited as exc:  # beyond discord.py's own retries
                    await asyncio.sleep(exc.retry_after)
                    text = self._pending.pop(message_id, text)
                except ContinuumError as exc:
                    log.warning("an edit of a persona's message failed: %s", exc)
                    break

    async def _settled(self) -> None:
        while self._flusher is not None and not self._flusher.done():
            await asyncio.shield(self._flusher)

    async def finish(self) -> str | None:
        first = await super().finish()
        await self._settled()  # the final text is shown before the reply counts as posted
        return first

    async def abort(self, reason: str) -> None:
        await super().abort(reason)
        await self._settled()

    async def _edit_now(self, message_id: str, text: str) -> None:
        try:
            if self.webhook is not None:
                extra: dict[str, Any] = {"thread": self.thread} if self.thread else {}
                await self.webhook.edit_message(
                    int(message_id), content=text, allowed_mentions=NO_PINGS, **extra
                )
            else:
                await self._messages[message_id].edit(
                    content=self.prefix_line + text, allowed_mentions=NO_PINGS
                )
        except discord.HTTPException as exc:
            limited = _rate_limited(exc)
            if limited is not None:
                raise limited from None
            raise ContinuumError(f"Discord refused the edit: {exc.status} {exc.text}") from None

    async def attach(self, part: AudioPart | ImagePart, name: str = "") -> None:
        """A file with the reply: its own message from the persona, right after the text."""
        if part.data is None:
            raise ContinuumError("an attachment needs its bytes")
        ext = part.mime.split("/")[-1].split(";")[0] or "bin"
        filename = name or f"{part.type}.{ext}"
        message = await self._send(file=discord.File(io.BytesIO(part.data), filename=filename))
        self.posted(str(message.id))
