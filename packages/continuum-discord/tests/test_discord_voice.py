"""Voice in a Discord voice channel, end to end on real audio: discord.py's voice client
(unpatched, with the receive path continuum adds) dials a local voice server over TLS,
negotiates transport encryption (dave_protocol_version 0), and a person's speech (made
with espeak-ng) arrives as encrypted Opus; the persona's ear hears it, and the answer,
synthesized in the persona's voice, comes back as Opus that the test decodes with the
system libopus and understands with Whisper."""

from __future__ import annotations

import shutil
import subprocess
import time

import anyio
import numpy as np
import pytest
from discord_peer import SAM, VOICE, until
from discord_testkit import serving
from voice_peer import VoicePeer

from continuum.persona import Persona, VoiceSpec
from continuum.testing import ScriptedBackend
from continuum.voice.audio import read_wav, resample

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("discord_env")]

MAYA = Persona(
    id="maya",
    name="Maya",
    identity="Maya, a performance engineer.",
    expertise=("performance", "caching"),
    voice=VoiceSpec(voice="en-us+f3", pitch=60),
)
ANSWER = "The cache hit rate was ninety percent yesterday."


def espeak(tmp_path, text: str) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        pytest.fail("this test speaks with espeak-ng: sudo apt-get install espeak-ng")
    path = tmp_path / "said.wav"
    subprocess.run(["espeak-ng", "-s", "140", "-w", str(path), text], check=True)
    samples, rate = read_wav(path.read_bytes())
    return resample(samples, rate, 48_000)


@pytest.fixture
def transcriber():
    from continuum.errors import ContinuumError
    from continuum.media.whisper import WhisperTranscriber

    try:
        return WhisperTranscriber()
    except ContinuumError as exc:  # the packaged model is missing: say how to install it
        pytest.fail(f"{exc} (or run ./scripts/test)", pytrace=False)


@pytest.fixture
async def voice(peer, tmp_path):
    import ctypes.util

    if ctypes.util.find_library("opus") is None:
        pytest.fail("Discord voice needs the system's libopus: sudo apt-get install libopus0")
    v = await VoicePeer(tmp_path).start()
    peer.voice = v
    yield v
    await v.stop()


async def test_a_person_speaks_and_the_persona_answers_in_its_voice(
    tmp_path, peer, voice, transcriber
):
    seen: list[str] = []
    backend = ScriptedBackend(lambda req: seen.append(req.prompt) or ANSWER)
    settings = {"voice_channels": [VOICE], "ca_file": str(voice.ca_path)}
    config = {"media": {"stt": "whisper"}}
    async with serving(tmp_path, peer, backend, personas=(MAYA,), config=config, **settings) as (
        probe,
        host,
    ):
        await until(lambda: voice.ready.is_set() and host.speaks_in(str(VOICE)), timeout=30)
        assert voice.identified["max_dave_protocol_version"] >= 1  # DAVE offered, 0 chosen
        await peer.join_voice(SAM, VOICE)
        said = espeak(tmp_path, "Maya, what was the cache hit rate yesterday?")
        await voice.speak_as(SAM, 5001, said)
        await until(lambda: probe.stats["answered"] >= 1, timeout=60)
        # the person was heard as Sam (the ssrc announced in SPEAKING), through STT
        [person] = probe.said_by_people(str(VOICE))
        assert person.author.name == "Sam"
        assert "hit rate yesterday" in person.text.lower()  # (Whisper tiny: "cash" or "cache")
        # the answer played as Opus; wait until it stops arriving
        await until(lambda: voice.from_bot, timeout=30)
        quiet_since = time.monotonic()
        count = 0
        while time.monotonic() - quiet_since < 1.0:
            if len(voice.from_bot) != count:
                count, quiet_since = len(voice.from_bot), time.monotonic()
            await anyio.sleep(0.1)
        assert voice.speaking and voice.speaking[-1]["speaking"] in (0, 1)  # SPEAKING sent
        # its words are also written in the voice channel's chat, as the persona
        [post] = await until(peer.executions)
        assert post.body["username"] == "Maya" and "ninety percent" in post.body["content"]
    assert voice.bad_packets == 0
    heard = transcriber.transcribe(resample(voice.heard_from_bot(), 48_000, 16_000))
    words = heard.lower()
    # Whisper tiny hears espeak's "cache" as "cash": the rest of the sentence decides
    assert "rate was" in words and "yesterday" in words, heard
    assert "90" in words or "ninety" in words, heard


async def test_decrypting_refuses_a_tampered_packet():
    import os

    from continuum_discord.rtp import UndecryptablePacket, open_packet, seal_packet

    key = os.urandom(32)
    packet = seal_packet(b"\xf8\xff\xfe", ssrc=7, sequence=1, timestamp=960, counter=3, key=key)
    assert open_packet(packet, "aead_xchacha20_poly1305_rtpsize", key).opus == b"\xf8\xff\xfe"
    tampered = packet[:20] + bytes([packet[20] ^ 1]) + packet[21:]
    with pytest.raises(UndecryptablePacket):
        open_packet(tampered, "aead_xchacha20_poly1305_rtpsize", key)
    with pytest.raises(UndecryptablePacket):
        open_packet(packet, "aead_xchacha20_poly1305_rtpsize", os.urandom(32))


async def test_join_follows_the_person_into_their_voice_channel_and_leave_leaves(
    tmp_path, peer, voice
):
    async with serving(tmp_path, peer, personas=(MAYA,), ca_file=str(voice.ca_path)) as (
        probe,
        host,
    ):
        await until(lambda: peer.commands.get("100"))
        await peer.interaction(SAM, "continuum", "join")
        await until(lambda: peer.of("POST", "/interactions/"))
        assert "Join a voice channel first" in str(peer.calls[-1].body)  # not in voice yet
        await peer.join_voice(SAM, VOICE)
        await peer.interaction(SAM, "continuum", "join")
        await until(lambda: voice.ready.is_set() and host.speaks_in(str(VOICE)), timeout=30)
        assert not host.speaks_in("200")  # text channels stay text
        await peer.interaction(SAM, "continuum", "leave")
        await until(lambda: not host.speaks_in(str(VOICE)))
