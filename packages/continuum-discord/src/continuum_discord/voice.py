"""Personas in a Discord voice channel: speaking through discord.py's voice client, and
hearing the people there through a receive path discord.py does not have.

**Speaking.** The core's speaking sink writes a persona's reply as mono float samples at
48 kHz into a :class:`DiscordAudioOutput`; discord.py's player thread reads it as 20 ms
frames of 48 kHz stereo s16 PCM (:class:`_VoiceStream`, an ``AudioSource``) and encodes
them with libopus. What the player has read is the playout clock (``played_s``). One
persona speaks at a time: the core's floor decides who, this module only plays the
current output.

**Hearing.** :class:`ListeningVoiceClient` is a ``discord.VoiceClient`` that also listens:
its voice websocket hook learns which SSRC is which person (SPEAKING, op 5) and a
socket listener gets every UDP packet, which :mod:`continuum_discord.rtp` opens
(transport encryption), DAVE's end-to-end layer removes where the call negotiated it
(``davey``, the session discord.py keeps), and libopus decodes. Each person's frames go
to the runtime's ear for them, with silence filled in when Discord stops sending (it
sends nothing while someone is quiet, and an ear needs the silence to end a turn).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import discord
import numpy as np
from discord.voice_state import VoiceConnectionState

from continuum.hosts.audio import AudioOutput, Ear
from continuum.hosts.base import ReplyStart
from continuum_discord.rtp import UndecryptablePacket, is_rtp, open_packet

log = logging.getLogger("continuum.discord.voice")

RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms
FRAME_BYTES = FRAME_SAMPLES * 2 * 2  # stereo s16
SILENCE = bytes(FRAME_BYTES)
IDLE_FRAMES = 25  # the player stops after 0.5 s with nothing to play


class DiscordAudioOutput(AudioOutput):
    """One persona's spoken reply on the guild's voice connection."""

    sample_rate = RATE

    def __init__(self, start: ReplyStart, guild: GuildVoice) -> None:
        self.start = start
        self.guild = guild
        self._buffer = bytearray()
        self._lock = threading.Lock()
        self._played_frames = 0
        self.closed = False

    async def write(self, samples: np.ndarray) -> None:
        mono = np.clip(np.asarray(samples, np.float32), -1.0, 1.0)
        pcm = (mono * 32767).astype("<i2")
        stereo = np.repeat(pcm, 2).tobytes()
        with self._lock:
            self._buffer += stereo
        self.guild.play(self)

    def read_frame(self) -> bytes | None:
        """The next 20 ms (the player thread), None when nothing is buffered."""
        with self._lock:
            if not self._buffer:
                return None
            frame = bytes(self._buffer[:FRAME_BYTES])
            del self._buffer[:FRAME_BYTES]
        self._played_frames += 1
        return frame.ljust(FRAME_BYTES, b"\0")

    def played_s(self) -> float:
        return self._played_frames * FRAME_SAMPLES / RATE

    def clear(self) -> None:
        with self._lock:
            self._buffer.clear()

    @property
    def drained(self) -> bool:
        with self._lock:
            return not self._buffer

    async def close(self) -> None:
        self.closed = True
        while not self.drained and self.guild.connected:  # played out before it ends
            await asyncio.sleep(0.02)
        self.guild.release(self)


class _VoiceStream(discord.AudioSource):
    """What discord.py's player reads: the current output's frames, silence while it
    waits for more, and the end after a moment with nothing to play."""

    def __init__(self, guild: GuildVoice) -> None:
        self.guild = guild
        self.idle = 0

    def read(self) -> bytes:
        output = self.guild.current
        frame = output.read_frame() if output is not None else None
        if frame is not None:
            self.idle = 0
            return frame
        self.idle += 1
        return b"" if self.idle > IDLE_FRAMES else SILENCE

    def is_opus(self) -> bool:
        return False


class _Listener:
    """One person's stream: Opus frames in (from the socket thread), PCM to their ear,
    with silence filled in for the gaps Discord leaves."""

    def __init__(self, user_id: int, ear: Ear, loop: asyncio.AbstractEventLoop) -> None:
        self.user_id = user_id
        self.ear = ear
        self.loop = loop
        self.decoder = discord.opus.Decoder()
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.task = loop.create_task(self._feed())
        self.last_sequence: int | None = None

    def packet(self, opus: bytes, sequence: int) -> None:  # the socket thread
        if self.last_sequence is not None and (sequence - self.last_sequence) % 65536 > 32768:
            return  # late or repeated
        self.last_sequence = sequence
        try:
            pcm = self.decoder.decode(opus, fec=False)
        except discord.opus.OpusError as exc:
            log.debug("undecodable Opus frame from %s: %s", self.user_id, exc)
            return
        self.loop.call_soon_threadsafe(self.queue.put_nowait, pcm)

    async def _feed(self) -> None:
        silent_since: float | None = None
        last = time.monotonic()
        while True:
            try:
                pcm = await asyncio.wait_for(self.queue.get(), timeout=0.06)
            except TimeoutError:
                now = time.monotonic()
                silent_since = silent_since or last
                if now - silent_since < 3.0:  # long enough for any end of turn
                    frames = max(1, int((now - last) * 50))
                    await self.ear.push(np.zeros(frames * FRAME_SAMPLES * 2, np.int16), RATE, 2)
                last = now
                continue
            if pcm is None:
                return
            silent_since, last = None, time.monotonic()
            await self.ear.push(np.frombuffer(pcm, np.int16), RATE, 2)

    async def close(self) -> None:
        self.queue.put_nowait(None)
        await asyncio.gather(self.task, return_exceptions=True)
        await self.ear.close()


EarFor = Callable[[int], Awaitable[Ear | None]]


class ListeningVoiceClient(discord.VoiceClient):
    """discord.py's voice client, plus hearing (see the module's docs)."""

    def __init__(
        self, client: discord.Client, channel: discord.abc.Connectable, ear_for: EarFor
    ) -> None:
        self.ear_for = ear_for
        super().__init__(client, channel)
        self.ssrcs: dict[int, int] = {}  # ssrc -> user id
        self.listeners: dict[int, _Listener] = {}  # user id -> listener
        self._pending: set[int] = set()
        self.undecryptable = 0
        self.heard_packets = 0

    def create_connection_state(self) -> VoiceConnectionState:
        self.listening_state = VoiceConnectionState(self, hook=self._on_voice_ws)
        return self.listening_state

    async def _on_voice_ws(self, ws: Any, msg: dict[str, Any]) -> None:
        op, data = msg.get("op"), msg.get("d") or {}
        if op == 5 and "user_id" in data and "ssrc" in data:  # SPEAKING: who is this SSRC
            self.ssrcs[int(data["ssrc"])] = int(data["user_id"])
        elif op == 13 and "user_id" in data:  # CLIENT_DISCONNECT
            await self.forget(int(data["user_id"]))

    def start_listening(self) -> None:
        self.listening_state.add_socket_listener(self._on_packet)

    def _on_packet(self, packet: bytes) -> None:  # the socket reader thread
        if not is_rtp(packet):
            return
        key = self.listening_state.secret_key
        if not key:
            return
        try:
            opened = open_packet(packet, self.listening_state.mode, bytes(key))
        except UndecryptablePacket as exc:
            self.undecryptable += 1
            if self.undecryptable in (1, 100, 10_000):
                log.warning(
                    "voice packets that cannot be opened (%d so far): %s", self.undecryptable, exc
                )
            return
        user_id = self.ssrcs.get(opened.ssrc)
        if user_id is None or user_id == self.user.id:
            return  # not announced yet, or our own
        opus = opened.opus
        dave = self.listening_state.dave_session
        if dave is not None and self.listening_state.dave_protocol_version > 0 and dave.ready:
            try:
                import davey

                opus = dave.decrypt(user_id, davey.MediaType.audio, opus)
            except Exception as exc:
                log.debug("DAVE could not open a frame from %s: %s", user_id, exc)
                return
        self.heard_packets += 1
        listener = self.listeners.get(user_id)
        if listener is None:
            if user_id not in self._pending:
                self._pending.add(user_id)
                asyncio.run_coroutine_threadsafe(self._listen_to(user_id), self.loop)
            return
        listener.packet(opus, opened.sequence)

    async def _listen_to(self, user_id: int) -> None:
        try:
            ear = await self.ear_for(user_id)
            if ear is not None:
                self.listeners[user_id] = _Listener(user_id, ear, self.loop)
        finally:
            self._pending.discard(user_id)

    async def forget(self, user_id: int) -> None:
        listener = self.listeners.pop(user_id, None)
        if listener is not None:
            await listener.close()

    async def stop_listening(self) -> None:
        for user_id in list(self.listeners):
            await self.forget(user_id)


class GuildVoice:
    """The bot's voice connection in one guild: the outputs personas speak into (one
    plays at a time) and the listeners for the people there."""

    def __init__(self, client: ListeningVoiceClient) -> None:
        self.client = client
        self.current: DiscordAudioOutput | None = None
        self._queue: list[DiscordAudioOutput] = []
        self._lock = threading.Lock()

    @property
    def channel_id(self) -> int:
        return self.client.channel.id

    @property
    def connected(self) -> bool:
        return self.client.is_connected()

    def open(self, start: ReplyStart) -> DiscordAudioOutput:
        return DiscordAudioOutput(start, self)

    def play(self, output: DiscordAudioOutput) -> None:
        """``output`` has audio: it plays now if nothing else is, else after the one that
        is (the core's floor already orders speakers; this keeps two outputs from mixing)."""
        with self._lock:
            if self.current is None:
                self.current = output
            elif output is not self.current and output not in self._queue:
                self._queue.append(output)
        self._start()

    def _start(self) -> None:
        """discord.py's player stops after a quiet moment: start it again when needed."""
        if self.connected and not self.client.is_playing():
            self.client.play(_VoiceStream(self), after=self._stopped, signal_type="voice")

    def release(self, output: DiscordAudioOutput) -> None:
        with self._lock:
            if self.current is output:
                self.current = self._queue.pop(0) if self._queue else None
            elif output in self._queue:
                self._queue.remove(output)
        if self.current is not None:
            self._start()

    def _stopped(self, error: Exception | None) -> None:
        if error is not None:
            log.warning("voice playback stopped: %s", error)

    async def disconnect(self) -> None:
        await self.client.stop_listening()
        if self.client.is_connected():
            await self.client.disconnect(force=True)
