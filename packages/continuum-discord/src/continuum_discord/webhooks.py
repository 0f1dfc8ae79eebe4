"""One webhook per parent channel, through which every persona posts as itself.

Discord allows 15 webhooks per channel; continuum needs one per channel (its name and
avatar are set on every execution) and reuses the one it made before (matched by name
and owner) after a restart. Threads post through their parent channel's webhook with
``thread_id``. A webhook an admin deleted is made again once.
"""

from __future__ import annotations

import logging

import anyio
import discord

log = logging.getLogger("continuum.discord")


class NoWebhooks(Exception):
    """The bot may not manage webhooks in a channel (it posts as itself there)."""


class WebhookPool:
    def __init__(self, name: str) -> None:
        self.name = name
        self._hooks: dict[int, discord.Webhook] = {}
        self._locks: dict[int, anyio.Lock] = {}
        self._refused: set[int] = set()

    def ours(self, webhook_id: int | None) -> bool:
        return webhook_id is not None and any(h.id == webhook_id for h in self._hooks.values())

    async def get(self, channel: discord.abc.GuildChannel, bot_id: int | None) -> discord.Webhook:
        """The channel's continuum webhook, found or made (raises NoWebhooks)."""
        if channel.id in self._refused:
            raise NoWebhooks(f"#{channel.name}")
        lock = self._locks.setdefault(channel.id, anyio.Lock())
        async with lock:  # two personas answering at once make one webhook, not two
            hook = self._hooks.get(channel.id)
            if hook is not None:
                return hook
            try:
                existing = await channel.webhooks()  # type: ignore[attr-defined]
                hook = next(
                    (
                        h
                        for h in existing
                        if h.name == self.name
                        and h.token
                        and (h.user is None or bot_id is None or h.user.id == bot_id)
                    ),
                    None,
                )
                if hook is None:
                    hook = await channel.create_webhook(  # type: ignore[attr-defined]
                        name=self.name, reason="continuum personas post through it"
                    )
            except discord.Forbidden:
                self._refused.add(channel.id)
                log.warning(
                    "no Manage Webhooks permission in #%s: personas post as the bot there "
                    "(name in bold) — grant Manage Webhooks to post under their own names",
                    channel.name,
                )
                raise NoWebhooks(f"#{channel.name}") from None
            self._hooks[channel.id] = hook
            return hook

    def forget(self, channel_id: int) -> None:
        """The webhook is gone (deleted on Discord): the next ``get`` makes a new one."""
        self._hooks.pop(channel_id, None)
