"""Voice inside the runtime, on real audio (espeak-ng speech, Silero, Whisper tiny.en), with
the test audio host: people speak into the runtime's ears, personas answer into outputs
with a playout clock. The backend is scripted (these tests are about the voice path, not
the model's words); memory, the people directory and shared cognition are the real ones."""

from __future__ import annotations

import re
import subprocess
import time

import anyio
import numpy as np
import pytest

from continuum.envelope import ParticipantKind
from continuum.events import ReplyPosted
from continuum.persona import Persona, VoiceSpec
from continuum.plugins import tts_engine
from continuum.testing import (
    AudioTestHost,
    RecordingHost,
    ScriptedBackend,
    serve_host,
    text_envelope,
)
from continuum.voice.audio import read_wav, resample
from continuum.voice.chunker import SpeechChunker
from tests.media.conftest import espeak_wav

pytestmark = pytest.mark.anyio

REPLY = (
    "First, measure the cold start. Then look at the cache hit rate over a whole day. "
    "After that, compare the two builds side by side. Finally, write the numbers down."
)


def persona(pid: str, name: str, voice: str, pitch: int, **kw) -> Persona:
    return Persona(
        id=pid,
        name=name,
        identity=f"{name}, a colleague.",
        voice=VoiceSpec(voice=voice, pitch=pitch),
        **kw,
    )


MAYA = persona("maya", "Maya", "en-us+f3", 70, expertise=("performance", "caching"))
THEO = persona("victor", "Victor", "en-gb+m2", 25, expertise=("security",))


def speech(tmp_path, text: str, name: str = "u.wav") -> tuple[np.ndarray, int]:
    return read_wav(espeak_wav(text, tmp_path / name, speed=130))


def speech_ssml(tmp_path, ssml: str) -> tuple[np.ndarray, int]:
    path = tmp_path / "ssml.wav"
    subprocess.run(["espeak-ng", "-m", "-w", str(path), ssml], check=True)
    return read_wav(path.read_bytes())


def voice_room(tmp_path, personas, reply=REPLY, *, config=None, delay=0.0, **kw):
    cfg = {"media": {"stt": "whisper"}, **(config or {})}
    backend = ScriptedBackend(lambda req: reply, token_delay_s=delay)
    return serve_host(
        "audio-test",
        data_dir=tmp_path / "data",
        personas=personas,
        backend=backend,
        host_classes={"audio-test": AudioTestHost, **kw.pop("host_classes", {})},
        config=cfg,
        **kw,
    )


async def settle(host: AudioTestHost) -> None:
    for ear in host.ears.values():
        for heard in ear.heard:
            if heard.turn is not None:
                with anyio.fail_after(60):
                    await heard.turn.wait()


async def test_six_personas_listen_one_pass_of_speech_to_text_and_the_one_named_answers(
    tmp_path, six_personas
):
    async with voice_room(tmp_path, six_personas, "Sure, I can look at that.") as probe:
        host = probe.host
        named = next(p for p in six_personas if p.id == "maya")
        audio, rate = speech(tmp_path, "Hey Maya, can you look at the build?")
        await host.speak("sam", audio, rate)
        await settle(host)
        (ear,) = host.ears.values()
        (heard,) = ear.heard
        assert named.name.lower() in heard.transcript.lower()
        # one ear for the person, not one per persona: every pass of speech-to-text is
        # its own (one per pause, at most), and the room did not transcribe again
        assert 1 <= heard.stt_calls <= 2
        assert probe._rt.voice.stt_calls == heard.stt_calls
        assert probe._rt.bridge.transcriber.calls == heard.stt_calls
        assert [o.start.persona_id for o in host.spoken] == [named.id]
        assert host.spoken[0].played_s() > 0.5  # it was spoken, not only written
        # a reply begun in a pause the person talked through ('Hey Maya.') played nothing
        assert len(host.outputs) - len(host.spoken) == heard.retracted
        said = [m for m in probe.history("voice") if m.author.kind == ParticipantKind.PERSONA]
        assert [m.author.id for m in said] == [named.id]
        assert heard.turn.outcome == "answered"


