"""A real LiveKit server on loopback (built once from the Go module proxy by
scripts/build-livekit-server and cached) and a test participant that speaks, listens
and reads captions through the real ``livekit`` SDK."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from livekit import rtc

from continuum.testing import ScriptedBackend, serve_host
from continuum.voice.audio import read_wav, resample
from continuum_livekit.tokens import mint_token

ROOT = Path(__file__).resolve().parents[3]
KEY = "testkey"
SECRET = "a-test-secret-that-is-long-enough-32"
KEY_ENV, SECRET_ENV = "CONTINUUM_TEST_LIVEKIT_KEY", "CONTINUUM_TEST_LIVEKIT_SECRET"
ROOM = "standup"
RATE = 48_000
FRAME = RATE // 100
MIC_QUEUE_MS = 30_000  # longer than anything a test says


def _free_ports(n: int) -> list[int]:
    """n consecutive free ports (TCP and UDP), for the server's HTTP, RTC/TCP and RTC/UDP."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + n > 65000:
            continue
        ok = True
        for port in range(base, base + n):
            for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                with socket.socket(socket.AF_INET, kind) as s:
                    try:
                        s.bind(("127.0.0.1", port))
                    except OSError:
                        ok = False
        if ok:
            return list(range(base, base + n))
    raise RuntimeError("no free ports")


class LiveKitServer:
    """``livekit-server`` on 127.0.0.1 with its own ports and a test key; restartable."""

    def __init__(self, binary: str, log_path: Path) -> None:
        self.binary = binary
        self.log_path = log_path
        self.port, self.tcp_port, self.udp_port = _free_ports(3)
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def start(self) -> None:
        body = (
            f"port: {self.port}\n"
            f"rtc:\n  tcp_port: {self.tcp_port}\n  udp_port: {self.udp_port}\n"
            "  use_external_ip: false\n"
            f"keys:\n  {KEY}: {SECRET}\n"
            "logging:\n  level: warn\n"
            "room:\n  empty_timeout: 30\n"
        )
        log = open(self.log_path, "ab")  # noqa: SIM115 - the server's, closed with it
        self.proc = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--node-ip", "127.0.0.1", "--config-body", body],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.starts += 1
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"livekit-server exited; see {self.log_path}")
            answer = f"http://127.0.0.1:{self.port}/"
            with contextlib.suppress(OSError), urllib.request.urlopen(answer, timeout=1) as r:
                if r.status == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"livekit-server did not answer; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="session")
