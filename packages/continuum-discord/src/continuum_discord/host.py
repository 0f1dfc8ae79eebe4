"""DiscordHost: continuum's personas in Discord, through discord.py.

Inbound (the gateway): messages in text channels, threads and DMs; a message reaches the
personas when it mentions the bot or names a persona, replies to a persona's message, or
is a DM (``listen = "all"``: every message, the room's relevance gate decides); the rest
is the room's context. Other bots' messages and webhooks' posts are context, never a
trigger (so no persona ↔ bot chain can start), our own webhook posts and system messages
are dropped. Reactions feed a persona's reputation, edits and deletions update history,
attachments (images, voice messages) go through the media path, ``/continuum`` is an
application command. After a reconnect, each channel's history since the last message
seen is fetched; what cannot be fetched is reported lost in the log.

Outbound: each persona posts through its channel's webhook under its own name and avatar
(threads: the parent's webhook with ``thread_id``), streamed by edits (see
:mod:`continuum_discord.sink`); the bot account shows typing while a persona renders.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
from collections.abc import Sequence
from typing import Any, ClassVar

import aiohttp
import anyio
import discord
import yarl
from discord import app_commands

from continuum.envelope import (
    AudioPart,
    Envelope,
    ImagePart,
    Participant,
    ParticipantKind,
    ReplyTarget,
    TextPart,
    Visibility,
)
from continuum.errors import ContinuumError, HostFailed
from continuum.hosts.audio import AudioOutput, Ear
from continuum.hosts.base import (
    CommandEvent,
    DeleteEvent,
    EditEvent,
    HostAdapter,
    HostCapabilities,
    HostConfig,
    HostServices,
    PersonaCard,
    ReactionEvent,
    ReplySink,
    ReplyStart,
)
from continuum.hosts.seen import SeenIds
from continuum.media.fetch import MediaFetcher
from continuum_discord.commands import answer, command_group
from continuum_discord.config import DiscordConfig
from continuum_discord.events import (
    SYSTEM_FREE,
    clean_text,
    is_dm,
    mentions_bot,
    parent_of,
    thread_id,
    visibility_of,
)
from continuum_discord.sink import NO_PINGS, DiscordReplySink
from continuum_discord.voice import GuildVoice, ListeningVoiceClient
from continuum_discord.webhooks import NoWebhooks, WebhookPool

log = logging.getLogger("continuum.discord")

INTENTS = discord.Intents(
    guilds=True,
    guild_messages=True,
    dm_messages=True,
    message_content=True,  # privileged: enable it in the developer portal
    guild_reactions=True,
    dm_reactions=True,
    voice_states=True,
)


class _OneLineReconnects(logging.Filter):
    """discord.py logs every reconnect attempt with a full traceback: one line is enough
    (which error, when the next try is)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.getMessage().startswith("Attempting a reconnect"):
            exc = record.exc_info[1]
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc})"
            record.args, record.exc_info, record.exc_text = (), None, None
        return True


_QUIET = _OneLineReconnects()