def pitch(samples: np.ndarray, rate: int) -> float:
    """The median fundamental frequency of the voiced 40 ms frames (autocorrelation)."""
    n = int(rate * 0.04)
    found = []
    for i in range(0, len(samples) - n, n):
        frame = samples[i : i + n] - samples[i : i + n].mean()
        if np.abs(frame).max() < 0.05:
            continue
        ac = np.correlate(frame, frame, "full")[n - 1 :]
        lo, hi = rate // 400, rate // 60  # 60-400 Hz
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.4 * ac[0]:
            found.append(rate / lag)
    return float(np.median(found))


async def test_two_personas_answer_one_at_a_time_each_in_its_own_voice(tmp_path):
    async with voice_room(
        tmp_path, [MAYA, THEO], "Good question. I would start with the logs."
    ) as probe:
        host = probe.host
        audio, rate = speech(tmp_path, "Hey Maya and Victor, what should we check first?")
        await host.speak("sam", audio, rate)
        await settle(host)
        (heard,) = host.ears[("sam", "voice")].heard
        assert sorted(o.start.persona_id for o in host.spoken) == ["maya", "victor"], (
            heard.transcript,
            heard.turn.envelope.mentions,
            probe.outcomes(),
        )
        first, second = sorted(host.spoken, key=lambda o: o.intervals[0][0])
        # never at once: the second began after the first had played out
        assert first.intervals[-1][1] <= second.intervals[0][0] + 0.03
        # each in its own voice: Maya (a high voice) well above Victor (a low one)
        by = {o.start.persona_id: pitch(o.samples, o.sample_rate) for o in host.spoken}
        assert by["maya"] > 1.3 * by["victor"], by


def reply_pieces() -> list[str]:
    chunker = SpeechChunker()
    pieces = chunker.feed(REPLY)
    rest = chunker.flush()
    return pieces + ([rest] if rest else [])


async def test_speaking_over_a_persona_stops_it_and_history_keeps_what_was_heard(tmp_path):
    async with voice_room(tmp_path, [MAYA], delay=0.05) as probe:
        host = probe.host
        audio, rate = speech(tmp_path, "How do I find out why it is slow?")
        await host.speak("sam", audio, rate, silence_after_s=0.0)
        await host.silence("sam", 3.0)  # the reply plays for a while
        (output,) = host.spoken
        assert output.played_s() > 0.5
        over, rate = speech(tmp_path, "Wait, stop, that is not what I asked at all.", "o.wav")
        spoke_at = time.monotonic()
        await host.speak("sam", over, rate, silence_after_s=2.5)
        await settle(host)
        ear = host.ears[("sam", "voice")]
        assert ear.barge_ins == 1 and ear.interruptions == 1
        # paused as soon as the person spoke: nothing played after the pause
        stopped = output.intervals[-1][1]
        assert stopped - spoke_at < 1.0  # paused before the interruption was even confirmed
        cut = next(m for m in probe.history("voice") if m.author.id == "maya")
        assert cut.interrupted and cut.text and len(cut.text) < len(REPLY)
        assert REPLY.startswith(cut.text.rstrip("—").rsplit(" ", 1)[0])
        # what the history keeps is what was played: whole pieces by the playout clock, ±1
        stats = ear.heard[0].turn.speech[0]
        pieces = reply_pieces()
        assert cut.text == stats.spoken
        assert stats.played_s == pytest.approx(output.played_s(), abs=0.05)
        espeak = tts_engine("espeak-ng")
        ends = np.cumsum(
            [len(a) / r for a, r in (espeak.synthesize(p, MAYA.voice) for p in pieces)]
        )
        expected = int(np.sum(ends <= stats.played_s))  # pieces the playout clock got through
        kept = sum(1 for p in pieces if p in cut.text)
        assert abs(kept - expected) <= 1, (kept, expected, stats.played_s)
        # the person's words became the next turn
        people = probe.said_by_people("voice")
        assert len(people) == 2 and "stop" in people[1].text.lower()


