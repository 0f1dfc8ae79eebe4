"""A persona's reply on Slack: posted under its own name and avatar, into the thread of the
message it answers, streamed as it is generated.

Where the workspace has Slack's streaming messages (``chat.startStream`` /
``appendStream`` / ``stopStream``) the reply streams; otherwise it is posted at its first
words and edited (``chat.update``) at most once per ``update_interval_s`` — the core's
:class:`~continuum.hosts.editing.EditingSink`. A reply longer than ``max_message_chars``
continues in a new message (code fences closed and reopened). 429s are retried by the
client after their ``Retry-After``; posts respect a per-channel interval. Text goes out as
``markdown_text`` (Slack renders the model's Markdown), escaped so no persona can ping.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from slack_sdk.errors import SlackApiError

from continuum.envelope import AudioPart, ImagePart
from continuum.errors import ContinuumError
from continuum.hosts.base import ReplySink, ReplyStart, message_cut, open_fence, split_message
from continuum.hosts.editing import EditingSink
from continuum.markup import neutralize, partial_word_tail
from continuum_slack.events import message_id
from continuum_slack.outbox import SlackOutbox

log = logging.getLogger("continuum.slack")

# errors that mean "no streaming here": fall back to post + update
_NO_STREAMING = {
    "unknown_method",
    "method_not_supported_for_channel_type",
    "not_allowed_token_type",
    "missing_scope",
    "feature_not_enabled",
    "team_not_allowed",
}
APPEND_EVERY_S = 0.4
APPEND_MIN_CHARS = 48
DIALECT = "slack_markdown"  # markdown_text: Markdown, with Slack's escaping


class _SlackEdits(EditingSink):
    """Post-then-edit on Slack (``chat.postMessage`` / ``chat.update``)."""

    def __init__(self, out: SlackOutbox, start: ReplyStart, channel: str, thread_ts: str | None):
        super().__init__(
            max_chars=out.config.max_message_chars,
            edit_every_s=out.config.update_interval_s,
            dialect=DIALECT,
        )
        self.out, self.start, self.channel, self.thread_ts = out, start, channel, thread_ts

    async def post(self, text: str) -> str:
        await self.out.pace(self.channel)
        r = await self.out.client.chat_postMessage(
            channel=self.channel,
            thread_ts=self.thread_ts,
            markdown_text=text,
            username=self.start.persona_name,
            icon_url=self.start.avatar_url,
        )
        return message_id(self.channel, r["ts"])

    async def edit(self, host_message_id: str, text: str) -> None:
        await self.out.client.chat_update(
            channel=self.channel, ts=host_message_id.rpartition(":")[2], markdown_text=text
        )


class SlackReplySink(ReplySink):
    def __init__(self, outbox: SlackOutbox, start: ReplyStart) -> None:
        self.out = outbox
        self.start = start
        self.channel = start.reply_to.channel
        self.thread_ts = start.reply_to.thread or start.reply_to.message_id
        self.mode = outbox.reply_mode()
        self.edits: _SlackEdits | None = None  # post-then-edit: the core's editing sink
        if self.mode == "update":
            self._use_edits()
        self.raw = ""  # everything the persona wrote
        self.text = ""  # what of it may go out: neutralised (no mass mentions), so far
        self.sent = 0  # how much of it is on Slack (current stream)
        self.offset = 0  # where the current stream starts in ``text``
        self.prefix = ""  # a code fence reopened at the start of the current stream
        self.ts: str | None = None  # the current stream
        self.first_ts: str | None = None
        self.last_push = 0.0

    def _use_edits(self) -> None:
        self.mode = "update"
        self.edits = _SlackEdits(self.out, self.start, self.channel, self.thread_ts)
        self.edits.watch_posts(self.posted)

    @property
    def _identity(self) -> dict[str, Any]:
        return {"username": self.start.persona_name, "icon_url": self.start.avatar_url}

    def _settle(self, final: bool = False) -> None:
        """``text`` follows ``raw``, neutralised; a tail that could still become a mass
        word (``@ever``) waits for the next delta unless the reply is complete."""
        hold = 0 if final else partial_word_tail(self.raw)
        self.text = neutralize(self.raw[: len(self.raw) - hold], "slack_mrkdwn")

    async def write(self, delta: str) -> None:
        if self.edits is not None:
            await self.edits.write(delta)
            return
        self.raw += delta
        self._settle()
        if self.mode == "off":
            return
        limit = self.out.config.max_message_chars
        if len(self.prefix) + len(self.text) - self.offset > limit:
            await self._roll_over(limit)
        if self.ts is None:
            await self._open()
        elif self._due():
            await self._push()

    def _due(self) -> bool:
        pending = len(self.text) - self.sent
        return pending >= APPEND_MIN_CHARS or bool(
            pending and time.monotonic() - self.last_push >= APPEND_EVERY_S
        )

    async def _open(self) -> None:
        try:
            r = await self.out.client.chat_startStream(
                channel=self.channel,
                thread_ts=self.thread_ts,
                markdown_text=self.prefix + self.text[self.offset :],
                recipient_user_id=self.out.recipient(self.start),
                recipient_team_id=self.out.team_id,
                **self._identity,
            )
        except SlackApiError as exc:
            error = exc.response.get("error", "")
            if error not in _NO_STREAMING or self.first_ts is not None:
                raise
            log.info("no streaming in %s (%s): posting and editing instead", self.channel, error)
            self.out.streaming_unavailable()
            self._use_edits()
            assert self.edits is not None
            await self.edits.write(self.raw)
            return
        self.ts = r["ts"]
        self.first_ts = self.first_ts or self.ts
        self.posted(message_id(self.channel, r["ts"]))  # mapped (reactions), open till done
        self.sent = len(self.text)
        self.last_push = time.monotonic()

    async def _push(self) -> None:
        assert self.ts is not None
        await self.out.client.chat_appendStream(
            channel=self.channel, ts=self.ts, markdown_text=self.text[self.sent :]
        )
        self.sent = len(self.text)
        self.last_push = time.monotonic()

    async def _stop(self, tail: str | None) -> None:
        assert self.ts is not None
        await self.out.client.chat_stopStream(
            channel=self.channel, ts=self.ts, markdown_text=tail or None
        )
        self.sent = len(self.text)

    async def _roll_over(self, limit: int) -> None:
        """The current stream is full: stop it at a boundary, continue in a new one."""
        current = self.text[self.offset :]
        head = current[: message_cut(current, limit - len(self.prefix), self.prefix)].rstrip()
        fence = open_fence(self.prefix + head)  # closed here, reopened in the next message
        close = "\n" + fence[:3] if fence else ""
        if self.ts is not None:
            self.sent = min(self.sent, self.offset + len(head))
            await self._stop(self.text[self.sent : self.offset + len(head)] + close)
        self.offset += len(head)
        skip = "\n" if fence else " \n\t"  # code keeps its indentation
        while self.text[self.offset : self.offset + 1] and self.text[self.offset] in skip:
            self.offset += 1
        self.prefix = fence + "\n" if fence else ""
        self.sent = self.offset
        self.ts = None

    async def finish(self) -> str | None:
        if self.edits is not None:
            await self.edits.finish()
            first = self.edits.first
            return first
        self._settle(final=True)
        if self.mode == "off" or self.ts is None:  # one post at the end (split if long)
            rest = self.prefix + self.text[self.offset :].strip("\n").rstrip()
            for chunk in split_message(rest, self.out.config.max_message_chars):
                if not chunk:
                    continue
                await self.out.pace(self.channel)
                r = await self.out.client.chat_postMessage(
                    channel=self.channel,
                    thread_ts=self.thread_ts,
                    markdown_text=chunk,
                    **self._identity,
                )
                self.first_ts = self.first_ts or r["ts"]
                self.posted(message_id(self.channel, r["ts"]))
        else:
            await self._stop(self.text[self.sent :])
        return message_id(self.channel, self.first_ts) if self.first_ts else None

    async def attach(self, part: AudioPart | ImagePart, name: str = "") -> None:
        """The file goes into the reply's thread (files upload v2: files:write)."""
        if not part.data:
            raise ContinuumError("an attachment needs its bytes")
        ext = (part.mime or "").split("/")[-1].split(";")[0] or "bin"
        await self.out.client.files_upload_v2(
            channel=self.channel,
            thread_ts=self.thread_ts,
            content=part.data,
            filename=name or f"{self.start.persona_id}.{ext}",
            title=name or f"from {self.start.persona_name}",
        )

    async def abort(self, reason: str) -> None:
        if self.edits is not None:
            await self.edits.abort(reason)
            return
        self._settle(final=True)
        if self.ts is not None:
            await self._stop(self.text[self.sent :] + f" … ({reason})")
