"""A Backend for llama.cpp's llama-server (first class) and other OpenAI-compatible servers.

Prefix reuse survives the network: every persona (slot key = persona + adapter set) is
pinned to one server by consistent hashing and to one ``id_slot`` on it, and each request
carries ``cache_prompt: true``, so a warm turn evaluates only its volatile suffix there
too (the server's ``timings.cache_n`` says how much it reused). When personas outnumber
a server's slots, the least recently used persona's KV is saved with
``POST /slots/{id}?action=save`` and restored when it comes back (server started with
``--slot-save-path``). A slot changing hands is restored or erased first — never reused
— so KV computed under one adapter set cannot leak into a request under another, and
every request names its adapters explicitly (llama-server keeps the cache when a request
omits ``lora``).

Servers that fail (unreachable, 5xx, cut streams) are retried with backoff and then
marked down; their personas move to the next server on the ring (``metrics.moved``), and
the server rejoins after a health check. ``api="openai"`` speaks plain
``/v1/completions`` for Ollama, vLLM or Docker Model Runner (no slot pinning there).
"""

from __future__ import annotations

import base64
import bisect
import hashlib
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, Field

from continuum.backends.base import (
    Backend,
    Completion,
    CompletionRequest,
    FinishReason,
    InferenceMetrics,
    SlotKey,
)
from continuum.compose import approx_token_count
from continuum.envelope import AudioPart
from continuum.errors import BackendError, BackendTimeout, MediaRejected
from continuum.media.capabilities import ModelCapabilities
from continuum.media.image_size import too_large
from continuum.media.placeholder import MISSING, PLACEHOLDER, placeholders_in, without_media

log = logging.getLogger("continuum.backends.server")

SCRATCH = SlotKey(persona_id="_scratch")


class ServerConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    api: Literal["llama.cpp", "openai"] = "llama.cpp"
    model: str | None = None  # the model name for OpenAI-compatible servers
    api_key: str | None = None
    pin_slots: bool = True  # False: let the server choose a slot (id_slot -1)
    hibernate: bool = True  # save/restore slots (needs --slot-save-path on the server)
    connect_timeout_s: float = Field(default=3.0, gt=0)
    retries: int = Field(default=3, ge=0)
    backoff_s: float = Field(default=0.25, ge=0)
    down_for_s: float = Field(default=5.0, ge=0)  # wait before health-checking a dead one
    vnodes: int = Field(default=64, ge=1)


# a "<" that does not open one of continuum's media placeholders
_NOT_SPECIAL = re.compile(r"<(?!__media:[0-9a-f]{16}__>)")


def prompt_string(request: CompletionRequest) -> str:
    """The prompt as a string for a server that tokenizes it itself, parsing special
    tokens (llama-server with media; any OpenAI-compatible ``/v1/completions``): outside
    the template's own markers (``request.control``) every ``<`` is broken with a word
    joiner, so no special token of the vocabulary (``<filename>``, ``</s>``,
    ``<start_of_turn>``, ``<|endoftext|>``) can come from people's text. Media
    placeholders stay whole (the media path replaces them)."""
    if not request.control:
        return _NOT_SPECIAL.sub("<\u2060", request.prompt)
    pattern = re.compile("(" + "|".join(re.escape(m) for m in request.control) + ")")
    return "".join(
        piece if i % 2 else _NOT_SPECIAL.sub("<\u2060", piece)
        for i, piece in enumerate(pattern.split(request.prompt))
    )


class _Retryable(Exception):
    """A failure worth trying again (maybe on another server)."""

    def __init__(self, message: str, server_down: bool = False) -> None:
        super().__init__(message)
        self.server_down = server_down