@pytest.mark.parametrize("backchannel", ["uh huh", "mm hmm"])
async def test_a_backchannel_pauses_the_persona_and_it_goes_on(tmp_path, backchannel):
    async with voice_room(tmp_path, [MAYA], delay=0.05) as probe:
        host = probe.host
        audio, rate = speech(tmp_path, "How do I find out why it is slow?")
        await host.speak("sam", audio, rate, silence_after_s=2.5)
        mm, rate = speech(tmp_path, backchannel, "b.wav")
        await host.speak("sam", mm, rate, silence_after_s=8.0)
        await settle(host)
        ear = host.ears[("sam", "voice")]
        assert ear.barge_ins == 1 and ear.resumed == 1 and ear.interruptions == 0
        (output,) = host.spoken
        assert output.cleared_s > 0  # it did pause
        said = [m for m in probe.history("voice") if m.author.id == "maya"]
        assert [m.text for m in said] == [REPLY] and not said[0].interrupted
        assert len(probe.said_by_people("voice")) == 1  # the "mm-hm" was not a turn


async def test_a_reply_written_in_the_pause_and_retracted_leaves_no_trace(tmp_path):
    learner = MAYA.model_copy(
        update={"learning": MAYA.learning.model_copy(update={"enabled": True})}
    )
    ssml = (
        '<speak>My locker code is four four one seven. <break time="900ms"/> '
        "No wait, it changed to five five two one.</speak>"
    )
    # the transcript rule reads the first sentence as finished (a reply starts in the
    # pause); the long tails keep the turn open until the person talks on
    async with voice_room(
        tmp_path,
        [learner],
        "Noted.",
        config={
            "voice": {"turn_detector": "transcript", "short_tail_ms": 1500, "long_tail_ms": 2000}
        },
    ) as probe:
        host = probe.host
        audio, rate = speech_ssml(tmp_path, ssml)
        await host.speak("sam", audio, rate, silence_after_s=3.0)
        await settle(host)
        (heard,) = host.ears[("sam", "voice")].heard
        assert heard.retracted == 1
        people = probe.said_by_people("voice")
        assert len(people) == 1 and "wait" in people[0].text.lower()
        replies = [m for m in probe.history("voice") if m.author.id == "maya"]
        assert len(replies) == 1
        # the retracted reply: opened and written, never shown nor heard
        retracted = [r for r in host.replies if r.aborted]
        assert len(retracted) == 1 and retracted[0].text == ""
        assert len([o for o in host.outputs if o.played_s() > 0]) == 1
        turns = [t for t in probe._rt.turns.values()]
        assert sorted(t.outcome for t in turns) == ["answered", "cancelled"]
        await probe.settle()
        held_words = "locker code is four four one seven."
        memory = probe._rt.memory
        journal = memory.journal("maya")
        texts = [journal.read_path(p).text for p in journal.paths()]
        assert not [t for t in texts if t.lower().rstrip().endswith(held_words)]
        total_pairs = sum(probe._rt.pairs.domains("maya").values())
        assert total_pairs == len(replies)


async def test_a_person_known_on_slack_is_the_same_person_in_the_voice_room(tmp_path):
    class Slack(RecordingHost):
        name = "slack"

    people = [{"id": "sam", "name": "Sam", "host_ids": ["slack:U1", "audio-test:sam"]}]
    async with voice_room(
        tmp_path,
        [MAYA],
        "Biscuit, I think.",
        config={"people": people, "hosts": {"audio-test": {}, "slack": {}}},
        host_classes={"slack": Slack},
    ) as probe:
        rt = probe._rt
        slack = rt.services_for("slack")
        turn = await slack.deliver(
            text_envelope("My dog is called Biscuit.", host="slack", author="U1")
        )
        await turn.wait()
        await probe.settle()
        audio, rate = speech(tmp_path, "Maya, what is my dog called?")
        await probe.host.speak("sam", audio, rate)
        await settle(probe.host)
        (heard,) = probe.host.ears[("sam", "voice")].heard
        assert heard.turn.envelope.author.id == "sam"  # the people directory's person
        posted = [e for e in probe.events("voice") if isinstance(e, ReplyPosted)]
        assert posted and any("Biscuit" in line for line in posted[-1].recalled)


