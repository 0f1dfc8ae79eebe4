"""A local Discord for the tests: the gateway (a websocket speaking Discord's gateway
protocol: HELLO, IDENTIFY → READY + GUILD_CREATE, heartbeats, RESUME, INVALID_SESSION,
dispatches) and the REST API discord.py calls (users, channels, messages, webhooks,
application commands, interaction callbacks, a CDN for attachments) on 127.0.0.1.

discord.py runs unpatched against it: the host is pointed here by its ``api_url`` and
``gateway_url`` settings. Every REST answer carries Discord's ``X-RateLimit-*`` headers;
a bucket that runs dry answers a real 429 (``retry_after`` in the body and the
``Retry-After`` header), and a test can force the next N answers of a route to be 429s.
Webhook executions and edits are recorded with their query (``thread_id``, ``wait``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

TOKEN = "test-bot-token.discord"
BOT_ID = 900
APP_ID = 900
GUILD_ID = 100
GENERAL = 200  # a public text channel
SECRET = 201  # a private one (@everyone cannot view it)
VOICE = 202  # a voice channel
THREAD = 300  # a public thread in #general, started from Leo's message (same id)
SAM = 1001
LEO = 1002
OTHER_BOT = 1500
DM_SAM = 400  # Sam's DM channel with the bot

USERS = {
    SAM: {"username": "sam", "global_name": "Sam"},
    LEO: {"username": "leo", "global_name": "Leo"},
    OTHER_BOT: {"username": "otherbot", "global_name": "Other Bot", "bot": True},
    BOT_ID: {"username": "continuum", "global_name": None, "bot": True},
}
_snowflakes = itertools.count(10_000_000)


def snowflake() -> str:
    return str(next(_snowflakes))


def user(uid: int) -> dict:
    info = USERS[uid]
    return {
        "id": str(uid),
        "username": info["username"],
        "global_name": info.get("global_name"),
        "discriminator": "0",
        "avatar": None,
        "bot": info.get("bot", False),
        "public_flags": 0,
    }


def member(uid: int) -> dict:
    return {
        "user": user(uid),
        "roles": [],
        "joined_at": "2026-01-01T00:00:00+00:00",
        "deaf": False,
        "mute": False,
        "flags": 0,
        "nick": None,
    }


def channel(cid: int) -> dict:
    if cid == DM_SAM:
        return {"id": str(DM_SAM), "type": 1, "recipients": [user(SAM)], "last_message_id": None}
    if cid == THREAD:
        return {
            "id": str(THREAD),
            "type": 11,
            "guild_id": str(GUILD_ID),
            "parent_id": str(GENERAL),
            "name": "perf questions",
            "owner_id": str(SAM),
            "message_count": 1,
            "member_count": 1,
            "rate_limit_per_user": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": 1440,
                "archive_timestamp": "2026-01-01T00:00:00+00:00",
                "locked": False,
            },
        }
    if cid == VOICE:
        return {
            "id": str(VOICE),
            "type": 2,
            "guild_id": str(GUILD_ID),
            "name": "voice",
            "position": 1,
            "permission_overwrites": [],
            "nsfw": False,
            "parent_id": None,
            "bitrate": 64000,
            "user_limit": 0,
            "rtc_region": None,
            "last_message_id": None,
            "rate_limit_per_user": 0,
        }
    overwrites = []
    if cid == SECRET:  # @everyone (the role whose id is the guild's) may not view it
        overwrites = [{"id": str(GUILD_ID), "type": 0, "allow": "0", "deny": str(1 << 10)}]
    return {
        "id": str(cid),
        "type": 0,
        "guild_id": str(GUILD_ID),
        "name": {GENERAL: "general", SECRET: "secret"}[cid],
        "position": 0,
        "permission_overwrites": overwrites,
        "nsfw": False,
        "parent_id": None,
        "topic": None,
        "last_message_id": None,
        "rate_limit_per_user": 0,
    }


def guild() -> dict:
    everyone_perms = str((1 << 10) | (1 << 11) | (1 << 16) | (1 << 6))
    return {
        "id": str(GUILD_ID),
        "name": "Test Guild",
        "icon": None,
        "owner_id": str(SAM),
        "unavailable": False,
        "member_count": 4,
        "large": False,
        "features": [],
        "roles": [
            {
                "id": str(GUILD_ID),
                "name": "@everyone",
                "permissions": everyone_perms,
                "position": 0,
                "color": 0,
                "hoist": False,
                "managed": False,
                "mentionable": False,
                "flags": 0,
            },
            {  # the bot's managed role: everything it needs
                "id": "150",
                "name": "continuum",
                "permissions": str((1 << 41) - 1),
                "position": 1,
                "color": 0,
                "hoist": False,
                "managed": True,
                "mentionable": False,
                "flags": 0,
                "tags": {"bot_id": str(BOT_ID)},
            },
        ],
        "emojis": [],
        "stickers": [],
        "channels": [channel(GENERAL), channel(SECRET), channel(VOICE)],
        "threads": [channel(THREAD)],
        "members": [member(SAM), member(LEO), {**member(BOT_ID), "roles": ["150"]}],
        "voice_states": [],
        "presences": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "joined_at": "2026-01-01T00:00:00+00:00",
        "premium_tier": 0,
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "system_channel_flags": 0,
        "preferred_locale": "en-US",
    }


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)


class _Bucket:
    """Discord's per-route rate limit: ``limit`` calls per ``per`` seconds."""

    def __init__(self, limit: int, per: float) -> None:
        self.limit, self.per = limit, per
        self.window_start = 0.0
        self.used = 0

    def take(self) -> tuple[bool, int, float]:
        now = time.monotonic()
        if now - self.window_start >= self.per:
            self.window_start, self.used = now, 0
        reset_after = self.per - (now - self.window_start)
        if self.used >= self.limit:
            return False, 0, reset_after
        self.used += 1
        return True, self.limit - self.used, reset_after