@dataclass
class _Slots:
    """One server's slots: which key owns which slot, LRU order, a lock per slot."""

    n: int
    owner: list[SlotKey | None] = field(default_factory=list)
    lru: OrderedDict[SlotKey, int] = field(default_factory=OrderedDict)
    locks: list[anyio.Lock] = field(default_factory=list)
    saved: set[SlotKey] = field(default_factory=set)
    assign: anyio.Lock = field(default_factory=anyio.Lock)
    # the adapter set each slot last ran under (llama-server clears a slot's cache when a
    # request's adapters differ from its last ones, restored KV included)
    adapters_of: dict[int, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.owner = [None] * self.n
        self.locks = [anyio.Lock() for _ in range(self.n)]


@dataclass
class _Server:
    url: str
    down_until: float = 0.0
    slots: _Slots | None = None
    lora_ids: dict[str, int] = field(default_factory=dict)  # adapter id -> server index
    can_save: bool = True
    can_tokenize: bool = True
    # from /props: what the model takes besides text (llama-server --mmproj), and the
    # server's own media marker (random per server, so text cannot spell it)
    modalities: dict[str, bool] = field(default_factory=dict)
    media_marker: str | None = None
    # text piece (and whether it is a control marker) -> token ids, LRU
    tokens: OrderedDict[tuple[str, bool], list[int]] = field(default_factory=OrderedDict)
    stats: dict[str, int] = field(
        default_factory=lambda: {"saved": 0, "restored": 0, "erased": 0, "requests": 0, "shared": 0}
    )


def _h(text: str) -> int:
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:8], "big")


class HashRing:
    """Consistent hashing with virtual nodes: adding or losing a server moves only the
    keys that hashed to it."""

    def __init__(self, urls: Sequence[str], vnodes: int = 64) -> None:
        self._points = sorted((_h(f"{url}#{i}"), url) for url in urls for i in range(vnodes))
        self._hashes = [p for p, _ in self._points]

    def order(self, key: str) -> list[str]:
        """Servers in preference order for ``key`` (first = home)."""
        start = bisect.bisect(self._hashes, _h(key))
        seen: list[str] = []
        for i in range(len(self._points)):
            url = self._points[(start + i) % len(self._points)][1]
            if url not in seen:
                seen.append(url)
        return seen


def _key_text(key: SlotKey) -> str:
    return key.persona_id + "|" + ",".join(key.adapters) + "|" + (key.room or "")


def _slot_file(key: SlotKey) -> str:
    return f"continuum-{hashlib.sha1(_key_text(key).encode()).hexdigest()[:20]}.bin"