# --- the ear's end of turn, and the reply written in the pause -------------------------------

PATIENT = {"voice": {"turn_detector": "transcript", "short_tail_ms": 2000, "long_tail_ms": 10000}}
SHORT_REPLY = "Sure. The cache is cold, so warm it first."


async def test_a_mid_sentence_pause_does_not_end_the_turn(tmp_path):
    ssml = 'I was thinking about <break time="700ms"/> the cache layer for the new service.'
    async with voice_room(tmp_path, [MAYA], SHORT_REPLY) as probe:
        audio, rate = speech_ssml(tmp_path, ssml)
        await probe.host.speak("sam", audio, rate, silence_after_s=2.0)
        await settle(probe.host)
        (heard,) = probe.host.ears[("sam", "voice")].heard
        assert "thinking" in heard.transcript.lower() and "service" in heard.transcript.lower()
        assert len(probe.said_by_people("voice")) == 1


async def test_a_finished_sentence_ends_the_turn_after_the_short_tail(tmp_path):
    config = {"voice": {"turn_detector": "transcript", "long_tail_ms": 10000}}
    async with voice_room(tmp_path, [MAYA], SHORT_REPLY, config=config) as probe:
        audio, rate = speech(tmp_path, "What time is the meeting tomorrow?")
        await probe.host.speak("sam", audio, rate, silence_after_s=3.0)
        await settle(probe.host)
        (heard,) = probe.host.ears[("sam", "voice")].heard
        assert "meeting" in heard.transcript.lower()
        assert heard.ended_by == "detector"  # not the 10 s fallback
        assert heard.end_of_turn - heard.end_of_speech < 5.0


async def test_the_reply_is_written_in_the_pause_spoken_piece_by_piece_after_it(tmp_path):
    async with voice_room(tmp_path, [MAYA], SHORT_REPLY, config=PATIENT) as probe:
        audio, rate = speech(tmp_path, "Why is the first request so slow?")
        await probe.host.speak("sam", audio, rate, silence_after_s=3.5)
        await settle(probe.host)
        (heard,) = probe.host.ears[("sam", "voice")].heard
        assert heard.preempted and heard.retracted == 0 and heard.ended_by == "detector"
        (stats,) = heard.turn.speech
        # written while the person's silence was still running out, heard only after it
        assert stats.first_delta_at < heard.end_of_turn <= stats.first_audio_at
        (output,) = probe.host.spoken
        assert output.intervals[0][0] >= heard.end_of_turn
        assert stats.tts_calls == 3  # "Sure." / "The cache is cold," / the rest
        assert stats.spoken == SHORT_REPLY
        history = probe.history("voice")
        assert [m.author.id for m in history] == ["audio-test:sam", "maya"]
        assert history[0].media == "stt"  # the ear's transcript: the bridge did not run
        assert probe._rt.bridge.transcriber.calls == heard.stt_calls
        # the text went to the host's text sink too (a transcript of the spoken reply)
        assert probe.host.replies[-1].text == SHORT_REPLY


@pytest.fixture
def broken_tts(monkeypatch):
    from continuum import plugins

    monkeypatch.setenv("CONTINUUM_PLUGINS", "tests.voice.broken_tts")
    plugins.plugin_manager.cache_clear()
    yield
    monkeypatch.delenv("CONTINUUM_PLUGINS")
    plugins.plugin_manager.cache_clear()


