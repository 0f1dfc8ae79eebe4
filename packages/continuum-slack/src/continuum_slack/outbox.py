"""What every persona reply on Slack shares: the Web API client, the settings, the
streaming mode the workspace allows, the workspace id, and the per-channel pace of new
messages. The host owns one and hands it to each reply sink, so a sink never needs the
host (no import circle)."""

from __future__ import annotations

import time

import anyio
from slack_sdk.web.async_client import AsyncWebClient

from continuum.envelope import ParticipantKind
from continuum.hosts.base import ReplyStart
from continuum_slack.config import SlackConfig


class SlackOutbox:
    def __init__(self, client: AsyncWebClient, config: SlackConfig) -> None:
        self.client = client
        self.config = config
        self.team_id: str | None = None  # set once auth.test answers
        self._streaming = config.stream != "update"
        self._last_post: dict[str, float] = {}

    def reply_mode(self) -> str:
        """ "off" (one post at the end), "stream" (Slack's streaming messages) or "update"
        (post, then edit)."""
        if self.config.stream == "off":
            return "off"
        return "stream" if self._streaming else "update"

    def streaming_unavailable(self) -> None:
        """The workspace refused a stream: every later reply posts and edits instead."""
        if self.config.stream == "auto":
            self._streaming = False

    @staticmethod
    def recipient(start: ReplyStart) -> str | None:
        """The Slack user a streamed reply is for (Slack wants one for streams in channels):
        the answered message's author as Slack named them."""
        who = start.recipient
        return who.id if who is not None and who.kind == ParticipantKind.PERSON else None

    async def pace(self, channel: str) -> None:
        """At most one new message per channel per ``post_interval_s``."""
        wait = self._last_post.get(channel, 0.0) + self.config.post_interval_s - time.monotonic()
        self._last_post[channel] = time.monotonic() + max(0.0, wait)
        if wait > 0:
            await anyio.sleep(wait)