def livekit_binary() -> str:
    """The cached server binary (built on first use: ~2 min, needs Go)."""
    found = os.environ.get("CONTINUUM_LIVEKIT_SERVER")
    if found:
        return found
    done = subprocess.run(
        [str(ROOT / "scripts" / "build-livekit-server")], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.fail(
            "these tests need a LiveKit server, built from the Go module proxy by "
            "scripts/build-livekit-server (needs Go >= 1.23: apt-get install golang or "
            f"https://go.dev/dl/):\n{done.stderr[-2000:]}",
            pytrace=False,
        )
    return done.stdout.strip()


@pytest.fixture
def livekit_server(livekit_binary, tmp_path, monkeypatch):
    server = LiveKitServer(livekit_binary, tmp_path / "livekit-server.log")
    server.start()
    monkeypatch.setenv(KEY_ENV, KEY)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    yield server
    server.stop()


def host_settings(server: LiveKitServer, **kw: Any) -> dict[str, Any]:
    return {
        "url": server.url,
        "api_key_env": KEY_ENV,
        "api_secret_env": SECRET_ENV,
        "rooms": [ROOM],
        "reconnect_max_s": 1.0,
        **kw,
    }


def serving(tmp_path, server, personas, reply, *, settings=None, config=None, **kw):
    """A runtime serving the LiveKit host (scripted words, real voice path)."""
    backend = reply if not callable(reply) else ScriptedBackend(reply)
    return serve_host(
        "livekit",
        host_settings(server, **(settings or {})),
        data_dir=tmp_path / "data",
        personas=personas,
        backend=backend,
        config={"media": {"stt": "whisper"}, **(config or {})},
        **kw,
    )


def espeak(tmp_path, text: str, voice: str = "en-us", speed: int = 140) -> np.ndarray:
    """``text`` spoken by espeak-ng, as 48 kHz mono float32."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("these tests speak with espeak-ng: sudo apt-get install espeak-ng")
    path = tmp_path / "said.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    samples, rate = read_wav(path.read_bytes())
    return resample(samples, rate, RATE)


@pytest.fixture
def transcriber():
    from continuum.errors import ContinuumError
    from continuum.media.whisper import WhisperTranscriber

    try:
        return WhisperTranscriber()
    except ContinuumError as exc:
        pytest.fail(f"{exc} (or run ./scripts/test)", pytrace=False)


async def until(
    predicate: Callable[[], Any],
    timeout: float = 30.0,
    every: float = 0.05,
    state: Callable[[], str] | None = None,
) -> Any:
    """``predicate``'s first true value; on timeout, what ``state`` says went on."""
    try:
        with anyio.fail_after(timeout):
            while True:
                value = predicate()
                if value:
                    return value
                await anyio.sleep(every)
    except TimeoutError as exc:
        if state is not None:
            exc.add_note(state())
        raise


def room_state(probe: Any, person: Person | None = None) -> str:
    """What the runtime heard and said, for a failing test's report."""
    lines = [f"stats {dict(probe.stats)}"]
    for ear in probe._rt.voice.ears:
        for h in ear.heard:
            lines.append(f"heard {h.transcript!r} ended by {h.ended_by}, "
                         f"held {h.preempted}, retracted {h.retracted}")  # fmt: skip
    lines += [f"history {m.author.id}: {m.text!r}" for m in probe.history(ROOM)]
    if person is not None:
        lines.append(f"the person heard speech from {person.speaking()}")
    return "\n".join(lines)


@dataclass
class Caption:
    sender: str
    attributes: dict[str, str]
    text: str
    at: float


LOUD = 0.02  # a 10 ms frame with speech energy (RMS)


@dataclass
class Heard:
    """What one remote participant's track brought: 10 ms frames with arrival times, and
    the arrival times of the loud ones (kept as they come: polling stays cheap)."""

    frames: list[np.ndarray] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    loud_times: list[float] = field(default_factory=list)

    def add(self, frame: np.ndarray, at: float) -> None:
        self.frames.append(frame)
        self.times.append(at)
        if np.sqrt(np.mean(frame**2)) > LOUD:
            self.loud_times.append(at)

    def audio(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, np.float32)

    def loud(self) -> list[float]:
        """Arrival times of the frames with speech energy in them."""
        return self.loud_times

    def spans(self, gap_s: float = 0.6) -> list[tuple[float, float]]:
        """Stretches of speech (loud frames less than ``gap_s`` apart)."""
        out: list[tuple[float, float]] = []
        for t in self.loud_times:
            if out and t - out[-1][1] <= gap_s:
                out[-1] = (out[-1][0], t)
            else:
                out.append((t, t))
        return out


class Person:
    """A person in the room, through the real SDK: a microphone track, the personas'
    tracks heard (16 kHz mono), the captions and chat that arrive."""

    def __init__(self, server: LiveKitServer, identity: str = "sam", name: str = "Sam") -> None:
        self.server = server
        self.identity, self.name = identity, name
        self.room = rtc.Room()
        self.heard: dict[str, Heard] = {}
        self.captions: list[Caption] = []
        self.mic: rtc.AudioSource | None = None
        self.mic_sid: str | None = None
        self._tasks: list[Any] = []
        self.room.on("track_subscribed", self._subscribed)
        self.room.register_text_stream_handler("lk.transcription", self._caption)

    async def join(self, room: str = ROOM) -> Person:
        import asyncio

        self._loop = asyncio.get_running_loop()
        token = mint_token(KEY, SECRET, room, self.identity, name=self.name)
        await self.room.connect(self.server.url, token)
        # the whole utterance is queued at once and paced out by the SDK's native side: this
        # test participant shares the runtime's event loop, and with the default 1 s queue
        # a busy moment there left gaps in the person's speech (Whisper heard garble)
        self.mic = rtc.AudioSource(RATE, 1, queue_size_ms=MIC_QUEUE_MS)
        track = rtc.LocalAudioTrack.create_audio_track("mic", self.mic)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        self.mic_sid = (await self.room.local_participant.publish_track(track, options)).sid
        return self

    async def leave(self) -> None:
        for task in self._tasks:
            task.cancel()
        with anyio.move_on_after(5):
            await self.room.disconnect()

    def _subscribed(self, track: rtc.Track, publication: Any, participant: Any) -> None:
        if track.kind != rtc.TrackKind.KIND_AUDIO:
            return
        heard = self.heard.setdefault(participant.identity, Heard())
        self._tasks.append(self._loop.create_task(self._listen(track, heard)))

    async def _listen(self, track: rtc.Track, heard: Heard) -> None:
        async for event in rtc.AudioStream(track, sample_rate=16_000, num_channels=1):
            samples = np.frombuffer(event.frame.data, np.int16) / np.float32(32768)
            heard.add(samples, time.monotonic())

    def _caption(self, reader: rtc.TextStreamReader, identity: str) -> None:
        async def read() -> None:
            text = await reader.read_all()
            self.captions.append(
                Caption(identity, dict(reader.info.attributes or {}), text, time.monotonic())
            )

        self._tasks.append(self._loop.create_task(read()))

    async def speak(self, samples: np.ndarray, then_silence_s: float = 0.0) -> float:
        """Say ``samples`` (48 kHz mono float) in real time; returns when the last of it
        left (monotonic), after ``then_silence_s`` of silence."""
        assert self.mic is not None
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        silence = np.zeros(int(then_silence_s * RATE), np.int16)
        end = None
        for chunk, is_speech in ((pcm, True), (silence, False)):
            chunk = np.concatenate([chunk, np.zeros(-len(chunk) % FRAME, np.int16)])
            for i in range(0, len(chunk), FRAME):
                await self.mic.capture_frame(rtc.AudioFrame(chunk[i : i + FRAME].tobytes(),
                                                            RATE, 1, FRAME))  # fmt: skip
            if is_speech:
                end = time.monotonic() + self.mic.queued_duration
        await self.mic.wait_for_playout()
        assert end is not None
        return end

    async def chat(self, text: str) -> None:
        await self.room.local_participant.send_text(text, topic="lk.chat")

    def speaking(self) -> list[str]:
        """Whose tracks carried speech."""
        return sorted(i for i, h in self.heard.items() if h.loud())


async def hears_everyone(person: Person, probe, personas) -> None:
    """The listener hears the person, and the person hears every persona's track."""
    host = probe.host
    await until(
        lambda: ROOM in host.rooms and person.identity in host.rooms[ROOM].listener.listening,
        timeout=60,
    )
    await until(lambda: all(p.id in person.heard for p in personas), timeout=30)
    # the ear's voice-activity model loads as it starts; the test participant shares this
    # event loop, and speech it sends while the loop is busy arrives with gaps
    await anyio.sleep(1.5)