async def test_a_broken_voice_leaves_the_reply_as_text_and_the_room_going(tmp_path, broken_tts):
    mute = MAYA.model_copy(update={"voice": VoiceSpec(engine="broken")})
    gone = THEO.model_copy(update={"voice": VoiceSpec(engine="not-installed")})
    async with voice_room(tmp_path, [mute, gone], "Sure. The cache is cold.") as probe:
        audio, rate = speech(tmp_path, "Hey Maya, is the cache warm?")
        await probe.host.speak("sam", audio, rate)
        await settle(probe.host)
        (heard,) = probe.host.ears[("sam", "voice")].heard
        (stats,) = heard.turn.speech
        assert stats.tts_error == "the synthesizer is gone" and stats.tts_calls == 0
        assert heard.turn.outcome == "answered"
        assert probe.history("voice")[-1].text == "Sure. The cache is cold."
        assert probe.host.replies[-1].text == "Sure. The cache is cold."
        # a voice engine that is not installed: the persona answers in text all the same
        audio, rate = speech(tmp_path, "Hey Victor, is the cache warm?", "t.wav")
        await probe.host.speak("sam", audio, rate)
        await settle(probe.host)
        victor = [r for r in probe.host.replies if r.start.persona_id == "victor"]
        assert victor and victor[-1].text == "Sure. The cache is cold." and victor[-1].finished
        assert not probe.host.played_by("victor")


@pytest.mark.model
async def test_a_voice_turn_on_the_real_model_is_intelligible(tmp_path, backend, transcriber):
    from continuum.persona import ModelOverrides

    # greedy: the same reply every run (what is tested is the pipeline, not the words)
    greedy = MAYA.model_copy(update={"model": ModelOverrides(temperature=0.0)})
    async with serve_host(
        "audio-test",
        data_dir=tmp_path / "data",
        personas=[greedy],
        backend=backend,
        host_classes={"audio-test": AudioTestHost},
        policy={"reply_max_tokens": 24},
        config={"media": {"stt": "whisper"}},
    ) as probe:
        audio, rate = speech(tmp_path, "Hello Maya, can you say good morning to me?")
        await probe.host.speak("sam", audio, rate)
        await settle(probe.host)
        (heard,) = probe.host.ears[("sam", "voice")].heard
        (stats,) = heard.turn.speech
        (output,) = probe.host.spoken
        reply = probe.history("voice")[-1].text
        assert reply and stats.spoken == reply and output.played_s() > 0.3
        # intelligible: the spoken reply, heard back through speech-to-text, has its words
        back = transcriber.transcribe(resample(output.samples, output.sample_rate)).lower()
        said = re.findall(r"[a-z']+", reply.lower())
        heard_back = set(re.findall(r"[a-z']+", back))
        assert said and sum(w in heard_back for w in said) >= len(said) / 2, (reply, back)


async def test_a_voice_room_decides_who_speaks_without_model_deliberation(tmp_path, six_personas):
    """Seconds of JSON analysis before the first word are too slow for a voice room: the
    gate alone picks the speaker (bench/eval/gate_held_out.py), no analysis pass runs."""
    from continuum.events import AnalysisPosted

    async with voice_room(tmp_path, six_personas, "They rest half the brain at a time.") as probe:
        audio, rate = speech(tmp_path, "Why do dolphins sleep with one eye open?")
        await probe.host.speak("sam", audio, rate)
        await settle(probe.host)
        (heard,) = probe.host.ears[("sam", "voice")].heard
        # Whisper tiny hears "dolphins" or "dal fins" as the audio falls: either is a
        # question about sea animals, the gate's call below
        assert "sleep" in heard.transcript.lower(), heard.transcript
        assert probe._rt.router.room("audio-test:voice").policy.deliberation == "gate"
        assert not [e for e in probe.events("voice") if isinstance(e, AnalysisPosted)]
        assert [o.start.persona_id for o in probe.host.spoken] == ["rhea"]
