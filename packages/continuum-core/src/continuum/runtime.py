"""The runtime: one process, every host, one memory.

Built from a :class:`~continuum.config.ContinuumConfig`, a :class:`Runtime` owns the
personas, one backend, one memory engine, one persona-state store, the people directory,
the room router (with a hippocampus on every room) and the hosts — found by name through
the ``register_hosts`` entry points, built-ins and third-party hosts alike.

    async with Runtime(load_config("continuum.toml")) as runtime:
        await runtime.serve()          # every host under one task group, until a signal

Each delivered message is answered in its own task (a :class:`Turn` handle: ``wait``,
``cancel``); the floor of each room keeps replies in order. Shutdown (SIGINT/SIGTERM, or
``request_shutdown``) stops taking events, lets replies in flight finish for
``runtime.shutdown_grace_s``, cancels the rest cleanly (their sinks are aborted),
consolidates what the hippocampus still holds, and persists state and memory.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import re
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import anyio
from anyio.abc import TaskGroup

from continuum import plugins
from continuum.addressing import addressed
from continuum.backends.base import Backend
from continuum.cognition.state import PersonaStateStore
from continuum.commands import CommandRouter
from continuum.config import ContinuumConfig, MediaConfig, secret
from continuum.data_lock import lock_data_dir
from continuum.envelope import (
    AudioPart,
    Envelope,
    ImagePart,
    Participant,
    ParticipantKind,
    PersonaReply,
    ReplyTarget,
    Visibility,
)
from continuum.errors import (
    BackendBusy,
    ConfigError,
    ContinuumError,
    HostFailed,
    MalformedEvent,
    UnknownMessage,
    UnknownPlugin,
)
from continuum.events import MessageShed, MessageTaken, PersonaSilent, RoomEvent, TurnStarted
from continuum.genome.pairs import PairLog
from continuum.genome.registry import GenomeRegistry, resolve_persona, shared_library
from continuum.hosts.audio import Ear
from continuum.hosts.base import (
    CommandEvent,
    CommandResult,
    DeleteEvent,
    EditEvent,
    HostAdapter,
    HostCapabilities,
    HostEvent,
    HostServices,
    MembershipEvent,
    MessageEvent,
    Outcome,
    PersonaCard,
    ReactionEvent,
    ReplySink,
    ReplyStart,
)
from continuum.media import MediaBridge
from continuum.memory.engine import MemoryEngine, default_data_dir
from continuum.memory.hippocampus import Hippocampus
from continuum.people import PeopleDirectory
from continuum.persona import Persona
from continuum.persona_files import load_personas
from continuum.room import Room, RoomPolicy
from continuum.router import MessageMap, RoomRouter

if TYPE_CHECKING:
    from continuum.voice.service import VoiceService

log = logging.getLogger("continuum.runtime")

_STREAMING = HostCapabilities(streaming=True)

BUNDLED_PERSONAS = Path(__file__).resolve().parent / "bundled" / "personas"


class _Watched(ReplySink):
    """A host's sink as the core drives it: what the host instance's capabilities allow
    (without streaming, the reply arrives as one write just before ``finish``), and
    whether anything reached it yet (a stopped runtime answers a message again after the
    restart only if nothing of a reply was shown)."""

    def __init__(self, inner: ReplySink, capabilities: HostCapabilities) -> None:
        self.inner, self.wrote = inner, False
        self.streaming = capabilities.streaming
        self.held: list[str] = []

    def watch_posts(self, callback: Callable[[str], None]) -> None:
        self.inner.watch_posts(callback)

    async def write(self, delta: str) -> None:
        if not self.streaming:
            self.held.append(delta)
            return
        self.wrote = True
        await self.inner.write(delta)

    async def finish(self) -> str | None:
        self.wrote = True
        if self.held:
            await self.inner.write("".join(self.held))
            self.held.clear()
        return await self.inner.finish()

    async def abort(self, reason: str) -> None:
        await self.inner.abort(reason)

    def heard(self) -> str | None:
        if not self.streaming:  # held here until finish: nothing reached anyone yet
            return ""
        return self.inner.heard()

    async def attach(self, part: AudioPart | ImagePart, name: str = "") -> None:
        await self.inner.attach(part, name)


class Turn:
    """A delivered message being answered (the :class:`~continuum.hosts.base.TurnHandle`
    a host gets back)."""

    def __init__(self, envelope: Envelope, held: bool = False) -> None:
        self.envelope = envelope
        # a voice turn delivered in the pause, before its end of turn: its replies are
        # written but not heard until ``Runtime.release`` (or retracted without a trace)
        self.gate: anyio.Event | None = anyio.Event() if held else None
        self.retracted = False
        self.speech: list[Any] = []  # SpeechStats of its spoken replies (voice hosts)
        self.message_id = envelope.id
        self.replies: list[PersonaReply] = []
        self.outcome: Outcome | None = None
        self.reason = ""
        self.delivered_at = time.monotonic()
        self.started_at: float | None = None  # when it got its room's floor
        self.ended_at: float | None = None
        self._done = anyio.Event()
        self._scope: anyio.CancelScope | None = None
        self._cancel_requested = False

    async def wait(self) -> list[PersonaReply]:
        await self._done.wait()
        return self.replies

    def cancel(self) -> None:
        self._cancel_requested = True
        if self._scope is not None:
            self._scope.cancel()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def _end(self, outcome: Outcome, reason: str = "") -> None:
        self.outcome, self.reason = outcome, reason
        self.ended_at = time.monotonic()
        self._done.set()


def load_runtime_personas(config: ContinuumConfig) -> list[Persona]:
    paths = [config.relative(p) for p in config.personas.paths] or [BUNDLED_PERSONAS]
    personas = load_personas(paths)
    if config.personas.only:
        wanted = set(config.personas.only)
        personas = [p for p in personas if p.id in wanted]
        missing = wanted - {p.id for p in personas}
        if missing:
            raise ConfigError(
                config.source or "continuum.toml", "personas.only", f"no persona {sorted(missing)}"
            )
    if not personas:
        raise ConfigError(config.source or "continuum.toml", "personas.paths", "no personas found")
    return personas


MODEL_SOURCE = re.compile(r"^([a-z][a-z0-9+.-]{1,31}):(?!//)(.+)$")


def local_model(config: ContinuumConfig) -> str | None:
    """The embedded backend's GGUF: a path (relative to the config file), or
    ``<scheme>:<spec>`` resolved by the model source plugin of that scheme (``hub:`` from
    continuum-hub pulls it from the Hugging Face Hub); None: the default model."""
    model = config.backend.model
    if not model:
        return None
    m = MODEL_SOURCE.match(model)
    if m is None:
        return str(config.relative(Path(model)))
    scheme, spec = m.groups()
    sources = plugins.model_sources()
    if scheme not in sources:
        hint = " (pip install continuum-hub)" if scheme == "hub" else ""
        raise ConfigError(
            config.source or "continuum.toml",
            "backend.model",
            f"no model source {scheme!r} is installed{hint}; "
            f"installed: {', '.join(sorted(sources)) or 'none'}",
        )
    return str(sources[scheme](spec, config))


def build_backend(config: ContinuumConfig, personas: Sequence[Persona]) -> Backend:
    """The backend the config names, through the ``register_backends`` plugins."""
    b = config.backend
    factories = plugins.backends()
    name = "embedded" if b.kind == "embedded" else "server"
    if name not in factories:
        raise UnknownPlugin(f"no backend plugin {name!r} (installed: {sorted(factories)})")
    if b.kind == "embedded":
        live = max(b.live_slots, min(len(personas) + 1, 64))
        fields: dict[str, Any] = {
            "live_slots": live,
            "slot_ctx": b.slot_ctx,
            "adapter_budget_bytes": b.adapter_budget_mb << 20,
        }
        if b.threads:
            fields["n_threads"] = b.threads
        if b.mmproj:
            fields["mmproj"] = str(config.relative(Path(b.mmproj)))
        if b.flash_attn:
            fields["flash_attn"] = True
        return factories[name](model=local_model(config), **fields)
    if not b.urls:
        raise ConfigError(config.source or "continuum.toml", "backend.urls", "needs a server URL")
    extra: dict[str, Any] = {}
    if b.kind == "openai":
        extra["api"] = "openai"
        if b.api_key_env:
            extra["api_key"] = secret(config, "backend.api_key_env", b.api_key_env)
    return factories[name](model=b.model, urls=list(b.urls), **extra)


def media_bridge(
    config: MediaConfig,
    source: str = "continuum.toml",
    relative: Callable[[Path], Path] = lambda p: p,
) -> MediaBridge:
    """The bridge for audio and images a model cannot take, as the config says (paths
    relative to the config file through ``relative``)."""
    describer = None
    if config.describer_model or config.describer_mmproj:
        if not (config.describer_model and config.describer_mmproj):
            raise ConfigError(
                source, "media.describer_mmproj", "a describer needs both a model and its mmproj"
            )
        from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig
        from continuum.media.describer import ModelDescriber

        template = {"template": config.describer_template} if config.describer_template else {}
        describer = ModelDescriber(
            EmbeddedBackend(
                relative(config.describer_model),
                EmbeddedConfig(
                    live_slots=1, slot_ctx=4096, mmproj=str(relative(config.describer_mmproj))
                ),
            ),
            **template,
        )
    if config.stt == "none":
        return MediaBridge(describer=describer)
    if config.stt == "auto" and importlib.util.find_spec("faster_whisper") is None:
        log.info("no speech-to-text installed: voice messages are announced, not heard")
        return MediaBridge(describer=describer)
    from continuum.media.whisper import WhisperTranscriber

    transcriber = WhisperTranscriber(
        config.stt_model, language=config.stt_language, max_audio_s=config.max_audio_s
    )
    return MediaBridge(transcriber, describer)


class _Services:
    """HostServices for one host: everything a host may ask of the runtime."""

    def __init__(self, runtime: Runtime, host: str) -> None:
        self.runtime = runtime
        self.host = host

    async def ear(
        self,
        room_id: str,
        speaker: Participant,
        *,
        reply_to: ReplyTarget | None = None,
        visibility: Visibility = "public",
        on_heard: Callable[[str], Awaitable[None] | None] | None = None,
    ) -> Ear:
        return await self.runtime.voice.ear(
            self.host,
            room_id,
            speaker,
            reply_to=reply_to,
            visibility=visibility,
            on_heard=on_heard,
        )

    def personas(self) -> Sequence[PersonaCard]:
        return self.runtime.persona_cards()

    async def deliver(self, envelope: Envelope) -> Turn:
        return await self.runtime.deliver(self.host, envelope)

    async def submit(self, event: HostEvent) -> CommandResult | None:
        return await self.runtime.submit(self.host, event)

    async def remember_context(self, envelope: Envelope) -> None:
        await self.runtime.remember_context(self.host, envelope)

    def addressed(
        self,
        text: str,
        *,
        channel: str | None = None,
        thread: str | None = None,
        replying_to: str | None = None,
    ) -> tuple[str, ...]:
        named = addressed(text, self.runtime.personas)
        if named:
            return named
        messages = self.runtime.router.messages
        if replying_to:
            mapped = messages.lookup(self.host, replying_to)
            if mapped is not None and mapped.is_persona:
                return (mapped.author_id,)
        if thread and channel is not None:
            owner = messages.thread_owner(self.host, channel, thread)
            if owner is not None and any(p.id == owner for p in self.runtime.personas):
                return (owner,)
        return ()

    def watch(self, room_id: str, callback: Callable[[Any], None]) -> Callable[[], None]:
        room = self.runtime.router.room(RoomRouter.key(self.host, room_id))
        return room.events.subscribe(callback)


class Runtime:
    def __init__(
        self,
        config: ContinuumConfig | None = None,
        *,
        personas: Sequence[Persona] | None = None,
        backend: Backend | None = None,
        host_classes: Mapping[str, type[HostAdapter]] | None = None,
        memory: MemoryEngine | Literal[False] | None = None,
    ) -> None:
        self.config = config or ContinuumConfig()
        cfg = self.config
        self.personas = list(personas) if personas is not None else load_runtime_personas(cfg)
        self.data_dir = (
            cfg.relative(cfg.memory.data_dir) if cfg.memory.data_dir else default_data_dir()
        )
        uses_memory = memory is not False and (memory is not None or cfg.memory.enabled)
        if isinstance(memory, MemoryEngine):
            self.data_dir = memory.data_dir
        # one runtime per data dir (two would overwrite each other's persona state); checked
        # before the model loads, so a second process fails at once
        self._data_lock = lock_data_dir(self.data_dir) if uses_memory else None
        self.backend = backend or build_backend(cfg, self.personas)
        if not uses_memory:
            self.memory = None
        elif isinstance(memory, MemoryEngine):
            self.memory = memory
        else:
            self.memory = MemoryEngine(self.data_dir, key_env=cfg.memory.key_env)
        root = self.memory.data_dir if self.memory is not None else None
        # the genome: adapters registered under the data dir, checked against the model
        self.genome = None
        shared: list = []
        if root is not None:
            model = getattr(getattr(self.backend, "model", None), "path", None)
            self.genome = GenomeRegistry(root, base_model=model)
            self.personas = [resolve_persona(p, self.genome) for p in self.personas]
            shared = shared_library(self.genome)
        # training pairs from the turns of personas that opted in (encrypted like memory)
        self.pairs = PairLog(root, cipher=self.memory.cipher) if self.memory is not None else None
        self.state_store = PersonaStateStore(root / "state") if root else None
        self.people = PeopleDirectory(root / "people.json" if root else None)
        for person in cfg.people:
            self.people.link(person.id, person.name, *person.host_ids)
        self.hippocampus = Hippocampus(self.memory, self.backend) if self.memory else None
        self.bridge = media_bridge(cfg.media, str(cfg.source or "continuum.toml"), cfg.relative)
        self.router = RoomRouter(
            self.personas,
            self.backend,
            policy=cfg.policy,
            room_factory=lambda key: Room(
                key,
                self.personas,
                self.backend,
                policy=self.policy_for(key),
                memory=self.memory,
                state_store=self.state_store,
                names=self.people.name_of,
                identities=self.people.identities,
                shared_adapters=shared,
                bridge=self.bridge,
                pairs=self.pairs,
            ),
            memory=self.memory,
            state_store=self.state_store,
            messages=MessageMap(
                root / "messages.sqlite3" if root else None,
                cipher=self.memory.cipher if self.memory is not None else None,
            ),
            hippocampus=self.hippocampus,
        )
        self.router.on_new_room.append(self._watch_room)
        self.commands = CommandRouter(self)
        self._host_classes = dict(host_classes or {})
        self.hosts: dict[str, HostAdapter] = {}
        self.accepting = False
        self.turns: dict[str, Turn] = {}
        self.stats: Counter[str] = Counter()
        self.on_outcome: list[Callable[[Turn], None]] = []
        self._tg: TaskGroup | None = None
        self._background_scopes: list[anyio.CancelScope] = []
        self._stop = anyio.Event()
        self._closed = False
        self._voice: VoiceService | None = None

    @property
    def voice(self) -> VoiceService:
        """The voice service (:class:`continuum.voice.service.VoiceService`), built on
        first use: ears, speaking sinks, the room floors, cached TTS engines."""
        if self._voice is None:
            from continuum.voice.service import VoiceService

            self._voice = VoiceService(self)
        return self._voice

    def start_task(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` in the runtime's task group (an ear, a speaking sink)."""
        if self._tg is None:
            raise ContinuumError("the runtime is not running (use `async with Runtime(...)`)")
        self._tg.start_soon(fn)

    # --- life cycle ------------------------------------------------------------------------

    def _build_hosts(self) -> None:
        available = dict(plugins.hosts())
        available.update(self._host_classes)
        for name in self.config.host_names():
            cls = available.get(name)
            if cls is None:
                raise UnknownPlugin(
                    f"no host plugin {name!r} is installed (installed: {sorted(available)}); "
                    f"e.g. pip install continuum-{name}"
                )
            table = {k: v for k, v in self.config.hosts[name].items()}
            try:
                host_config = cls.config_model.model_validate(table)
            except Exception as exc:  # pydantic ValidationError: name the field
                errors = getattr(exc, "errors", lambda: [])()
                field = ".".join(str(p) for p in errors[0]["loc"]) if errors else None
                msg = errors[0]["msg"] if errors else str(exc)
                raise ConfigError(
                    self.config.source or "continuum.toml",
                    f"hosts.{name}" + (f".{field}" if field else ""),
                    msg,
                ) from exc
            try:
                self.hosts[name] = cls(_Services(self, name), host_config)
            except ConfigError as exc:  # e.g. a secret's environment variable is unset
                field = f"hosts.{name}.{exc.field}" if exc.field else f"hosts.{name}"
                raise ConfigError(
                    self.config.source or "continuum.toml", field, exc.message
                ) from exc

    def services_for(self, host: str) -> HostServices:
        """The services a host named ``host`` gets (built-in or attached)."""
        return _Services(self, host)

    def policy_for(self, room_key: str) -> RoomPolicy:
        """The policy of a room (``<host>:<room id>``): see ``ContinuumConfig.policy_for``."""
        host, _, room_id = room_key.partition(":")
        built = self.hosts.get(host)
        policy = self.config.policy_for(room_key, built.default_policy if built else None)
        if built is not None and built.speaks_in(room_id):  # one floor, few voices
            bound = min(policy.max_persona_turns_per_message, self.config.voice.max_speakers)
            update: dict[str, Any] = {"max_persona_turns_per_message": bound}
            if "deliberation" not in built.default_policy and not self.config.sets_policy(
                room_key, "deliberation"
            ):
                update["deliberation"] = "gate"  # no seconds of JSON before the first word
            if "keep_warm" not in built.default_policy and not self.config.sets_policy(
                room_key, "keep_warm"
            ):
                update["keep_warm"] = True  # the next voice turn evaluates only its message
            policy = policy.model_copy(update=update)
        return policy

    async def __aenter__(self) -> Runtime:
        self._build_hosts()
        self._cm = anyio.create_task_group()
        self._tg = await self._cm.__aenter__()
        if self.hippocampus is not None:
            self._tg.start_soon(self._background, "hippocampus", self.hippocampus.run)
        if self.state_store is not None:
            self._tg.start_soon(self._background, "state flusher", self._flush_state)
        self.accepting = True
        pending = self._replay()
        if self.state_store is not None:  # work a crashed process left in inboxes goes
            self.state_store.keep_item = lambda item: item.message_id in pending
        return self

    def _replay(self) -> set[str]:
        """Messages delivered before the last stop that have no outcome (a crash): answer
        them now if they are recent and nobody answered yet, else shed them with a reason.
        A message some persona already answered is not answered twice. Returns the ids
        being answered again."""
        replayed: set[str] = set()
        for pending in self.router.messages.pending():
            e = pending.envelope
            turn = Turn(e)
            age = time.time() - pending.delivered_at
            if pending.answered_by:
                self.router.messages.done(e.id)
                self._finish(turn, "answered", "answered before the restart")
            elif e.host not in self.hosts:
                self.router.messages.done(e.id)
                self._shed(turn, f"host {e.host!r} is not running after the restart")
            elif age > self.config.runtime.replay_within_s:
                self.router.messages.done(e.id)
                self._shed(turn, f"the process restarted {age:.0f}s after it arrived")
            else:
                log.info("answering %s again after a restart", e.id)
                self.turns[turn.message_id] = turn
                replayed.add(e.id)
                assert self._tg is not None
                self._tg.start_soon(self._answer, self.hosts[e.host], turn)
        return replayed

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.shutdown()
        finally:
            assert self._tg is not None
            self._tg.cancel_scope.cancel()
            await self._cm.__aexit__(None, None, None)
            self._close_stores()

    async def _background(self, name: str, run: Callable[[], Any]) -> None:
        """A background task, cancelled first at shutdown (so it never holds the model
        while replies in flight finish)."""
        with anyio.CancelScope() as scope:
            self._background_scopes.append(scope)
            await self._supervise(name, run)

    async def _supervise(self, name: str, run: Callable[[], Any]) -> None:
        """A background task that fails is logged and restarted (after a pause), never
        allowed to take the runtime down with it."""
        while True:
            try:
                await run()
                return
            except Exception:
                log.exception("%s failed; restarting it in 1 s", name)
                await anyio.sleep(1.0)

    async def _flush_state(self) -> None:
        assert self.state_store is not None
        while True:
            await anyio.sleep(self.state_store.min_interval_s)
            self.state_store.flush()

    def host(self, name: str) -> HostAdapter:
        try:
            return self.hosts[name]
        except KeyError as exc:
            raise UnknownPlugin(
                f"host {name!r} is not running (running: {sorted(self.hosts)})"
            ) from exc

    async def serve(self, *, handle_signals: bool = True) -> None:
        """Run every host until a signal, ``request_shutdown``, or every host has ended."""
        assert self._tg is not None, "use `async with Runtime(...)` around serve()"
        self._host_failures: list[str] = []
        async with anyio.create_task_group() as tg:
            if handle_signals:
                tg.start_soon(self._signals)
            running = [len(self.hosts)]

            async def run_host(name: str, host: HostAdapter) -> None:
                try:
                    await self._close_stale_replies(name, host)
                    await host.run()
                except ContinuumError as exc:  # said by the host: one line
                    self._host_failures.append(f"host {name}: {exc}")
                    self._stop.set()
                except Exception as exc:  # the traceback only with --verbose
                    log.debug("host %s failed", name, exc_info=True)
                    self._host_failures.append(f"host {name} failed: {type(exc).__name__}: {exc}")
                    self._stop.set()
                finally:
                    running[0] -= 1
                    if running[0] == 0:
                        self._stop.set()

            # the relevance gate's sentence model loads once, off the event loop (a room
            # built while it loads would stall every host's connections for a second)
            from continuum.room.room import default_gate_embedder

            await anyio.to_thread.run_sync(default_gate_embedder)
            for name, host in list(self.hosts.items()):
                tg.start_soon(run_host, name, host)
            if not self.hosts:
                self._stop.set()
            if self.config.runtime.attach and self.memory is not None:
                from continuum.attach import AttachServer, socket_path

                # host processes (an editor) join this runtime: same memory, same model
                await tg.start(AttachServer(self, socket_path(self.data_dir)).serve)
            await self._stop.wait()
            self.accepting = False
            tg.cancel_scope.cancel()
        if self._host_failures:
            # a host that cannot run stops the runtime: a service manager must see it
            raise HostFailed("; ".join(self._host_failures))

    async def _close_stale_replies(self, name: str, host: HostAdapter) -> None:
        """Replies a crash left open on this host are ended before it runs again."""
        stale = self.router.messages.open_replies(name)
        if not stale:
            return
        try:
            with anyio.fail_after(30):
                await host.close_stale_replies(stale)
        except Exception as exc:  # never worth not starting the host
            log.warning("host %s could not close %d stale replies: %s", name, len(stale), exc)
        self.router.messages.close_replies(name, stale)

    def request_shutdown(self) -> None:
        self._stop.set()

    async def _signals(self) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.warning("received %s: shutting down", signal.Signals(signum).name)
                self.request_shutdown()
                return

    async def shutdown(self) -> None:
        """Stop taking events; let replies in flight finish (up to the grace period);
        cancel the rest cleanly; consolidate and persist."""
        if self._closed:
            return
        self._closed = True
        self.accepting = False
        self._stop.set()
        for scope in self._background_scopes:  # consolidation must not hold the model now
            scope.cancel()
        pending = [t for t in self.turns.values() if not t.done]
        if pending:
            with anyio.move_on_after(self.config.runtime.shutdown_grace_s):
                for turn in pending:
                    await turn.wait()
            for turn in pending:
                if not turn.done:
                    turn.cancel()
            with anyio.move_on_after(5, shield=True):
                for turn in pending:
                    await turn.wait()
        if self.hippocampus is not None:
            self.hippocampus.consolidate_reduced()
        for name, host in list(self.hosts.items()):
            with anyio.move_on_after(5, shield=True):
                try:
                    await host.aclose()
                except Exception:
                    log.exception("host %s did not close cleanly", name)
        if self._voice is not None:
            self._voice.close()
        if self.state_store is not None:
            self.state_store.flush()
        with anyio.CancelScope(shield=True):
            await self.backend.aclose()

    def _close_stores(self) -> None:
        self.router.close()
        if self.memory is not None:
            self.memory.close()
        if self._data_lock is not None:
            self._data_lock.release()

    # --- what hosts call ---------------------------------------------------------------------

    def persona_cards(self) -> list[PersonaCard]:
        return [
            PersonaCard(
                id=p.id,
                name=p.name,
                avatar_url=p.avatar_url,
                voice=p.voice.voice,
                specialty=p.specialty,
            )
            for p in self.personas
        ]

    def person(self, host: str, author: Participant) -> Participant:
        """A host's participant as continuum knows them: people resolve to one person id
        across hosts; bots and others keep a host-qualified id."""
        if author.kind == ParticipantKind.PERSONA and any(p.id == author.id for p in self.personas):
            return author  # one of ours, as the host recognised it
        if author.kind != ParticipantKind.PERSON:
            return author.model_copy(update={"id": f"{host}:{author.id}"})
        person_id = self.people.resolve(host, author.id)
        name = self.people.name_of(person_id) or author.name
        return Participant(id=person_id, name=name, kind=author.kind)

    async def deliver(self, host: str, envelope: Envelope, *, held: bool = False) -> Turn:
        """Hand a message to its room; returns at once with its :class:`Turn`.

        ``held``: a voice utterance delivered in the pause, before its end of turn (see
        :mod:`continuum.voice.ear`): answered at once, heard only after :meth:`release`;
        :meth:`retract` takes it back without a trace."""
        if envelope.host != host:
            raise MalformedEvent(f"host {host!r} delivered an envelope of {envelope.host!r}")
        if host not in self.hosts:
            raise UnknownPlugin(f"host {host!r} is not running")
        envelope = envelope.model_copy(
            update={
                "author": self.person(host, envelope.author),
                "platform_author": envelope.platform_author or envelope.author,
            }
        )
        turn = Turn(envelope, held=held)
        if not self.accepting or self._tg is None:
            return self._shed(turn, "the runtime is shutting down")
        if envelope.host_message_id:  # durable: survives restarts, like the platform's retries
            known = self.router.messages.lookup(host, envelope.host_message_id)
            if known is not None:
                why = "one of our own posts, echoed" if known.is_persona else "already delivered"
                log.info("%s message %s: %s", host, envelope.host_message_id, why)
                self._finish(turn, "duplicate", why)
                return turn
        in_flight = sum(1 for t in self.turns.values() if not t.done)
        if in_flight >= self.config.runtime.max_in_flight:
            return self._shed(turn, f"{in_flight} messages already in flight")
        self.turns[turn.message_id] = turn
        self.router.messages.add_pending(envelope, time.time())
        if envelope.host_message_id:  # known from now on: a redelivery is a duplicate
            self.router.messages.record(
                host,
                envelope.host_message_id,
                RoomRouter.key(host, envelope.room_id),
                envelope.id,
                envelope.author.id,
                False,
            )
        if len(self.turns) > 4 * self.config.runtime.max_in_flight:
            for key in [k for k, t in self.turns.items() if t.done][: len(self.turns) // 2]:
                del self.turns[key]
        self._tg.start_soon(self._answer, self.hosts[host], turn)
        return turn

    def release(self, turn: Turn) -> None:
        """A held voice turn's end of turn came on the same words: its replies are heard,
        and the message is remembered like any other."""
        if turn.gate is None or turn.gate.is_set():
            return
        key = RoomRouter.key(turn.envelope.host, turn.envelope.room_id)
        self.router.room(key).confirm(turn.message_id)
        turn.gate.set()

    def retract(self, turn: Turn) -> None:
        """A held voice turn the person talked through: cancelled, and the message and
        anything written for it leave the history, memory and training pairs (nothing of
        it was heard)."""
        if turn.gate is None or turn.gate.is_set():
            return
        turn.retracted = True
        turn.cancel()
        if turn.done:  # answered (silently) already: only the message is left to take back
            self._take_back(turn)

    def _take_back(self, turn: Turn) -> None:
        key = RoomRouter.key(turn.envelope.host, turn.envelope.room_id)
        self.router.room(key).retract(turn.message_id)

    async def remember_context(self, host: str, envelope: Envelope) -> None:
        """A message the platform already had, into its room's history (no turn)."""
        if envelope.host != host:
            raise MalformedEvent(f"host {host!r} delivered an envelope of {envelope.host!r}")
        envelope = envelope.model_copy(update={"author": self.person(host, envelope.author)})
        room = self.router.room(RoomRouter.key(host, envelope.room_id))
        if any(m.id == envelope.id for m in room.history):
            return
        # a message the map knows already (a persona's own reply, a message answered in the
        # channel before its thread became a room) keeps its mapping: remapping it to this
        # context copy would cut a persona's reply off its reactions
        known = envelope.host_message_id and self.router.messages.lookup(
            host, envelope.host_message_id
        )
        if envelope.host_message_id and not known:
            self.router.messages.record(
                host,
                envelope.host_message_id,
                room.key,
                envelope.id,
                envelope.author.id,
                envelope.author.kind == ParticipantKind.PERSONA,
            )
        room.receive(envelope)

    def _shed(self, turn: Turn, reason: str) -> Turn:
        e = turn.envelope
        key = RoomRouter.key(e.host, e.room_id)
        if key in self.router.rooms:
            self.router.rooms[key].events.emit(
                MessageShed(room_id=key, message_id=e.id, reason=reason)
            )
        log.warning("shed %s in %s: %s", e.id, key, reason)
        self._finish(turn, "shed", reason)
        return turn

    def _finish(self, turn: Turn, outcome: Outcome, reason: str = "") -> None:
        self.stats[outcome] += 1
        turn._end(outcome, reason)
        for callback in self.on_outcome:
            try:
                callback(turn)
            except Exception:
                log.exception("outcome callback failed")

    async def _answer(self, host: HostAdapter, turn: Turn) -> None:
        outcome: Outcome = "failed"
        reason = ""
        with anyio.CancelScope() as scope:
            turn._scope = scope
            if turn._cancel_requested:
                scope.cancel()
            key = RoomRouter.key(turn.envelope.host, turn.envelope.room_id)
            silences: list[str] = []  # why nobody answered, for a host that asked

            def heard(event: RoomEvent) -> None:
                if isinstance(event, PersonaSilent):
                    silences.append(f"{event.persona_id}: {event.reason}")

            room = self.router.room(key)
            if turn.gate is not None:
                room.hold(turn.message_id)  # remembered only once it is released
            unsubscribe = room.events.subscribe(heard)
            sinks: list[_Watched] = []

            async def open_reply(start: ReplyStart) -> ReplySink:
                text = _Watched(await host.open_reply(start), host.capabilities)
                if not host.speaks_in(turn.envelope.room_id):
                    sinks.append(text)
                    return text
                persona = next(p for p in self.personas if p.id == start.persona_id)
                try:
                    engine = self.voice.engine(persona.voice.engine)
                except ContinuumError as exc:  # no voice: the reply is still written
                    log.warning("%s cannot speak: %s", persona.id, exc)
                    sinks.append(text)
                    return text
                output = await host.open_audio(start)
                spoken = self.voice.speaking_sink(start, persona, output, text, turn, engine)
                sinks.append(_Watched(spoken, _STREAMING))
                return sinks[-1]

            try:
                turn.replies = await self.router.dispatch(turn.envelope, replies=open_reply)
                outcome = "answered" if turn.replies else "silent"
                reason = "" if turn.replies else "; ".join(silences) or "nobody answered"
            except BackendBusy as exc:
                outcome, reason = "shed", str(exc)
                self.router.room(key).events.emit(
                    MessageShed(room_id=key, message_id=turn.message_id, reason=reason)
                )
            except ContinuumError as exc:
                outcome, reason = "failed", str(exc)
                log.warning("message %s failed: %s", turn.message_id, exc)
            except Exception as exc:
                outcome, reason = "failed", repr(exc)
                log.exception("message %s failed", turn.message_id)
            finally:
                unsubscribe()
        if scope.cancelled_caught:
            outcome, reason = "cancelled", "cancelled"
        if turn.retracted:  # the person talked on: none of it happened
            self._take_back(turn)
            outcome, reason = "cancelled", "retracted: the person went on talking"
        if outcome == "cancelled" and self._closed and not any(w.wrote for w in sinks):
            # stopped before anyone answered (SIGTERM while thinking): it stays pending, so
            # the next start answers it (within replay_within_s)
            self._finish(turn, outcome, "the runtime stopped; answered after the restart")
            return
        # a cancelled turn (barge-in, a reply cut by shutdown) has an outcome: it is not
        # answered again
        self.router.messages.done(turn.message_id)
        self._finish(turn, outcome, reason)
        room = self.router.rooms.get(key)
        if outcome == "answered" and room is not None and room.policy.keep_warm:
            speakers = {r.persona_id for r in turn.replies}
            self.start_task(functools.partial(room.keep_warm, speakers))

    async def submit(self, host: str, event: HostEvent) -> CommandResult | None:
        if event.host != host:
            raise MalformedEvent(f"host {host!r} submitted an event of {event.host!r}")
        if isinstance(event, MessageEvent):
            await self.deliver(host, event.envelope)
            return None
        if isinstance(event, CommandEvent):
            author = self.person(host, event.author)
            return await self.commands.run(
                event.model_copy(update={"author": author}), raw_user_id=event.author.id
            )
        try:
            if isinstance(event, ReactionEvent):
                if event.positive is not None:
                    positive = event.positive if not event.removed else not event.positive
                    self.router.react(host, event.host_message_id, positive)
            elif isinstance(event, EditEvent):
                self.router.edit(host, event.host_message_id, event.text)
            elif isinstance(event, DeleteEvent):
                self.router.delete(host, event.host_message_id)
            elif isinstance(event, MembershipEvent):
                room = self.router.room(RoomRouter.key(host, event.room_id))
                who = self.person(host, event.participant)
                if event.joined:
                    room.participants.setdefault(who.id, who)
                elif who.id not in room.personas:
                    room.participants.pop(who.id, None)
        except UnknownMessage as exc:
            log.info("%s event for an unknown message: %s", event.kind, exc)
        return None

    # --- room events the hosts see -----------------------------------------------------------

    def _watch_room(self, room: Room) -> None:
        host_name = room.key.split(":", 1)[0]

        def on_event(event: RoomEvent) -> None:
            if isinstance(event, MessageTaken):
                turn = self.turns.get(event.message_id)
                if turn is not None:
                    turn.started_at = time.monotonic()
                return
            host = self.hosts.get(host_name)
            if host is None or not host.capabilities.typing or self._tg is None:
                return
            if isinstance(event, TurnStarted) and room.current is not None:
                persona = None if event.phase == "analyzing" else event.persona_id
                self._tg.start_soon(self._typing, host, room.current.reply_to, persona)

        room.events.subscribe(on_event)

    async def _typing(self, host: HostAdapter, reply_to: Any, persona_id: str | None) -> None:
        try:
            await host.typing(reply_to, persona_id)
        except Exception:
            log.debug("typing indicator failed on %s", host.name, exc_info=True)

    def now(self) -> float:
        return time.time()
