"""SlackHost: continuum's personas in a Slack workspace, through slack_bolt.

Inbound (Events API over signed HTTP, or Socket Mode): messages in channels, threads and
DMs, app mentions, edits and deletions, reactions, and the ``/continuum`` command become
envelopes and host events; bots' messages are context only, and the app's own posts never
come back (Bolt drops the app's own events). Outbound: each persona posts under its own
name and avatar (``chat:write.customize``) into the thread of the message it answers,
streamed (see :mod:`continuum_slack.sink`). While the room thinks, the person's message
wears a reaction (``thinking_reaction``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import aiohttp
import anyio
from aiohttp import web
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient

from continuum.envelope import (
    Envelope,
    Participant,
    ParticipantKind,
    ReplyTarget,
    TextPart,
    Visibility,
)
from continuum.errors import HostFailed
from continuum.hosts.base import (
    CommandEvent,
    DeleteEvent,
    EditEvent,
    HostAdapter,
    HostCapabilities,
    HostConfig,
    HostServices,
    ReactionEvent,
    ReplySink,
    ReplyStart,
)
from continuum.hosts.seen import SeenIds
from continuum_slack.config import SlackConfig
from continuum_slack.events import (
    clean_text,
    file_notes,
    message_id,
    room_of,
    visibility_of,
    visibility_of_info,
)
from continuum_slack.files import FileFetcher
from continuum_slack.outbox import SlackOutbox
from continuum_slack.payload import malformed
from continuum_slack.sink import SlackReplySink

log = logging.getLogger("continuum.slack")

IGNORED_SUBTYPES = {
    "channel_join",
    "channel_leave",
    "channel_topic",
    "channel_purpose",
    "channel_name",
    "channel_archive",
    "channel_unarchive",
    "group_join",
    "group_leave",
    "pinned_item",
    "unpinned_item",
    "ekm_access_denied",
}


@web.middleware
async def _reject_malformed(request: web.Request, handler: Any) -> web.StreamResponse:
    """A JSON body that is not a Slack event gets 400 and one log line, never a 500."""
    if request.method == "POST" and request.content_type == "application/json":
        problem = malformed(await request.read())
        if problem is not None:
            log.warning("rejected a malformed Slack request: %s", problem)
            return web.json_response({"ok": False, "error": problem}, status=400)
    return await handler(request)


class _NoUnusedTokenNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "will be unused" not in record.getMessage()


class SlackHost(HostAdapter):
    name: ClassVar[str] = "slack"
    capabilities: ClassVar[HostCapabilities] = HostCapabilities(
        threads=True,
        edits=True,
        reactions=True,
        typing=True,
        streaming=True,
        max_message_chars=3900,
        markup="slack_mrkdwn",
        attachments=True,
    )
    config_model: ClassVar[type[HostConfig]] = SlackConfig
    config: SlackConfig

    def __init__(self, services: HostServices, config: HostConfig | None = None) -> None:
        super().__init__(services, config)
        cfg = self.config
        token = cfg.secret("bot_token_env")
        self.client = AsyncWebClient(
            token=token,
            base_url=cfg.api_url or AsyncWebClient.BASE_URL,
            retry_handlers=[
                AsyncConnectionErrorRetryHandler(max_retry_count=2),
                AsyncRateLimitErrorRetryHandler(max_retry_count=5),  # honours Retry-After
                AsyncServerErrorRetryHandler(max_retry_count=2),
            ],
        )
        self.files = FileFetcher(token, cfg.api_url, int(cfg.max_file_mb * 1_000_000))
        http = cfg.mode == "http"
        # Bolt reads SLACK_BOT_TOKEN itself and then warns it is unused beside our client
        logging.getLogger("slack_bolt.AsyncApp").addFilter(_NoUnusedTokenNoise())
        self.app = AsyncApp(
            client=self.client,  # carries the bot token
            signing_secret=cfg.secret("signing_secret_env") if http else None,
            request_verification_enabled=http,  # signature + timestamp, else 401
            process_before_response=False,  # ack within Slack's 3 s, work afterwards
        )
        self.bot_user_id: str | None = None
        self.bot_id: str | None = None  # the app's bot id: posts by it are the personas'
        self.team_id: str | None = None
        self.port: int | None = None
        self.ready = anyio.Event()
        self._seen_events = SeenIds()
        self._seen_messages = SeenIds()
        self._names: dict[str, str] = {}
        self._known_rooms: set[str] = set()
        self._visibility: dict[str, Visibility] = {}  # channel -> as the platform said
        self._thinking: set[tuple[str, str]] = set()  # messages wearing the 👀 now
        self._done_marks = SeenIds()  # messages whose turn ended (no 👀 any more)
        self.outbox = SlackOutbox(self.client, cfg)  # what every reply sink shares
        self._listen()

    # --- transports ------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            info = await self.client.auth_test()
        except SlackApiError as exc:
            raise HostFailed(
                f"Slack refused the bot token ({exc.response.get('error')}): check "
                f"{self.config.bot_token_env} (an xoxb- token of the installed app)"
            ) from None
        except (OSError, aiohttp.ClientError) as exc:
            raise HostFailed(f"cannot reach Slack's Web API: {exc}") from None
        self.bot_user_id, self.team_id = info.get("user_id"), info.get("team_id")
        self.bot_id = info.get("bot_id")
        self.outbox.team_id = self.team_id
        if self.config.mode == "socket":
            await self._run_socket_mode()
        else:
            await self._run_http()

    async def _run_http(self) -> None:
        app = self.app.web_app(path=self.config.path, port=self.config.port)
        app.middlewares.append(_reject_malformed)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise HostFailed(
                f"cannot listen on {self.config.host}:{self.config.port} ({exc.strerror}): "
                "another process has the port; set [hosts.slack] port"
            ) from None
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.config.port
        log.info(
            "Slack Events API on http://%s:%s%s", self.config.host, self.port, self.config.path
        )
        self.ready.set()
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await runner.cleanup()

    async def _run_socket_mode(self) -> None:
        from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

        app_token = self.config.secret("app_token_env")
        try:  # the app token, checked once: the handler would retry a refused one forever
            await self.client.apps_connections_open(app_token=app_token)
        except SlackApiError as exc:
            raise HostFailed(
                f"Slack refused the app token ({exc.response.get('error')}): check "
                f"{self.config.app_token_env} (an xapp- token with connections:write)"
            ) from None
        handler = AsyncSocketModeHandler(self.app, app_token, web_client=self.client)
        await handler.connect_async()
        log.info("Slack Socket Mode connected")
        self.ready.set()
        try:
            await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await handler.close_async()

    async def aclose(self) -> None:
        # stopping while the room thinks: the 👀 comes off (the message is answered after
        # the restart)
        for channel, ts in list(self._thinking):
            with contextlib.suppress(SlackApiError), anyio.move_on_after(2):
                await self.client.reactions_remove(
                    channel=channel, timestamp=ts, name=self.config.thinking_reaction
                )
        self._thinking.clear()
        session = getattr(self.client, "session", None)
        if session is not None and not session.closed:
            await session.close()

    # --- outbound ---------------------------------------------------------------------------

    async def open_reply(self, start: ReplyStart) -> ReplySink:
        return SlackReplySink(self.outbox, start)

    async def close_stale_replies(self, host_message_ids: Sequence[str]) -> None:
        """Streams a crash left open are stopped with a note (Slack would show them as
        still typing); a message posted and edited needs nothing."""
        for host_id in host_message_ids:
            channel, _, ts = host_id.rpartition(":")
            try:
                await self.client.chat_stopStream(
                    channel=channel, ts=ts, markdown_text=" … (interrupted)"
                )
            except SlackApiError as exc:  # not a stream, or already stopped
                log.debug("stale reply %s: %s", host_id, exc.response.get("error"))

    async def typing(self, reply_to: ReplyTarget, persona_id: str | None) -> None:
        """The room is working on a message (its analysis, or a persona's turn): the
        person's message wears a reaction until the turn ends (once per message)."""
        mark = (reply_to.channel, reply_to.message_id or "")
        fresh = mark not in self._thinking and mark[1] not in self._done_marks
        if self.config.thinking_reaction and reply_to.message_id and fresh:
            self._thinking.add(mark)
            try:
                await self.client.reactions_add(
                    channel=reply_to.channel,
                    timestamp=reply_to.message_id,
                    name=self.config.thinking_reaction,
                )
            except SlackApiError as exc:
                if exc.response.get("error") != "already_reacted":
                    log.debug("thinking reaction failed: %s", exc)

    async def _done_thinking(self, reply_to: ReplyTarget, turn: Any) -> None:
        await turn.wait()
        if self.config.thinking_reaction and reply_to.message_id:
            self._thinking.discard((reply_to.channel, reply_to.message_id))
            self._done_marks.add(reply_to.message_id)  # a late typing call adds none
            # never added (no analysis ran) or already gone: fine
            with contextlib.suppress(SlackApiError):
                await self.client.reactions_remove(
                    channel=reply_to.channel,
                    timestamp=reply_to.message_id,
                    name=self.config.thinking_reaction,
                )

    # --- inbound ----------------------------------------------------------------------------

    def _listen(self) -> None:
        app = self.app

        @app.event("message")
        async def on_message(event: dict, body: dict) -> None:
            await self._on_message(event, body)

        @app.event("app_mention")
        async def on_mention(event: dict, body: dict) -> None:
            await self._on_message(event, body)

        @app.event("reaction_added")
        async def on_reaction_added(event: dict, body: dict) -> None:
            await self._on_reaction(event, body, removed=False)

        @app.event("reaction_removed")
        async def on_reaction_removed(event: dict, body: dict) -> None:
            await self._on_reaction(event, body, removed=True)

        @app.command(self.config.command)
        async def on_command(ack: Any, command: dict, respond: Any) -> None:
            await ack()
            text = await self._on_command(command)
            if text:
                await respond(text=text, response_type="ephemeral")

    def _fresh(self, body: dict) -> bool:
        event_id = body.get("event_id")
        return event_id is None or self._seen_events.add(event_id)

    async def name_of(self, user: str) -> str:
        if user not in self._names:
            try:
                info = (await self.client.users_info(user=user))["user"]
                profile = info.get("profile") or {}
                self._names[user] = (
                    profile.get("display_name") or info.get("real_name") or info.get("name") or user
                )
            except SlackApiError:
                self._names[user] = user
        return self._names[user]

    async def visibility(self, channel: str, channel_type: str | None = None) -> Visibility:
        """How public a channel is, as Slack says: the event's ``channel_type`` when it has
        one, else ``conversations.info`` (cached per channel). When Slack cannot say (an
        error, a missing scope), private: a secret stored as private costs a recall, one
        stored as public reaches everyone."""
        known = visibility_of(channel_type)
        if known is not None:
            self._visibility[channel] = known
            return known
        if channel in self._visibility:
            return self._visibility[channel]
        try:
            info = (await self.client.conversations_info(channel=channel)).get("channel") or {}
        except SlackApiError as exc:
            log.warning(
                "conversations.info failed for %s (%s): treating it as private",
                channel,
                exc.response.get("error"),
            )
            return "private"
        self._visibility[channel] = visibility_of_info(info)
        return self._visibility[channel]

    async def _on_message(self, event: dict, body: dict) -> None:
        if not self._fresh(body):
            return
        subtype = event.get("subtype")
        channel = event.get("channel")
        if not channel or subtype in IGNORED_SUBTYPES:
            return
        if subtype == "message_changed":
            edited = event.get("message") or {}
            if edited.get("ts") and not edited.get("bot_id"):
                text = clean_text(edited.get("text", ""), self.bot_user_id, self._names)
                await self.services.submit(
                    EditEvent(
                        host=self.name,
                        room_id=room_of(channel, edited.get("thread_ts"), edited["ts"]),
                        host_message_id=message_id(channel, edited["ts"]),
                        text=text,
                        author=Participant(id=edited.get("user", "unknown"), name="someone"),
                    )
                )
            return
        if subtype == "message_deleted":
            if event.get("deleted_ts"):
                await self.services.submit(
                    DeleteEvent(
                        host=self.name,
                        room_id=channel,
                        host_message_id=message_id(channel, event["deleted_ts"]),
                    )
                )
            return
        ts = event.get("ts")
        if not ts or not self._seen_messages.add(f"{channel}:{ts}"):
            return  # a mention arrives as two events: message and app_mention
        thread_ts = event.get("thread_ts")
        room = room_of(channel, thread_ts, ts)
        visibility = await self.visibility(channel, event.get("channel_type"))
        if room != channel and room not in self._known_rooms:
            await self._thread_context(channel, thread_ts, ts, visibility)
        self._known_rooms.add(room)
        text = clean_text(event.get("text") or "", self.bot_user_id, self._names)
        is_bot = bool(event.get("bot_id")) or subtype == "bot_message"
        media, others = [], event.get("files")
        if not is_bot:  # a person's audio and images reach the persona (a bot's: named)
            media, others = await self.files.fetch(event.get("files"))
        parts = [TextPart(text=t) for t in (text, *file_notes(others)) if t] + media
        if not parts:
            return
        user = event.get("user") or event.get("bot_id") or "unknown"
        author = Participant(
            id=user,
            name=(event.get("username") or "a bot") if is_bot else await self.name_of(user),
            kind=ParticipantKind.BOT if is_bot else ParticipantKind.PERSON,
        )
        # named in the text, else (in a thread) the persona that started the thread
        mentions = self.services.addressed(text, channel=channel, thread=thread_ts)
        reply_to = ReplyTarget(
            host=self.name, channel=channel, thread=thread_ts or ts, message_id=ts
        )
        envelope = Envelope(
            host=self.name,
            room_id=room,
            author=author,
            parts=tuple(parts),
            mentions=mentions,
            reply_to=reply_to,
            host_message_id=message_id(channel, ts),
            visibility=visibility,
        )
        if is_bot:  # other bots are context, never a trigger (cascade policy)
            await self.services.remember_context(envelope)
            return
        turn = await self.services.deliver(envelope)
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._done_thinking, reply_to, turn)

    async def _thread_context(
        self, channel: str, thread_ts: str, ts: str, visibility: Visibility
    ) -> None:
        """A thread is its own room; it starts with the thread so far (the parent first)."""
        try:
            r = await self.client.conversations_replies(channel=channel, ts=thread_ts, limit=20)
        except SlackApiError as exc:
            log.info("no thread context for %s/%s: %s", channel, thread_ts, exc)
            return
        room = room_of(channel, thread_ts, ts)
        for m in r.get("messages", []):
            if m.get("ts") == ts or not m.get("ts"):
                continue
            bot = bool(m.get("bot_id"))
            user = m.get("user") or m.get("bot_id") or "unknown"
            name = m.get("username") or ("a bot" if bot else await self.name_of(user))
            kind = ParticipantKind.PERSON
            if bot:  # a persona's post is ours; another bot named "Maya" is still a bot
                ours = m.get("bot_id") == self.bot_id
                persona = (
                    next((p for p in self.services.personas() if p.name == m.get("username")), None)
                    if ours
                    else None
                )
                kind = ParticipantKind.PERSONA if persona else ParticipantKind.BOT
                user = persona.id if persona else user
            text = clean_text(m.get("text") or "", self.bot_user_id, self._names)
            if not text:
                continue
            await self.services.remember_context(
                Envelope(
                    host=self.name,
                    room_id=room,
                    author=Participant(id=user, name=name, kind=kind),
                    parts=(TextPart(text=text),),
                    reply_to=ReplyTarget(host=self.name, channel=channel, thread=thread_ts),
                    host_message_id=message_id(channel, m["ts"]),
                    visibility=visibility,
                )
            )

    async def _on_reaction(self, event: dict, body: dict, removed: bool) -> None:
        if not self._fresh(body):
            return
        item = event.get("item") or {}
        if item.get("type") != "message" or not item.get("channel") or not item.get("ts"):
            return
        name = event.get("reaction", "").split("::")[0]  # skin tones: "+1::skin-tone-2"
        positive = (
            True
            if name in self.config.positive_reactions
            else False
            if name in self.config.negative_reactions
            else None
        )
        user = event.get("user", "unknown")
        await self.services.submit(
            ReactionEvent(
                host=self.name,
                room_id=item["channel"],
                host_message_id=message_id(item["channel"], item["ts"]),
                reaction=name,
                positive=positive,
                author=Participant(id=user, name=await self.name_of(user)),
                removed=removed,
            )
        )

    async def _on_command(self, command: dict) -> str:
        """``/continuum <verb> [args]``: ``ask <persona> <question>`` addresses a persona;
        every other verb is a runtime command (personas, who, state, invite, remove,
        forget, link, help)."""
        words = (command.get("text") or "").split()
        verb, args = (words[0].lower(), words[1:]) if words else ("help", [])
        user = command.get("user_id", "unknown")
        channel = command.get("channel_id", "")
        author = Participant(id=user, name=await self.name_of(user))  # never the handle
        if verb == "ask":
            personas = self.services.personas()
            target = next(
                (p for p in personas if args and args[0].lower() in (p.id, p.name.lower())), None
            )
            if target is None or len(args) < 2:
                return "Usage: /continuum ask <persona> <question>"
            text = " ".join(args[1:])
            await self.outbox.pace(channel)
            posted = await self.client.chat_postMessage(
                channel=channel, text=f"{author.name} asked {target.name}: {text}"
            )
            ts = posted["ts"]
            envelope = Envelope(
                host=self.name,
                room_id=channel,
                author=author,
                parts=(TextPart(text=text),),
                mentions=(target.id,),
                reply_to=ReplyTarget(host=self.name, channel=channel, thread=ts, message_id=ts),
                visibility=await self.visibility(channel),
            )
            turn = await self.services.deliver(envelope)
            await self._done_thinking(envelope.reply_to, turn)  # the 👀 comes off
            return ""
        result = await self.services.submit(
            CommandEvent(
                host=self.name,
                room_id=channel,
                name=verb,
                args=tuple(args),
                author=author,
                reply_to=ReplyTarget(host=self.name, channel=channel),
            )
        )
        return result.text if result is not None else ""
