"""A local Slack on 127.0.0.1 for the tests: the Web API methods continuum-slack calls
(JSON or form bodies, token in the Authorization header, Slack's response shapes), the
Socket Mode websocket (hello, events_api envelopes, acks), response_url for slash
commands, and the signed Events API requests Slack would send. Only Slack's side is
fake: slack_bolt and slack_sdk run unpatched against it."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-test-token"
TEAM = "T0TEAM"
BOT_USER = "UBOT"
BOT_ID = "BBOT"


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None
    at: float = field(default_factory=time.monotonic)
    result: dict[str, Any] = field(default_factory=dict)


class SlackPeer:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.users: dict[str, str] = {"U1": "Sam", "U2": "Priya", "U3": "Leo"}
        self.threads: dict[tuple[str, str], list[dict]] = {}
        # conversations.info's channel objects; an id not here is a public channel, or a
        # DM when it starts with D (what Slack would answer for such conversations)
        self.channels: dict[str, dict[str, Any]] = {}
        self.fail: dict[str, list[Any]] = {}  # method -> queue of failures (error or 429)
        self.responses: list[dict] = []  # what slash commands answered (response_url)
        self.acks: list[str] = []  # Socket Mode acks (envelope ids)
        self.files: dict[str, tuple[bytes, str]] = {}  # id -> (content, mimetype)
        self.file_gets: list[tuple[str, str | None]] = []  # (file id, token)
        self.uploads: dict[str, bytes] = {}  # file id -> bytes a persona sent
        # method -> an event its answers wait for (recorded at once, answered when set):
        # a far side that stalls, so a test can act while a call is in flight; hold_if
        # picks which calls of a method wait (all, by default)
        self.hold: dict[str, asyncio.Event] = {}
        self.hold_if: dict[str, Callable[[dict[str, Any]], bool]] = {}
        self._ts = itertools.count(1)
        self._socket: web.WebSocketResponse | None = None
        self._socket_ready = asyncio.Event()
        self.runner: web.AppRunner | None = None
        self.url = ""

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self) -> SlackPeer:
        app = web.Application()
        app.router.add_post("/api/{method}", self._api)
        app.router.add_get("/api/{method}", self._api)  # slack_sdk GETs some (users.info)
        app.router.add_get("/socket", self._websocket)
        app.router.add_post("/response/{id}", self._response_url)
        app.router.add_get("/files/{id}", self._file)
        app.router.add_post("/upload/{id}", self._upload)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self.runner is not None:
            await self.runner.cleanup()

    # --- the Web API ----------------------------------------------------------------------

    def next_ts(self) -> str:
        return f"{1_700_000_000 + next(self._ts)}.000100"

    def of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    async def _api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await request.read()
        if request.content_type == "application/json":
            args = json.loads(body or b"{}")
        else:
            args = dict(parse_qsl(body.decode()))
        args.update(request.query)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") or args.get("token")
        self.calls.append(Call(method, args, token))
        if method in self.hold and self.hold_if.get(method, lambda _: True)(args):
            await self.hold[method].wait()
        failures = self.fail.get(method)
        if failures:
            failure = failures.pop(0)
            if failure == 429:
                return web.json_response(
                    {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"}
                )
            return web.json_response({"ok": False, "error": failure})
        if token not in (BOT_TOKEN, APP_TOKEN):
            return web.json_response({"ok": False, "error": "invalid_auth"})
        self.calls[-1].result = self._answer(method, args)
        return web.json_response(self.calls[-1].result)

    async def _file(self, request: web.Request) -> web.Response:
        """url_private: the file's bytes for a bot token, a login page otherwise (Slack
        answers an unauthenticated download with HTML, not an error status)."""
        file_id = request.match_info["id"]
        token = request.headers.get("Authorization", "").removeprefix("Bearer ") or None
        self.file_gets.append((file_id, token))
        if token != BOT_TOKEN or file_id not in self.files:
            return web.Response(status=302, headers={"Location": "/signin"})
        data, mime = self.files[file_id]
        return web.Response(body=data, content_type=mime)

    async def _upload(self, request: web.Request) -> web.Response:
        """files upload v2, step 2: the bytes, POSTed to the URL step 1 gave."""
        self.uploads[request.match_info["id"]] = await request.read()
        return web.Response(text="OK")

    def share(self, file_id: str, name: str, data: bytes, mime: str) -> dict[str, Any]:
        """Put a file on the peer; returns the file object an event carries."""
        self.files[file_id] = (data, mime)
        return {
            "id": file_id,
            "name": name,
            "mimetype": mime,
            "size": len(data),
            "url_private": f"{self.url}/files/{file_id}",
            "url_private_download": f"{self.url}/files/{file_id}",
        }

    def _answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        ok = {"ok": True}
        if method == "auth.test":
            return {
                **ok,
                "user_id": BOT_USER,
                "bot_id": BOT_ID,
                "team_id": TEAM,
                "user": "continuum",
            }
        if method == "users.info":
            name = self.users.get(args.get("user", ""), "Someone")
            return {
                **ok,
                "user": {
                    "id": args.get("user"),
                    "name": name.lower(),
                    "real_name": name,
                    "profile": {"display_name": name},
                },
            }
        if method in ("chat.postMessage", "chat.startStream"):
            ts = self.next_ts()
            thread = args.get("thread_ts")
            if thread:
                self.threads.setdefault((args["channel"], thread), []).append(
                    {
                        "ts": ts,
                        "text": args.get("text") or args.get("markdown_text") or "",
                        "bot_id": BOT_ID,
                        "username": args.get("username"),
                    }
                )
            return {**ok, "channel": args.get("channel"), "ts": ts}
        if method in ("chat.update", "chat.appendStream", "chat.stopStream"):
            return {**ok, "channel": args.get("channel"), "ts": args.get("ts")}
        if method == "files.getUploadURLExternal":
            file_id = f"F{len(self.uploads) + 100}"
            return {**ok, "upload_url": f"{self.url}/upload/{file_id}", "file_id": file_id}
        if method == "files.completeUploadExternal":
            files = args.get("files")
            files = json.loads(files) if isinstance(files, str) else files
            return {**ok, "files": [{"id": f["id"], "title": f.get("title")} for f in files]}
        if method == "conversations.info":
            cid = args.get("channel", "")
            if cid in self.channels:
                return {**ok, "channel": {"id": cid, **self.channels[cid]}}
            if cid.startswith("D"):
                return {**ok, "channel": {"id": cid, "is_im": True, "is_private": True}}
            return {**ok, "channel": {"id": cid, "is_channel": True, "is_private": False}}
        if method == "conversations.replies":
            key = (args.get("channel"), args.get("ts"))
            return {**ok, "messages": self.threads.get(key, []), "has_more": False}
        if method == "apps.connections.open":
            return {**ok, "url": self.url.replace("http", "ws") + "/socket"}
        return ok  # reactions.add / reactions.remove and the rest

    async def _response_url(self, request: web.Request) -> web.Response:
        self.responses.append(await request.json())
        return web.json_response({"ok": True})

    # --- Socket Mode ------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._socket = ws
        await ws.send_json(
            {"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A1"}}
        )
        self._socket_ready.set()
        async for msg in ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                data = json.loads(msg.data)
                if "envelope_id" in data:
                    self.acks.append(data["envelope_id"])
        return ws

    async def socket_event(self, event: dict[str, Any]) -> str:
        """Send an events_api envelope over Socket Mode; returns its envelope id."""
        await asyncio.wait_for(self._socket_ready.wait(), 10)
        assert self._socket is not None
        envelope_id = str(uuid.uuid4())
        await self._socket.send_json(
            {
                "envelope_id": envelope_id,
                "type": "events_api",
                "accepts_response_payload": False,
                "payload": event_payload(event),
            }
        )
        return envelope_id


# --- what Slack sends over HTTP --------------------------------------------------------------


def event_payload(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "token": "legacy",
        "team_id": TEAM,
        "api_app_id": "A1",
        "event": {"event_ts": event.get("ts", "1.0"), **event},
        "type": "event_callback",
        "event_id": event_id or f"Ev{uuid.uuid4().hex[:10]}",
        "event_time": int(time.time()),
        "authorizations": [
            {"enterprise_id": None, "team_id": TEAM, "user_id": BOT_USER, "is_bot": True}
        ],
    }


def signed(body: bytes, secret: str = SECRET, timestamp: int | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}


async def post_event(
    url: str, payload: dict[str, Any], *, secret: str = SECRET, timestamp: int | None = None
) -> int:
    body = json.dumps(payload).encode()
    headers = {"Content-Type": "application/json", **signed(body, secret, timestamp)}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        return r.status


async def post_command(
    url: str, peer: SlackPeer, text: str, user: str = "U1", channel: str = "C1"
) -> int:
    form = {
        "token": "legacy",
        "team_id": TEAM,
        "channel_id": channel,
        "channel_name": "general",
        "user_id": user,
        "user_name": peer.users.get(user, "someone").lower(),
        "command": "/continuum",
        "text": text,
        "response_url": f"{peer.url}/response/{uuid.uuid4().hex[:8]}",
        "trigger_id": "1.2.3",
    }
    body = urlencode(form).encode()
    headers = {"Content-Type": "application/x-www-form-urlencoded", **signed(body)}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        return r.status