class DiscordHost(HostAdapter):
    name: ClassVar[str] = "discord"
    capabilities: ClassVar[HostCapabilities] = HostCapabilities(
        threads=True,
        edits=True,
        reactions=True,
        typing=True,
        streaming=True,
        max_message_chars=2000,
        markup="discord_markdown",
        attachments=True,
        audio_in=True,  # in the voice channel the bot joined (speaks_in)
        audio_out=True,
    )
    config_model: ClassVar[type[HostConfig]] = DiscordConfig
    config: DiscordConfig

    def __init__(self, services: HostServices, config: HostConfig | None = None) -> None:
        super().__init__(services, config)
        cfg = self.config
        self.token = cfg.secret("token_env")
        if cfg.api_url:  # where Discord's REST API is (webhooks and interactions too)
            discord.http.Route.BASE = cfg.api_url.rstrip("/")
        if cfg.gateway_url:
            discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(cfg.gateway_url)
        self.client = discord.Client(intents=INTENTS, max_messages=2000)
        if _QUIET not in logging.getLogger("discord.client").filters:
            logging.getLogger("discord.client").addFilter(_QUIET)
        self.tree = app_commands.CommandTree(self.client)
        self.tree.add_command(command_group(cfg.command, self._on_command))
        local = {h for h in cfg.cdn_hosts if h.startswith("127.0.0.1") or h == "localhost"}
        self.files = MediaFetcher(
            set(cfg.cdn_hosts), int(cfg.max_file_mb * 1_000_000), plain_http_hosts=local
        )
        self.webhooks = WebhookPool(cfg.webhook_name)
        self.ready = anyio.Event()
        self._seen = SeenIds()
        self._last_seen: dict[int, int] = {}  # channel id -> newest message id seen
        self._known_rooms: set[str] = set()
        self._synced: set[int] = set()
        self._connected_once = False
        self._dm_persona: dict[int, str] = {}  # DM channel -> the persona last talked to
        self.voice: dict[int, GuildVoice] = {}  # guild id -> the bot's voice connection
        self._listen()

    # --- the connection ----------------------------------------------------------------------

    async def run(self) -> None:
        if self.config.ca_file:
            context = ssl.create_default_context()
            try:
                context.load_verify_locations(self.config.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise HostFailed(f"[hosts.discord] ca_file {self.config.ca_file}: {exc}") from None
            self.client.http.connector = aiohttp.TCPConnector(limit=0, ssl=context)
        try:
            await self.client.login(self.token)
        except discord.LoginFailure:
            raise HostFailed(
                f"Discord refused the bot token: check {self.config.token_env} (the bot's "
                "token from the developer portal, Bot → Reset Token)"
            ) from None
        except (OSError, aiohttp.ClientError) as exc:
            raise HostFailed(f"cannot reach Discord's API: {exc}") from None
        try:
            await self.client.connect(reconnect=True)
        except discord.PrivilegedIntentsRequired:
            raise HostFailed(
                "Discord refused the Message Content intent: enable it for the bot in the "
                "developer portal (Bot → Privileged Gateway Intents)"
            ) from None
        finally:
            with anyio.CancelScope(shield=True):
                await self.client.close()

    async def aclose(self) -> None:
        for voice in list(self.voice.values()):
            with contextlib.suppress(Exception):
                await voice.disconnect()
        self.voice.clear()
        if not self.client.is_closed():
            await self.client.close()

    @property
    def bot_id(self) -> int | None:
        return self.client.user.id if self.client.user is not None else None

    def _listen(self) -> None:
        client = self.client

        @client.event
        async def on_ready() -> None:
            await self._on_ready()

        @client.event
        async def on_resumed() -> None:
            await self._catch_up("resume")

        @client.event
        async def on_message(message: discord.Message) -> None:
            await self._on_message(message)

        @client.event
        async def on_raw_reaction_add(payload: discord.RawReactionActionEvent) -> None:
            await self._on_reaction(payload, removed=False)

        @client.event
        async def on_raw_reaction_remove(payload: discord.RawReactionActionEvent) -> None:
            await self._on_reaction(payload, removed=True)

        @client.event
        async def on_raw_message_edit(payload: discord.RawMessageUpdateEvent) -> None:
            await self._on_edit(payload)

        @client.event
        async def on_raw_message_delete(payload: discord.RawMessageDeleteEvent) -> None:
            await self.services.submit(
                DeleteEvent(
                    host=self.name,
                    room_id=str(payload.channel_id),
                    host_message_id=str(payload.message_id),
                )
            )

    async def _on_ready(self) -> None:
        for guild in self.client.guilds:
            wanted = not self.config.guild_ids or guild.id in self.config.guild_ids
            if wanted and guild.id not in self._synced:
                self.tree.copy_global_to(guild=guild)
                try:
                    await self.tree.sync(guild=guild)
                    self._synced.add(guild.id)
                except discord.HTTPException as exc:
                    log.warning(
                        "could not register /%s in %s (%s): invite the bot with the "
                        "applications.commands scope",
                        self.config.command,
                        guild.name,
                        exc,
                    )
        for channel_id in self.config.voice_channels:
            channel = self.client.get_channel(channel_id)
            if isinstance(channel, discord.VoiceChannel | discord.StageChannel):
                try:
                    await self.join(channel)
                except (ContinuumError, discord.DiscordException, TimeoutError) as exc:
                    log.warning("could not join voice channel %s: %s", channel_id, exc)
            else:
                log.warning("[hosts.discord] voice_channels: %s is not a voice channel", channel_id)
        if self._connected_once:
            await self._catch_up("new session")
        self._connected_once = True
        log.info("Discord connected as %s (%d guilds)", self.client.user, len(self.client.guilds))
        self.ready.set()

    async def _catch_up(self, why: str) -> None:
        """Messages sent while the gateway was away: each channel's history since the last
        one seen, oldest first (a message already handled is skipped)."""
        limit = self.config.backfill_limit
        for channel_id, last in list(self._last_seen.items()):
            channel = self.client.get_channel(channel_id)
            try:
                if channel is None:
                    channel = await self.client.fetch_channel(channel_id)
                missed = [
                    m
                    async for m in channel.history(  # type: ignore[union-attr]
                        after=discord.Object(last), limit=limit, oldest_first=True
                    )
                ]
            except (discord.HTTPException, AttributeError) as exc:
                log.warning(
                    "after the %s, messages in channel %s since %s could not be fetched "
                    "and are lost to the personas: %s",
                    why,
                    channel_id,
                    last,
                    exc,
                )
                continue
            if limit and len(missed) >= limit:
                log.warning(
                    "more than %d messages in channel %s during the outage: older ones are "
                    "not answered (raise [hosts.discord] backfill_limit)",
                    limit,
                    channel_id,
                )
            for message in missed:
                await self._on_message(message)

    # --- outbound ------------------------------------------------------------------------------

    async def _channel(self, channel_id: str) -> Any:
        cid = int(channel_id)
        channel = self.client.get_channel(cid)
        if channel is None:
            channel = await self.client.fetch_channel(cid)
        return channel

    async def open_reply(self, start: ReplyStart) -> ReplySink:
        target = start.reply_to
        channel = await self._channel(target.thread or target.channel)
        parent = parent_of(channel)
        webhook: discord.Webhook | None = None
        if not is_dm(channel):
            with contextlib.suppress(NoWebhooks):
                webhook = await self.webhooks.get(parent, self.bot_id)  # type: ignore[arg-type]

        async def remake() -> discord.Webhook | None:
            self.webhooks.forget(parent.id)  # type: ignore[attr-defined]
            with contextlib.suppress(NoWebhooks):
                return await self.webhooks.get(parent, self.bot_id)  # type: ignore[arg-type]
            return None

        thread = channel if isinstance(channel, discord.Thread) else None
        return DiscordReplySink(
            start,
            webhook=webhook,
            channel=channel,
            thread=thread,
            name_prefix=len(self.services.personas()) > 1,
            max_chars=self.config.max_message_chars,
            edit_every_s=self.config.edit_every_s,
            on_gone=remake,
        )

    async def typing(self, reply_to: ReplyTarget, persona_id: str | None) -> None:
        """The bot account types while a persona renders (Discord shows it ~10 s or until
        the bot posts)."""
        if persona_id is None:
            return
        try:
            channel = await self._channel(reply_to.thread or reply_to.channel)
            await channel.typing()
        except discord.HTTPException as exc:
            log.debug("typing failed: %s", exc)

    # --- voice ---------------------------------------------------------------------------------

    def speaks_in(self, room_id: str) -> bool:
        """Replies are spoken in the voice channel the bot joined (and written in its chat);
        everywhere else they are text."""
        return any(str(v.channel_id) == room_id for v in self.voice.values())

    async def open_audio(self, start: ReplyStart) -> AudioOutput:
        room = start.reply_to.channel
        voice = next((v for v in self.voice.values() if str(v.channel_id) == room), None)
        if voice is None or not voice.connected:
            raise ContinuumError(f"not in voice channel {room}")
        return voice.open(start)

    async def join(self, channel: discord.VoiceChannel | discord.StageChannel) -> GuildVoice:
        """Join a voice channel: personas speak there and hear the people in it."""
        current = self.voice.get(channel.guild.id)
        if current is not None and current.connected:
            if current.channel_id == channel.id:
                return current
            await current.disconnect()

        async def ear_for(user_id: int) -> Ear | None:
            member = channel.guild.get_member(user_id)
            if member is None:
                with contextlib.suppress(discord.HTTPException):
                    member = await channel.guild.fetch_member(user_id)
            if member is not None and member.bot:
                return None  # other bots are not listened to
            name = member.display_name if member is not None else "someone"
            return await self.services.ear(
                str(channel.id),
                Participant(id=str(user_id), name=name),
                reply_to=ReplyTarget(host=self.name, channel=str(channel.id)),
                visibility=visibility_of(channel),
            )

        client = await channel.connect(
            cls=lambda client, ch: ListeningVoiceClient(client, ch, ear_for),  # type: ignore[arg-type,return-value]
            self_deaf=False,
            timeout=30.0,
        )
        assert isinstance(client, ListeningVoiceClient)
        client.start_listening()
        voice = self.voice[channel.guild.id] = GuildVoice(client)
        log.info("joined voice channel %s", channel.name)
        return voice

    async def leave(self, guild_id: int) -> bool:
        voice = self.voice.pop(guild_id, None)
        if voice is None:
            return False
        await voice.disconnect()
        return True

    # --- inbound -------------------------------------------------------------------------------

    def _persona_card(self, webhook_username: str | None) -> PersonaCard | None:
        return next(
            (
                p
                for p in self.services.personas()
                if webhook_username in (p.name, p.name.replace("\u200a", ""))
            ),
            None,
        )

    async def _media(self, message: discord.Message) -> tuple[list, list[str]]:
        """(media parts, notes for files left as names)."""
        parts: list[AudioPart | ImagePart] = []
        notes: list[str] = []
        for a in message.attachments:
            mime = (a.content_type or "").split(";")[0]
            kind = (
                "image"
                if mime.startswith("image/")
                else "audio"
                if mime.startswith("audio/")
                else None
            )
            part = None
            if kind is not None:
                part = await self.files.part(a.url, kind, mime, a.size)
            if part is None:
                notes.append(f"(shared a file: {a.filename})")
            else:
                parts.append(part)
        return parts, notes

    async def _on_message(self, message: discord.Message) -> None:
        if not self._seen.add(message.id):
            return  # a resume replay or a backfill overlap
        channel = message.channel
        self._last_seen[channel.id] = max(self._last_seen.get(channel.id, 0), message.id)
        if message.type not in SYSTEM_FREE:
            return  # joins, pins, boosts, thread-created notices
        if message.author.id == self.bot_id or self.webhooks.ours(message.webhook_id):
            return  # our own posts are already in history
        dm = is_dm(channel)
        room = str(channel.id)
        parent = parent_of(channel)
        thread = thread_id(channel)
        visibility = visibility_of(channel)
        if thread is not None and room not in self._known_rooms:
            await self._thread_context(channel, visibility)  # type: ignore[arg-type]
        self._known_rooms.add(room)
        is_bot = message.author.bot or message.webhook_id is not None
        text = clean_text(message, self.bot_id)
        media: list = []
        notes = [f"(shared a file: {a.filename})" for a in message.attachments]
        if not is_bot:  # a person's images and voice messages reach the persona
            media, notes = await self._media(message)
        parts = [TextPart(text=t) for t in (text, *notes) if t] + media
        if not parts:
            return
        author = Participant(
            id=str(message.author.id),
            name=message.author.display_name,
            kind=ParticipantKind.BOT if is_bot else ParticipantKind.PERSON,
        )
        replying_to = (
            str(message.reference.message_id)
            if message.reference is not None and message.reference.message_id
            else thread  # a thread started from a persona's message speaks to it
        )
        mentions = self.services.addressed(
            text,
            channel=str(parent.id),
            thread=thread,
            replying_to=replying_to,  # type: ignore[attr-defined]
        )
        if dm:
            mentions = self._dm_addressee(channel.id, mentions)
        reply_to = ReplyTarget(
            host=self.name,
            channel=str(parent.id),  # type: ignore[attr-defined]
            thread=thread,
            message_id=str(message.id),
        )
        envelope = Envelope(
            host=self.name,
            room_id=room,
            author=author,
            parts=tuple(parts),
            mentions=mentions,
            reply_to=reply_to,
            host_message_id=str(message.id),
            visibility=visibility,
        )
        addressed = dm or bool(mentions) or mentions_bot(message, self.bot_id)
        if is_bot or not (addressed or self.config.listen == "all"):
            await self.services.remember_context(envelope)
            return
        await self.services.deliver(envelope)

    def _dm_addressee(self, channel_id: int, named: tuple[str, ...]) -> tuple[str, ...]:
        """A DM is a conversation with one persona: the one named, else the one talked to
        last in this DM, else ``dm_persona`` (the first persona)."""
        personas = [p.id for p in self.services.personas()]
        if named:
            self._dm_persona[channel_id] = named[0]
        chosen = self._dm_persona.get(channel_id) or self.config.dm_persona or personas[0]
        return (chosen,) if chosen in personas else (personas[0],)

    async def _thread_context(self, thread: discord.Thread, visibility: Visibility) -> None:
        """A thread is its own room; it starts with the message it was opened from."""
        parent = thread.parent
        if parent is None:
            return
        try:
            starter = thread.starter_message or await parent.fetch_message(thread.id)  # type: ignore[union-attr]
        except discord.HTTPException:
            return  # a thread not started from a message
        text = clean_text(starter, self.bot_id)
        if not text:
            return
        # a persona's post came through our webhook; another webhook named "Maya" is not her
        ours = self.webhooks.ours(starter.webhook_id)
        persona = self._persona_card(starter.author.name) if ours else None
        kind = (
            ParticipantKind.PERSONA
            if persona
            else ParticipantKind.BOT
            if starter.author.bot
            else ParticipantKind.PERSON
        )
        await self.services.remember_context(
            Envelope(
                host=self.name,
                room_id=str(thread.id),
                author=Participant(
                    id=persona.id if persona else str(starter.author.id),
                    name=persona.name if persona else starter.author.display_name,
                    kind=kind,
                ),
                parts=(TextPart(text=text),),
                reply_to=ReplyTarget(host=self.name, channel=str(parent.id), thread=str(thread.id)),
                visibility=visibility,
            )
        )

    async def _on_reaction(self, payload: discord.RawReactionActionEvent, removed: bool) -> None:
        if payload.user_id == self.bot_id:
            return
        name = payload.emoji.name or ""
        positive = (
            True
            if name in self.config.positive_reactions
            else False
            if name in self.config.negative_reactions
            else None
        )
        who = payload.member or self.client.get_user(payload.user_id)
        await self.services.submit(
            ReactionEvent(
                host=self.name,
                room_id=str(payload.channel_id),
                host_message_id=str(payload.message_id),
                reaction=name,
                positive=positive,
                author=Participant(
                    id=str(payload.user_id),
                    name=who.display_name if who is not None else "someone",
                ),
                removed=removed,
            )
        )

    async def _on_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        data = payload.data
        author = data.get("author") or {}
        if "content" not in data or author.get("bot") or data.get("webhook_id"):
            return  # an embed unfurled, or a bot's / our own edit
        await self.services.submit(
            EditEvent(
                host=self.name,
                room_id=str(payload.channel_id),
                host_message_id=str(payload.message_id),
                text=data.get("content") or "",
                author=Participant(
                    id=str(author.get("id", "unknown")),
                    name=author.get("global_name") or author.get("username") or "someone",
                ),
            )
        )

    async def _on_command(
        self, interaction: discord.Interaction, verb: str, args: tuple[str, ...]
    ) -> None:
        user = interaction.user
        author = Participant(id=str(user.id), name=user.display_name)
        channel = interaction.channel
        room = str(interaction.channel_id)
        if verb == "ask":
            await self._ask(interaction, author, args)
            return
        if verb in ("join", "leave"):
            await self._voice_command(interaction, verb)
            return
        result = await self.services.submit(
            CommandEvent(
                host=self.name,
                room_id=room,
                name=verb,
                args=args,
                author=author,
                reply_to=ReplyTarget(
                    host=self.name,
                    channel=str(parent_of(channel).id) if channel is not None else room,  # type: ignore[attr-defined]
                    thread=thread_id(channel),
                ),
            )
        )
        await answer(interaction, result.text if result is not None else "Done.")

    async def _voice_command(self, interaction: discord.Interaction, verb: str) -> None:
        guild = interaction.guild
        if guild is None:
            await answer(interaction, "Voice works in a server's voice channels.")
            return
        if verb == "leave":
            left = await self.leave(guild.id)
            await answer(interaction, "Left the voice channel." if left else "Not in voice.")
            return
        state = getattr(interaction.user, "voice", None)
        channel = getattr(state, "channel", None)
        if channel is None:
            await answer(interaction, "Join a voice channel first; the personas follow you.")
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            await self.join(channel)
        except (ContinuumError, discord.DiscordException, TimeoutError) as exc:
            await answer(interaction, f"Could not join {channel.name}: {exc}")
            return
        await answer(interaction, f"Joined {channel.name}: the personas hear and answer there.")

    async def _ask(
        self, interaction: discord.Interaction, author: Participant, args: tuple[str, ...]
    ) -> None:
        wanted, question = args[0].strip().lower(), args[1].strip()
        target = next(
            (p for p in self.services.personas() if wanted in (p.id, p.name.lower())), None
        )
        if target is None or not question:
            names = ", ".join(p.name for p in self.services.personas())
            await answer(interaction, f"Ask whom? The personas here: {names}.")
            return
        channel = interaction.channel
        if channel is None:
            await answer(interaction, "This command works in a channel, a thread or a DM.")
            return
        # the question is posted like a message (public where the channel is), the anchor
        # the persona answers; its visibility is the channel's, never assumed public
        await answer(
            interaction,
            f"**{author.name}** asked **{target.name}**: {question}",
            ephemeral=False,
            allowed_mentions=NO_PINGS,
        )
        posted = await interaction.original_response()
        self._seen.add(posted.id)
        parent = parent_of(channel)
        await self.services.deliver(
            Envelope(
                host=self.name,
                room_id=str(channel.id),
                author=author,
                parts=(TextPart(text=question),),
                mentions=(target.id,),
                reply_to=ReplyTarget(
                    host=self.name,
                    channel=str(parent.id),  # type: ignore[attr-defined]
                    thread=thread_id(channel),
                    message_id=str(posted.id),
                ),
                host_message_id=str(posted.id),
                visibility=visibility_of(channel),
            )
        )

    async def close_stale_replies(self, host_message_ids: Sequence[str]) -> None:
        """A reply a crash left half-written stays as it is on Discord (an edited message
        needs no closing); the message it answered is answered again by the core."""
        if host_message_ids:
            log.info("%d replies were cut short by a restart", len(host_message_ids))