class ServerBackend(Backend):
    name = "server"

    def __init__(self, urls: Sequence[str] | str, config: ServerConfig | None = None) -> None:
        urls = [urls] if isinstance(urls, str) else list(urls)
        if not urls:
            raise BackendError("ServerBackend needs at least one server URL", retryable=False)
        for url in urls:  # a typo is a clear error, not a "server down" retried forever
            parsed = httpx.URL(url) if "://" in url else None
            if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
                raise BackendError(
                    f"not a server URL: {url!r} (expected http://host:port)", retryable=False
                )
        self.config = config or ServerConfig()
        self.parallel = self.config.api == "llama.cpp" and self.config.pin_slots
        self.servers = {u.rstrip("/"): _Server(url=u.rstrip("/")) for u in urls}
        self.ring = HashRing(list(self.servers), self.config.vnodes)
        self.home: dict[SlotKey, str] = {}  # where each key's KV lives now
        self._capabilities: ModelCapabilities | None = None
        self._probe_after = 0.0
        headers = {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(None, connect=self.config.connect_timeout_s), headers=headers
        )

    # --- Backend ---------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return approx_token_count(text)

    @property
    def capabilities(self) -> ModelCapabilities:
        """From llama-server's ``/props`` (``modalities``: a server started with
        ``--mmproj`` hears audio / sees images). Read once, from the first server that
        answers (every server of a pool runs the same model); other APIs: text only."""
        if self._capabilities is None:
            if time.monotonic() < self._probe_after:
                return ModelCapabilities(source="default")
            found = self._probe()
            if found is None:  # nobody answered yet: text for now, ask again in 30 s
                self._probe_after = time.monotonic() + 30.0
                return ModelCapabilities(source="default")
            self._capabilities = found
        return self._capabilities

    def _probe(self) -> ModelCapabilities | None:
        if self.config.api != "llama.cpp":
            return ModelCapabilities(source="config")
        for url in self.servers:
            try:
                props = httpx.get(f"{url}/props", timeout=2.0).json()
            except (httpx.HTTPError, ValueError):
                continue
            modalities = props.get("modalities") or {}
            n_ctx = (props.get("default_generation_settings") or {}).get("n_ctx")
            return ModelCapabilities(
                audio_in=bool(modalities.get("audio")),
                vision_in=bool(modalities.get("vision")),
                context_length=int(n_ctx) if n_ctx else None,
                source="server",
            )
        return None

    async def aclose(self) -> None:
        await self._client.aclose()

    async def complete(
        self, request: CompletionRequest, on_token: Callable[[str], None] | None = None
    ) -> Completion:
        key = request.slot or SCRATCH
        emitted = ""
        if placeholders_in(request.prompt) and not self._takes_media():
            # a server without a projector is told plainly what it cannot hear or see
            request = request.model_copy(update={"prompt": without_media(request.prompt)})

        def relay(full: str) -> None:
            # a retry regenerates from scratch: only pass on what extends what was sent
            nonlocal emitted
            if on_token and len(full) > len(emitted) and full.startswith(emitted):
                on_token(full[len(emitted) :])
                emitted = full

        last: Exception | None = None
        started = time.perf_counter()
        try:
            with anyio.fail_after(request.timeout_s):
                for attempt in range(self.config.retries + 1):
                    server = await self._route(key)
                    if server is None:
                        last = last or BackendError("no server is reachable")
                        await anyio.sleep(self.config.backoff_s * 2**attempt)
                        continue
                    moved = self.home.get(key, server.url) != server.url
                    try:
                        completion = await self._attempt(server, key, request, relay, moved)
                    except _Retryable as exc:
                        last = exc
                        log.warning(
                            "%s on %s (attempt %d): %s",
                            key.persona_id,
                            server.url,
                            attempt + 1,
                            exc,
                        )
                        if exc.server_down:
                            self._mark_down(server)
                        await anyio.sleep(self.config.backoff_s * 2**attempt)
                        continue
                    self.home[key] = server.url
                    return completion
        except TimeoutError as exc:
            raise BackendTimeout(
                f"no reply within {request.timeout_s}s (last error: {last})"
            ) from exc
        waited = time.perf_counter() - started
        raise BackendError(
            f"server request failed after {self.config.retries + 1} attempts in {waited:.1f}s: "
            f"{last}"
        )

    def _takes_media(self) -> bool:
        caps = self.capabilities
        return self.config.api == "llama.cpp" and (caps.audio_in or caps.vision_in)

    # --- routing and health ------------------------------------------------------------------

    def _mark_down(self, server: _Server) -> None:
        server.down_until = time.monotonic() + self.config.down_for_s
        server.slots = None  # its slot state is unknown when it comes back
        for key, url in list(self.home.items()):
            if url == server.url:
                self.home[key] = "(lost)"  # its KV is gone: the next turn reports the move

    async def _healthy(self, server: _Server) -> bool:
        try:
            r = await self._client.get(f"{server.url}/health", timeout=2.0)
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    async def _route(self, key: SlotKey) -> _Server | None:
        for url in self.ring.order(_key_text(key)):
            server = self.servers[url]
            if server.down_until > time.monotonic():
                continue
            if server.down_until and not await self._healthy(server):
                self._mark_down(server)
                continue
            server.down_until = 0.0
            return server
        return None

    async def _prepare(self, server: _Server) -> _Slots:
        if server.slots is not None:
            return server.slots
        n = 1
        if self.config.api == "llama.cpp":
            try:
                props = (await self._client.get(f"{server.url}/props", timeout=5.0)).json()
                n = int(props.get("total_slots") or 1)
                server.modalities = dict(props.get("modalities") or {})
                server.media_marker = props.get("media_marker") or "<__media__>"
                loras = (await self._client.get(f"{server.url}/lora-adapters", timeout=5.0)).json()
                server.lora_ids = {}
                for entry in loras if isinstance(loras, list) else []:
                    stem = entry.get("path", "").rsplit("/", 1)[-1].rsplit(".", 1)[0]
                    server.lora_ids[stem] = int(entry["id"])
            except httpx.ConnectError as exc:
                raise _Retryable(f"cannot connect to {server.url}: {exc}", True) from exc
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                raise _Retryable(f"cannot read {server.url}/props: {exc}", True) from exc
        server.slots = _Slots(n=n)
        return server.slots

    # --- slot pinning and hibernation ------------------------------------------------------

    async def _align_adapters(
        self, server: _Server, slots: _Slots, slot: int, adapters: tuple[str, ...]
    ) -> None:
        """Before restoring KV into a slot, make the slot's adapter set the key's: a
        one-token request with that ``lora`` list (llama-server would otherwise drop the
        restored cache at the next request, seeing the adapters change)."""
        if not server.lora_ids or slots.adapters_of.get(slot) == adapters:
            return
        body = {
            "prompt": "\n",
            "n_predict": 0,
            "id_slot": slot,
            "cache_prompt": False,
            "lora": [
                {"id": i, "scale": 1.0 if name in adapters else 0.0}
                for name, i in sorted(server.lora_ids.items(), key=lambda kv: kv[1])
            ],
        }
        try:
            r = await self._client.post(f"{server.url}/completion", json=body, timeout=30.0)
        except httpx.HTTPError as exc:
            raise _Retryable(f"priming slot {slot} failed: {exc}", server_down=True) from exc
        if r.status_code == 200:
            slots.adapters_of[slot] = adapters

    async def _slot_action(self, server: _Server, slot: int, action: str, key: SlotKey) -> bool:
        body = {} if action == "erase" else {"filename": _slot_file(key)}
        try:
            r = await self._client.post(
                f"{server.url}/slots/{slot}", params={"action": action}, json=body, timeout=60.0
            )
        except httpx.HTTPError as exc:
            raise _Retryable(f"slot {action} failed: {exc}", server_down=True) from exc
        if r.status_code == 501 or (r.status_code == 400 and "slot-save-path" in r.text):
            server.can_save = False
            return False
        if r.status_code >= 500:
            raise _Retryable(f"slot {action}: HTTP {r.status_code} {r.text[:200]}")
        if r.status_code != 200:
            log.warning("slot %s on %s: HTTP %d %s", action, server.url, r.status_code, r.text)
            return False
        done = {"save": "saved", "restore": "restored", "erase": "erased"}[action]
        server.stats[done] += 1
        return True

    @asynccontextmanager
    async def _pinned(self, server: _Server, key: SlotKey) -> AsyncIterator[tuple[int, bool]]:
        """Hold ``key``'s slot on ``server`` for one request: (slot id, restored)."""
        slots = await self._prepare(server)
        restored = False
        async with slots.assign:
            slot = slots.lru.get(key)
            if slot is not None:
                slots.lru.move_to_end(key)
            else:
                free = [i for i, k in enumerate(slots.owner) if k is None]
                if free:
                    slot = free[0]
                else:  # evict the least recently used key whose slot is not busy
                    victim = next(
                        (k for k, s in slots.lru.items() if not slots.locks[s].locked()),
                        next(iter(slots.lru)),
                    )
                    slot = slots.lru.pop(victim)
                    slots.owner[slot] = None
                    await slots.locks[slot].acquire()
                    try:
                        if (
                            self.config.hibernate
                            and server.can_save
                            and await self._slot_action(server, slot, "save", victim)
                        ):
                            slots.saved.add(victim)
                    finally:
                        slots.locks[slot].release()
                slots.owner[slot] = key
                slots.lru[key] = slot
                await slots.locks[slot].acquire()
                try:
                    # a slot changing hands is restored or erased: never reuse KV computed
                    # for another persona or under another adapter set
                    can = self.config.hibernate and server.can_save
                    if can and (key in slots.saved or key.room is not None):
                        await self._align_adapters(server, slots, slot, key.adapters)
                    if (
                        key in slots.saved
                        and can
                        and await self._slot_action(server, slot, "restore", key)
                    ):
                        restored = True
                    elif can and await self._share_prefix(server, slots, slot, key):
                        pass  # the persona's prefix from another room; the server trims it
                    else:
                        await self._slot_action(server, slot, "erase", key)
                finally:
                    slots.locks[slot].release()
        async with slots.locks[slot]:
            yield slot, restored
            slots.adapters_of[slot] = key.adapters

    async def _share_prefix(self, server: _Server, slots: _Slots, slot: int, key: SlotKey) -> bool:
        """A persona entering a new room starts from its KV in another room (same persona,
        same adapters): the server's prompt cache keeps the common prefix (identity,
        style, guidance) and re-evaluates the rest. A saved donor is restored; a live one
        is saved first (if it is not busy)."""
        if key.room is None:
            return False
        same = [
            k
            for k in (*slots.saved, *slots.lru)
            if k != key and k.persona_id == key.persona_id and k.adapters == key.adapters
        ]
        for donor in same:
            if donor not in slots.saved:
                donor_slot = slots.lru.get(donor)
                if donor_slot is None or slots.locks[donor_slot].locked():
                    continue
                async with slots.locks[donor_slot]:
                    if not await self._slot_action(server, donor_slot, "save", donor):
                        continue
                slots.saved.add(donor)
            if await self._slot_action(server, slot, "restore", donor):
                server.stats["shared"] += 1
                return True
        return False

    # --- one attempt ---------------------------------------------------------------------

    async def _tokens(self, server: _Server, request: CompletionRequest) -> list[int] | None:
        """The prompt as token ids, only the template's markers parsed as control tokens
        (``/tokenize`` with ``parse_special`` off for everything else). Pieces repeat from
        turn to turn (history), so they are cached. None: the server cannot tokenize."""
        if not server.can_tokenize or not request.control:
            return None
        pattern = re.compile("(" + "|".join(re.escape(m) for m in request.control) + ")")
        ids: list[int] = []
        for i, piece in enumerate(pattern.split(request.prompt)):
            if not piece:
                continue
            special = bool(i % 2)
            cached = server.tokens.get((piece, special))
            if cached is None:
                try:
                    r = await self._client.post(
                        f"{server.url}/tokenize",
                        json={"content": piece, "add_special": False, "parse_special": special},
                        timeout=30.0,
                    )
                except httpx.ConnectError as exc:
                    raise _Retryable(f"cannot connect to {server.url}: {exc}", True) from exc
                except httpx.HTTPError as exc:
                    raise _Retryable(f"tokenize on {server.url} failed: {exc}", True) from exc
                if r.status_code in (404, 501):
                    log.warning(
                        "%s has no /tokenize: sending text prompts (template markers in "
                        "people's text are still escaped)",
                        server.url,
                    )
                    server.can_tokenize = False
                    return None
                if r.status_code != 200:
                    raise _Retryable(f"tokenize: HTTP {r.status_code} {r.text[:200]}")
                cached = [int(t) for t in r.json()["tokens"]]
                server.tokens[(piece, special)] = cached
                if len(server.tokens) > 8192:
                    server.tokens.popitem(last=False)
            else:
                server.tokens.move_to_end((piece, special))
            ids.extend(cached)
        return ids

    def _media_prompt(self, server: _Server, request: CompletionRequest) -> dict[str, Any]:
        """A prompt with media for llama-server: the prompt string with the server's marker
        where each part goes, and the parts base64-encoded in order (``multimodal_data``).
        A part the request lacks, or of a kind the server's model does not take, is said
        plainly instead. The server tokenizes this string itself, parsing special tokens,
        so outside the template's own markers every ``<`` is broken with a word joiner:
        no special token of the vocabulary (``<filename>``, ``<|endoftext|>`` ...) can come
        from people's text, as on the token-id path."""
        marker = server.media_marker or "<__media__>"
        data: list[str] = []
        prompt = prompt_string(request)

        def place(match: re.Match[str]) -> str:
            part = request.media.get(match.group(1))
            kind = "audio" if isinstance(part, AudioPart) else "vision"
            if part is None or not part.data or not server.modalities.get(kind):
                return MISSING
            if kind == "vision" and (why := too_large(part.data)):
                raise MediaRejected(f"this image is not sent: {why}", (match.group(1),))
            data.append(base64.b64encode(part.data).decode())
            return marker

        text = PLACEHOLDER.sub(place, prompt)
        return {"prompt_string": text, "multimodal_data": data} if data else {"prompt_string": text}

    def _body(
        self,
        server: _Server,
        key: SlotKey,
        request: CompletionRequest,
        tokens: list[int] | None = None,
    ) -> dict[str, Any]:
        s = request.settings
        body: dict[str, Any] = {
            "prompt": tokens if tokens is not None else prompt_string(request),
            "stream": True,
            "temperature": s.temperature,
            "top_p": s.top_p,
            "top_k": s.top_k,
            "min_p": 0.0,  # llama-server defaults to 0.05; the embedded backend uses none
            "repeat_penalty": s.repeat_penalty,
            "stop": list(s.stop),
        }
        if s.seed is not None:
            body["seed"] = s.seed
        if self.config.api == "openai":
            body["max_tokens"] = s.max_tokens
            body["model"] = self.config.model or "default"
            body["stream_options"] = {"include_usage": True}
            if request.json_schema is not None:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "output", "schema": request.json_schema},
                }
            return body
        body["n_predict"] = s.max_tokens
        body["cache_prompt"] = True
        if request.json_schema is not None:
            body["json_schema"] = request.json_schema
        if server.lora_ids:  # name every adapter: omitted ones would keep a stale cache
            missing = [a for a in key.adapters if a not in server.lora_ids]
            if missing:
                raise BackendError(
                    f"llama-server at {server.url} has no LoRA adapter {missing}: start it with "
                    "--lora <id>.gguf for each (it cannot load adapters while running; "
                    "POST /lora-adapters only rescales loaded ones)",
                    retryable=False,
                )
            body["lora"] = [
                {"id": i, "scale": 1.0 if name in key.adapters else 0.0}
                for name, i in sorted(server.lora_ids.items(), key=lambda kv: kv[1])
            ]
        elif key.adapters:
            raise BackendError(
                f"llama-server at {server.url} has no LoRA adapters; start it with --lora "
                f"<id>.gguf for {list(key.adapters)} (and --lora-init-without-apply)",
                retryable=False,
            )
        return body

    async def _attempt(
        self,
        server: _Server,
        key: SlotKey,
        request: CompletionRequest,
        relay: Callable[[str], None],
        moved: bool,
    ) -> Completion:
        queued = time.perf_counter()
        pin = self.config.api == "llama.cpp" and self.config.pin_slots
        if pin:
            async with self._pinned(server, key) as (slot, restored):
                return await self._post(server, key, request, relay, moved, slot, restored, queued)
        await self._prepare(server)
        return await self._post(server, key, request, relay, moved, None, False, queued)

    async def _post(
        self,
        server: _Server,
        key: SlotKey,
        request: CompletionRequest,
        relay: Callable[[str], None],
        moved: bool,
        slot: int | None,
        restored: bool,
        queued: float,
    ) -> Completion:
        media = placeholders_in(request.prompt) if self.config.api == "llama.cpp" else []
        if media:
            tokens = None
            body = self._body(server, key, request, None)
            body["prompt"] = self._media_prompt(server, request)
        else:
            tokens = await self._tokens(server, request) if self.config.api == "llama.cpp" else None
            body = self._body(server, key, request, tokens)
        if slot is not None:
            body["id_slot"] = slot
        path = "/v1/completions" if self.config.api == "openai" else "/completion"
        started = time.perf_counter()
        text, final, first_at = "", None, None
        server.stats["requests"] += 1
        try:
            async with self._client.stream("POST", server.url + path, json=body) as resp:
                if resp.status_code >= 500 or resp.status_code == 429:
                    detail = (await resp.aread()).decode(errors="replace")[:300]
                    raise _Retryable(f"HTTP {resp.status_code}: {detail}")
                if resp.status_code != 200:
                    detail = (await resp.aread()).decode(errors="replace")[:300]
                    refused = f"server {server.url} refused: HTTP {resp.status_code} {detail}"
                    if media and resp.status_code == 400:  # it cannot say which part
                        raise MediaRejected(refused, tuple(dict.fromkeys(media)))
                    raise BackendError(refused)
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        final = final or {}
                        break
                    try:
                        chunk = json.loads(data)
                    except json.JSONDecodeError as exc:
                        raise _Retryable(f"malformed stream chunk: {data[:120]!r}") from exc
                    if "error" in chunk:
                        raise _Retryable(f"server error in stream: {chunk['error']}")
                    delta = self._delta(chunk)
                    if delta:
                        if first_at is None:
                            first_at = time.perf_counter()
                        text += delta
                        relay(text)
                    if chunk.get("stop") is True or chunk.get("usage") is not None:
                        final = chunk
                        if self.config.api == "llama.cpp":
                            break
                    elif self._finish(chunk):
                        final = chunk
        except httpx.ConnectError as exc:
            raise _Retryable(f"cannot connect to {server.url}: {exc}", server_down=True) from exc
        except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
            raise _Retryable(f"stream from {server.url} broke: {exc}", server_down=True) from exc
        if final is None:
            raise _Retryable(f"stream from {server.url} ended before the final chunk")
        done = time.perf_counter()
        metrics = self._metrics(final, slot, started, first_at, done, queued, restored, moved)
        metrics.log()
        finish: FinishReason = "length" if final.get("stop_type") == "limit" else "stop"
        return Completion(text=text, finish_reason=finish, metrics=metrics)

    def _delta(self, chunk: dict[str, Any]) -> str:
        if self.config.api == "llama.cpp":
            return str(chunk.get("content") or "")
        choices = chunk.get("choices") or []
        return str(choices[0].get("text") or "") if choices else ""

    @staticmethod
    def _finish(chunk: dict[str, Any]) -> bool:
        choices = chunk.get("choices") or []
        return bool(choices and choices[0].get("finish_reason"))

    def _metrics(
        self,
        final: dict[str, Any],
        slot: int | None,
        started: float,
        first_at: float | None,
        done: float,
        queued: float,
        restored: bool,
        moved: bool,
    ) -> InferenceMetrics:
        t = final.get("timings") or {}
        usage = final.get("usage") or {}
        cached = int(t.get("cache_n", 0))
        evaluated = int(t.get("prompt_n", usage.get("prompt_tokens", 0)))
        generated = int(t.get("predicted_n", usage.get("completion_tokens", 0)))
        ttft = ((first_at or done) - started) * 1000
        return InferenceMetrics(
            backend=self.name,
            slot_id=final.get("id_slot", slot),
            prompt_tokens=cached + evaluated,
            reused_tokens=cached,
            evaluated_tokens=evaluated,
            generated_tokens=generated,
            queue_ms=(started - queued) * 1000,
            prompt_eval_ms=float(t.get("prompt_ms", ttft)),
            ttft_ms=ttft,
            decode_tokens_per_s=float(t.get("predicted_per_second", 0.0)),
            total_ms=(done - queued) * 1000,
            restored_from_hibernation=restored,
            moved=moved,
        )