class DiscordPeer:
    def __init__(self, webhook_limit: tuple[int, float] = (5, 2.0)) -> None:
        self.calls: list[Call] = []
        self.messages: dict[str, dict] = {}  # message id -> message (as the API has it)
        self.webhooks: dict[str, dict] = {}
        self.commands: dict[str, list[dict]] = {}  # guild id -> registered commands
        self.files: dict[str, bytes] = {}
        self.ws: web.WebSocketResponse | None = None
        self.connections = 0
        self.identified = asyncio.Event()
        self.resumes = 0
        self.seq = 0
        self.sent: list[tuple[int, dict]] = []  # (seq, dispatch) for RESUME replays
        self.replay_on_resume = True
        self.invalidate_next_resume = False
        self.session_id = "session-1"
        self.webhook_limit = webhook_limit
        self.buckets: dict[str, _Bucket] = {}
        self.forced_429: dict[str, tuple[int, float]] = {}  # route key -> (count, retry_after)
        self.url = ""
        self._runner: web.AppRunner | None = None
        self.voice: Any = None  # a VoicePeer, when a test plays the voice server
        self.echo = True

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> DiscordPeer:
        # the thread's starter message: a thread opened from a message shares its id
        starter = self.message(LEO, "Anyone know why our p99 latency spiked overnight?")
        del self.messages[starter["id"]]
        starter["id"] = str(THREAD)
        self.messages[str(THREAD)] = starter
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway)
        app.router.add_route("*", "/api/v10/{tail:.*}", self._api)
        app.router.add_get("/attachments/{name}", self._cdn)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def settings(self) -> dict[str, Any]:
        """The ``[hosts.discord]`` table that points discord.py here."""
        return {
            "api_url": f"{self.url}/api/v10",
            "gateway_url": f"ws://{self.url.removeprefix('http://')}/gateway",
            "cdn_hosts": [self.url.removeprefix("http://")],
        }

    # --- the gateway --------------------------------------------------------------------------

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.ws = ws
        self.connections += 1
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        async for msg in ws:
            if msg.type != WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            op, d = data.get("op"), data.get("d")
            if op == 1:
                await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
            elif op == 2:
                assert d["token"] == TOKEN, "IDENTIFY with the wrong token"
                self.intents = d.get("intents")
                self.session_id = f"session-{self.connections}"
                self.sent.clear()
                await self._ready(ws)
            elif op == 6:
                await self._resume(ws, d)
            elif op == 4 and self.voice is not None:
                await self.voice.voice_state_update(self, d)
        if self.ws is ws:
            self.ws = None
        return ws

    async def _ready(self, ws: web.WebSocketResponse) -> None:
        await self._send(
            ws,
            "READY",
            {
                "v": 10,
                "user": user(BOT_ID),
                "guilds": [{"id": str(GUILD_ID), "unavailable": True}],
                "session_id": self.session_id,
                "resume_gateway_url": self.settings["gateway_url"],
                "application": {"id": str(APP_ID), "flags": 0},
                "private_channels": [],
                "relationships": [],
            },
        )
        await self._send(ws, "GUILD_CREATE", guild())
        self.identified.set()

    async def _resume(self, ws: web.WebSocketResponse, d: dict) -> None:
        self.resumes += 1
        if self.invalidate_next_resume or d.get("session_id") != self.session_id:
            self.invalidate_next_resume = False
            await ws.send_json({"op": 9, "d": False, "s": None, "t": None})
            return
        if self.replay_on_resume:
            for seq, payload in list(self.sent):
                if seq > (d.get("seq") or 0):
                    await ws.send_json(payload)
        await self._send(ws, "RESUMED", {})

    async def _send(self, ws: web.WebSocketResponse, event: str, data: dict) -> None:
        self.seq += 1
        payload = {"op": 0, "t": event, "s": self.seq, "d": data}
        self.sent.append((self.seq, payload))
        await ws.send_json(payload)

    async def dispatch(self, event: str, data: dict) -> None:
        """Send a gateway event now (it is kept for a RESUME replay); with no client
        connected it is only kept (a real outage: what the client must catch up on)."""
        if self.ws is None or self.ws.closed:
            self.seq += 1
            self.sent.append((self.seq, {"op": 0, "t": event, "s": self.seq, "d": data}))
            return
        await self._send(self.ws, event, data)

    async def drop(self, code: int = 4000) -> None:
        """Close the client's gateway connection (it reconnects and resumes)."""
        self.identified.clear()
        if self.ws is not None:
            ws, self.ws = self.ws, None
            await ws.close(code=code, message=b"peer dropped the connection")

    # --- people's messages ---------------------------------------------------------------------

    def message(
        self,
        author: int,
        content: str,
        channel_id: int = GENERAL,
        *,
        mentions: tuple[int, ...] = (),
        reply_to: str | None = None,
        attachments: tuple[dict, ...] = (),
        webhook_id: str | None = None,
        kind: int = 0,
        username: str | None = None,
    ) -> dict:
        """A message as Discord stores it (and sends it in MESSAGE_CREATE)."""
        mid = snowflake()
        data: dict[str, Any] = {
            "id": mid,
            "channel_id": str(channel_id),
            "author": user(author)
            if webhook_id is None
            else {
                "id": webhook_id,
                "username": username or "hook",
                "avatar": None,
                "bot": True,
                "discriminator": "0000",
            },
            "content": content,
            "timestamp": "2026-12-03T10:00:00+00:00",
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": "@everyone" in content,
            "mentions": [user(u) for u in mentions],
            "mention_roles": [],
            "attachments": list(attachments),
            "embeds": [],
            "pinned": False,
            "type": 19 if reply_to else kind,
            "flags": 0,
            "components": [],
        }
        if webhook_id is not None:
            data["webhook_id"] = webhook_id
        if channel_id != DM_SAM:
            data["guild_id"] = str(GUILD_ID)
            if webhook_id is None:
                data["member"] = {k: v for k, v in member(author).items() if k != "user"}
        if reply_to is not None:
            data["message_reference"] = {
                "type": 0,
                "message_id": reply_to,
                "channel_id": str(channel_id),
                "guild_id": str(GUILD_ID),
            }
            data["referenced_message"] = self.messages.get(reply_to)
        self.messages[mid] = data
        return data

    async def say(self, author: int, content: str, channel_id: int = GENERAL, **kw: Any) -> dict:
        data = self.message(author, content, channel_id, **kw)
        await self.dispatch("MESSAGE_CREATE", data)
        return data

    def attachment(self, name: str, data: bytes, content_type: str, **extra: Any) -> dict:
        aid = snowflake()
        self.files[name] = data
        url = f"{self.url}/attachments/{name}"
        return {
            "id": aid,
            "filename": name,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
            **extra,
        }

    async def react(self, author: int, message_id: str, emoji: str, removed: bool = False) -> None:
        m = self.messages[message_id]
        await self.dispatch(
            "MESSAGE_REACTION_REMOVE" if removed else "MESSAGE_REACTION_ADD",
            {
                "user_id": str(author),
                "channel_id": m["channel_id"],
                "message_id": message_id,
                "guild_id": str(GUILD_ID),
                "emoji": {"id": None, "name": emoji},
                "burst": False,
                "type": 0,
                **({} if removed else {"member": member(author)}),
            },
        )

    async def interaction(
        self, author: int, name: str, sub: str, channel_id: int = GENERAL, **options: str
    ) -> dict:
        """A slash command as Discord sends it (INTERACTION_CREATE)."""
        registered = {c["name"]: c for c in self.commands.get(str(GUILD_ID), [])}
        command = registered[name]
        data = {
            "id": snowflake(),
            "application_id": str(APP_ID),
            "type": 2,
            "token": f"itoken-{snowflake()}",
            "version": 1,
            "guild_id": str(GUILD_ID),
            "channel_id": str(channel_id),
            "channel": channel(channel_id),
            "member": {**member(author), "permissions": str((1 << 41) - 1)},
            "app_permissions": str((1 << 41) - 1),
            "locale": "en-US",
            "guild_locale": "en-US",
            "attachment_size_limit": 26214400,
            "entitlements": [],
            "authorizing_integration_owners": {"0": str(GUILD_ID)},
            "context": 0,
            "data": {
                "id": command["id"],
                "name": name,
                "type": 1,
                "guild_id": str(GUILD_ID),
                "options": [
                    {
                        "name": sub,
                        "type": 1,
                        "options": [{"name": k, "type": 3, "value": v} for k, v in options.items()],
                    }
                ],
            },
        }
        await self.dispatch("INTERACTION_CREATE", data)
        return data

    async def join_voice(self, author: int, channel_id: int | None) -> None:
        """A person joins (or, with None, leaves) a voice channel."""
        await self.dispatch(
            "VOICE_STATE_UPDATE",
            {
                "guild_id": str(GUILD_ID),
                "channel_id": str(channel_id) if channel_id else None,
                "user_id": str(author),
                "session_id": f"vs-{author}",
                "member": member(author),
                "deaf": False,
                "mute": False,
                "self_deaf": False,
                "self_mute": False,
                "self_video": False,
                "suppress": False,
                "request_to_speak_timestamp": None,
            },
        )

    # --- what the bot did -------------------------------------------------------------------------

    def of(self, method: str, prefix: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.path.startswith(prefix)]

    def executions(self) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method == "POST"
            and c.path.startswith("/webhooks/")
            and c.path.count("/") == 3
            and not c.path.startswith(f"/webhooks/{APP_ID}/")
            and not c.path.endswith("(429)")
        ]

    def webhook_edits(self) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method == "PATCH"
            and c.path.startswith("/webhooks/")
            and "/messages/" in c.path
            and "@original" not in c.path
            and not c.path.endswith("(429)")
        ]

    def force_429(self, key: str, count: int, retry_after: float) -> None:
        """The next ``count`` calls whose route key starts with ``key`` ("PATCH /webhooks")
        answer 429 with ``retry_after``."""
        self.forced_429[key] = (count, retry_after)

    # --- the REST API ---------------------------------------------------------------------

    def _json(self, data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
        # discord.py parses JSON only when the Content-Type is exactly application/json
        return web.Response(
            body=json.dumps(data).encode(),
            status=status,
            headers={"Content-Type": "application/json", **(headers or {})},
        )

    def _limits(self, key: str) -> tuple[bool, dict[str, str], float]:
        """(allowed, X-RateLimit-* headers, retry_after)."""
        forced = next((k for k in self.forced_429 if key.startswith(k)), None)
        if forced is not None:
            count, retry = self.forced_429[forced]
            if count > 0:
                self.forced_429[forced] = (count - 1, retry)
                return (
                    False,
                    {
                        "X-RateLimit-Limit": "5",
                        "X-RateLimit-Remaining": "0",
                        "X-RateLimit-Reset-After": f"{retry:.3f}",
                        "X-RateLimit-Reset": f"{time.time() + retry:.3f}",
                        "X-RateLimit-Bucket": forced,
                        "X-RateLimit-Scope": "user",
                        "Retry-After": f"{retry:.3f}",
                    },
                    retry,
                )
        webhook = key.split(" ", 1)[1].startswith("/webhooks/")
        limit, per = self.webhook_limit if webhook else (50, 1.0)
        bucket_key = "/".join(key.split("/")[:3])
        bucket = self.buckets.setdefault(bucket_key, _Bucket(limit, per))
        ok, remaining, reset_after = bucket.take()
        headers = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Bucket": bucket_key,
        }
        if not ok:
            headers |= {"X-RateLimit-Scope": "user", "Retry-After": f"{reset_after:.3f}"}
        return ok, headers, reset_after

    async def _body(self, request: web.Request) -> Any:
        if request.content_type == "application/json":
            return await request.json()
        if request.content_type.startswith("multipart/"):
            parts: dict[str, Any] = {"files": {}}
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":
                    parts.update(json.loads(await part.text()))
                else:
                    parts["files"][part.filename or part.name] = await part.read()
            return parts
        raw = await request.read()
        return json.loads(raw) if raw else None

    async def _api(self, request: web.Request) -> web.StreamResponse:
        path = "/" + request.match_info["tail"]
        body = await self._body(request)
        call = Call(request.method, path, dict(request.query), body)
        key = f"{request.method} {path}"
        signed = path.startswith(("/webhooks/", "/interactions/"))  # their token is in the URL
        if not signed and request.headers.get("Authorization") != f"Bot {TOKEN}":
            return self._json({"message": "401: Unauthorized", "code": 0}, 401)
        ok, headers, retry = self._limits(key)
        if not ok:
            call.path += " (429)"
            self.calls.append(call)
            return self._json(
                {"message": "You are being rate limited.", "retry_after": retry, "global": False},
                429,
                headers,
            )
        self.calls.append(call)
        status, data = self._route(request.method, path, dict(request.query), body)
        created = (
            request.method == "POST"
            and status == 200
            and (
                path.endswith("/messages")
                or (path.startswith("/webhooks/") and path.count("/") == 3)
            )
        )
        if created and self.echo:  # Discord sends every new message to the gateway too
            asyncio.get_running_loop().create_task(self.dispatch("MESSAGE_CREATE", data))
        if status == 204:
            return web.Response(status=204, headers=headers)
        return self._json(data, status, headers)

    def _route(self, method: str, path: str, query: dict, body: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if path == "/users/@me":
            return 200, user(BOT_ID)
        if path == "/oauth2/applications/@me":
            return 200, {
                "id": str(APP_ID),
                "name": "continuum",
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": user(SAM),
                "verify_key": "00",
                "flags": 0,
            }
        if parts[0] == "applications" and parts[2:3] == ["guilds"] and method == "PUT":
            registered = [
                {
                    **c,
                    "id": snowflake(),
                    "application_id": str(APP_ID),
                    "guild_id": parts[3],
                    "version": "1",
                    "default_member_permissions": None,
                    "type": c.get("type", 1),
                }
                for c in body
            ]
            self.commands[parts[3]] = registered
            return 200, registered
        if parts[0] == "applications" and method == "GET":
            return 200, self.commands.get(parts[3] if len(parts) > 3 else "", [])
        if parts[0] == "channels":
            return self._channels(method, parts, query, body)
        if parts[0] == "guilds" and len(parts) == 4 and parts[2] == "members":
            uid = int(parts[3])
            return (200, member(uid)) if uid in USERS else (404, {"message": "Unknown Member"})
        if parts[0] == "webhooks":
            return self._webhook(method, parts, query, body)
        if parts[0] == "interactions":  # /interactions/{id}/{token}/callback
            content = (body.get("data") or {}).get("content", "")
            mid = snowflake()
            message = {**self.message(BOT_ID, content), "id": mid, "interaction_token": parts[2]}
            self.messages[mid] = message
            return 200, {
                "interaction": {
                    "id": parts[1],
                    "type": 2,
                    "response_message_id": mid,
                    "response_message_loading": False,
                    "response_message_ephemeral": bool(
                        ((body.get("data") or {}).get("flags") or 0) & 64
                    ),
                },
                "resource": {"type": body.get("type"), "message": message},
            }
        if path == "/users/@me/channels":
            return 200, channel(DM_SAM)
        return 404, {"message": f"Unknown route {method} {path}", "code": 0}

    def _channels(self, method: str, parts: list[str], query: dict, body: Any) -> tuple[int, Any]:
        cid = int(parts[1])
        rest = parts[2:]
        if not rest:
            return 200, channel(cid)
        if rest == ["typing"]:
            return 204, None
        if rest == ["webhooks"] and method == "GET":
            return 200, [w for w in self.webhooks.values() if w["channel_id"] == str(cid)]
        if rest == ["webhooks"] and method == "POST":
            wid = snowflake()
            hook = {
                "id": wid,
                "type": 1,
                "token": f"wtoken-{wid}",
                "channel_id": str(cid),
                "guild_id": str(GUILD_ID),
                "name": body["name"],
                "avatar": None,
                "application_id": str(APP_ID),
                "user": user(BOT_ID),
            }
            self.webhooks[wid] = hook
            return 200, hook
        if rest == ["messages"] and method == "POST":  # the bot's own post (a DM)
            m = self.message(BOT_ID, body.get("content", ""), cid)
            return 200, m
        if rest == ["messages"] and method == "GET":
            after = int(query.get("after", "0"))
            limit = int(query.get("limit", "50"))
            found = [
                m
                for m in self.messages.values()
                if m["channel_id"] == str(cid) and int(m["id"]) > after
            ]
            found.sort(key=lambda m: int(m["id"]), reverse=True)  # newest first, like Discord
            return 200, found[:limit]
        if len(rest) == 2 and rest[0] == "messages":
            m = self.messages.get(rest[1])
            if m is None:
                return 404, {"message": "Unknown Message", "code": 10008}
            if method == "PATCH":
                m["content"] = body.get("content", m["content"])
            return 200, m
        return 404, {"message": "Unknown channel route", "code": 0}

    def _webhook(self, method: str, parts: list[str], query: dict, body: Any) -> tuple[int, Any]:
        wid, token = parts[1], parts[2] if len(parts) > 2 else None
        if wid == str(APP_ID):  # interaction follow-ups and the original response
            mid = next(
                (m["id"] for m in self.messages.values() if m.get("interaction_token") == token),
                None,
            )
            return 200, self.messages.get(mid or "", self.message(BOT_ID, ""))
        hook = self.webhooks.get(wid)
        if hook is None or (token is not None and hook["token"] != token):
            return 404, {"message": "Unknown Webhook", "code": 10015}
        if len(parts) == 3 and method == "POST":
            thread = query.get("thread_id")
            m = self.message(
                BOT_ID,
                body.get("content", ""),
                int(thread or hook["channel_id"]),
                webhook_id=wid,
                username=body.get("username"),
            )
            m["author"]["avatar_url"] = body.get("avatar_url")
            m["attachments"] = [
                self.attachment(n, b, "application/octet-stream")
                for n, b in (body.get("files") or {}).items()
            ]
            return 200, m
        if len(parts) == 5 and parts[3] == "messages" and method == "PATCH":
            m = self.messages.get(parts[4])
            if m is None:
                return 404, {"message": "Unknown Message", "code": 10008}
            m["content"] = body.get("content", m["content"])
            return 200, m
        return 404, {"message": "Unknown webhook route", "code": 0}

    async def _cdn(self, request: web.Request) -> web.Response:
        data = self.files.get(request.match_info["name"])
        if data is None:
            return web.Response(status=404)
        return web.Response(body=data, content_type="application/octet-stream")


async def until(check: Any, timeout: float = 10.0) -> Any:
    """Poll ``check`` until it returns something truthy (that value)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {getattr(check, '__name__', check)}")
        await asyncio.sleep(0.02)


async def _main() -> None:
    """Run the local Discord by hand (trying the host as a user would): prints the
    [hosts.discord] table to point continuum at it, waits for the bot, sends Sam's
    mention of Maya, prints what the persona posted through its webhook."""
    peer = await DiscordPeer().start()
    print("[hosts.discord]")
    for key, value in peer.settings.items():
        print(f"{key} = {json.dumps(value)}")
    print(f"# export DISCORD_BOT_TOKEN={TOKEN}", flush=True)
    await peer.identified.wait()
    await asyncio.sleep(1.0)
    await peer.say(SAM, f"<@{BOT_ID}> Maya, how do I find a slow query?", mentions=(BOT_ID,))
    post = await until(peer.executions, timeout=300)
    print(f"{post[0].body['username']}: {post[0].body['content']}", flush=True)
    await asyncio.sleep(3.0)  # the edits that follow
    edits = peer.webhook_edits()
    if edits:
        print(f"(edited to) {edits[-1].body['content']}", flush=True)
    await peer.stop()


if __name__ == "__main__":
    asyncio.run(_main())
