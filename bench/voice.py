"""bench/voice: end of speech -> first audio byte, the streaming voice turn against the
sandwich (full STT -> full reply -> full TTS), on the embedded defaults, 2 threads.

Utterances: 30 made with espeak-ng (10 short, 10 long, 10 with a mid-sentence pause of
400-800 ms after a word that promises more), fed in real time as 32 ms frames followed by
silence. The end of speech is known from the synthetic audio (its last loud sample).
Persona Maya (SmolLM2-135M, reply cap 40 tokens), warm slots: one room per pipeline, both
warmed with a text turn, both hearing every utterance in the same order.

Measured per utterance: the silence waited (end of turn), when the transcript was ready,
first token, first speakable piece, first TTS chunk, first audio; false ends of turn (the
turn judged over before the person finished). The sandwich's fixed silence timer is the
shortest that keeps false ends of turn at or under 5 % on these utterances (found from the
VAD's frames first, printed). Then: the example personas' voices, measured apart (log-mel
spectral distance between personas against the spread within one voice) and heard back
through Whisper (intelligibility).

    .venv/bin/python bench/voice.py           # ~10 min on 2 cores
    .venv/bin/python bench/voice.py --quick   # 6 utterances (smoke run; not committed)

Writes bench/results/voice.json and voice.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig  # noqa: E402
from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart  # noqa: E402
from continuum.media.whisper import WhisperTranscriber  # noqa: E402
from continuum.models import default_model_path  # noqa: E402
from continuum.persona import Persona  # noqa: E402
from continuum.persona_files import load_personas  # noqa: E402
from continuum.plugins import tts_engine  # noqa: E402
from continuum.room import Room, RoomPolicy  # noqa: E402
from continuum.voice.audio import RATE, read_wav, resample  # noqa: E402
from continuum.voice.session import VoiceSession  # noqa: E402
from continuum.voice.vad import FRAME, FRAME_MS, EndOfTurnPolicy, SileroVAD  # noqa: E402

RESULTS = ROOT / "bench" / "results"
SHORT = [
    "What time is it?",
    "Is the build green?",
    "Can you check the cache?",
    "How fast is it now?",
    "Did the test pass?",
    "Where is the profile?",
    "Why is it slow?",
    "Should I restart it?",
    "What changed today?",
    "Is memory growing?",
]
LONG = [
    "I deployed the new version this morning and the latency went up by about thirty "
    "percent, what should I look at first?",
    "We have a service that reads from the database on every request, would a cache in "
    "front of it help us?",
    "My laptop gets really hot when I run the test suite, is there a way to make it use "
    "fewer cores?",
    "Could you explain the difference between throughput and latency in a way my manager "
    "would understand?",
    "The benchmark numbers look different every time I run them, how do I make them more stable?",
    "I want to profile a Python program that spends most of its time waiting on the "
    "network, which tool should I use?",
    "Our nightly job used to take one hour and now it takes three, where would you start looking?",
    "Is it better to add more memory to the server or to fix the code that allocates so much?",
    "What is a reasonable target for the time to first byte on a small web page today?",
    "How many requests per second should a single small server handle before we add another one?",
]
PAUSED = [
    'I was thinking about <break time="600ms"/> the cache layer for the new service.',
    'Can you tell me <break time="500ms"/> why the build is so slow today?',
    'We should probably <break time="700ms"/> measure the memory before we change it.',
    'The problem is that <break time="800ms"/> nobody knows which query is slow.',
    'I want to try <break time="400ms"/> a smaller model on the laptop.',
    'What do you think about <break time="600ms"/> moving the job to the night?',
    'My plan is to <break time="700ms"/> profile it first and then decide.',
    'Is it the network or <break time="500ms"/> the disk that makes it slow?',
    'Last week we saw <break time="800ms"/> a spike in the error rate after lunch.',
    'Could you explain <break time="600ms"/> how the warm slot saves time?',
]
VOICES = ["en-us", "en-gb+m3", "en-us+f2"]


def speak(text: str, path: Path, voice: str, ssml: bool = False) -> np.ndarray:
    cmd = ["espeak-ng", "-v", voice, "-s", "160", "-w", str(path)]
    subprocess.run([*cmd, *(["-m"] if ssml else []), text], check=True)
    samples, rate = read_wav(path.read_bytes())
    return resample(samples, rate)


def speech_end(samples: np.ndarray) -> int:
    loud = np.nonzero(np.abs(samples) > 0.02)[0]
    return int(loud[-1]) + 1 if len(loud) else len(samples)


class Feed:
    """A recording as a live microphone gives it: 32 ms frames in real time, then silence."""

    def __init__(self, samples: np.ndarray, silence_ms: int = 2500) -> None:
        pad = np.zeros(RATE * silence_ms // 1000, dtype=np.float32)
        audio = np.concatenate([samples, pad])
        self.audio = np.pad(audio, (0, -len(audio) % FRAME))
        self.start = 0.0

    async def frames(self):
        self.start = time.monotonic()
        for i in range(0, len(self.audio), FRAME):
            delay = self.start + (i + FRAME) / RATE - time.monotonic()
            if delay > 0:
                await anyio.sleep(delay)
            yield self.audio[i : i + FRAME]


def fixed_tail_needed(utterances: list[dict], vad: SileroVAD, policy: EndOfTurnPolicy) -> dict:
    """False end-of-turn rate of a fixed silence timer, for each tail, from VAD frames."""
    pauses = []  # per utterance: the longest silence (ms) inside the speech
    for u in utterances:
        vad.reset()
        audio = np.pad(u["samples"], (0, -len(u["samples"]) % FRAME))
        speech_ms = silence_ms = longest = 0
        end_frame = u["end"] // FRAME
        for k in range(0, len(audio) // FRAME):
            if k > end_frame:
                break
            prob = vad(audio[k * FRAME : (k + 1) * FRAME])
            if prob >= policy.threshold:
                speech_ms += FRAME_MS
                silence_ms = 0
            elif speech_ms >= policy.min_speech_ms:
                silence_ms += FRAME_MS
                longest = max(longest, silence_ms)
        pauses.append(longest)
    rates = {}
    for tail in range(192, 1601, 32):
        rates[tail] = sum(p >= tail for p in pauses) / len(pauses)
    needed = next(t for t in sorted(rates) if rates[t] <= 0.05)
    return {"tail_ms": needed, "rates": rates, "longest_pause_ms": pauses}


async def warm(room: Room, persona_id: str) -> None:
    await room.handle(
        Envelope(
            host="voice",
            room_id=room.id,
            author=Participant(id="bench", name="Sam"),
            parts=(TextPart(text="Hi, I have a few performance questions."),),
            reply_to=ReplyTarget(host="voice", channel=room.id),
            mentions=(persona_id,),
        )
    )


def p(values: list[float], q: float) -> float:
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


def log_mel(samples: np.ndarray, rate: int, bands: int = 40) -> np.ndarray:
    """Mean log-mel spectrum of the voiced frames: a voice's spectral fingerprint."""
    x = resample(samples, rate, 16000)
    n, hop = 512, 160
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop] * np.hanning(n)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    energy = power.sum(axis=1)
    power = power[energy > np.percentile(energy, 50)]  # voiced frames only
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    edges = np.linspace(mel(60), mel(7600), bands + 2)
    hz = 700 * (10 ** (edges / 2595) - 1)
    bins = np.floor((n + 1) * hz / 16000).astype(int)
    fb = np.zeros((bands, power.shape[1]))
    for b in range(bands):
        lo, mid, hi = bins[b], bins[b + 1], bins[b + 2]
        fb[b, lo:mid] = np.linspace(0, 1, max(1, mid - lo), endpoint=False)
        fb[b, mid:hi] = np.linspace(1, 0, max(1, hi - mid), endpoint=False)
    return np.log(power @ fb.T + 1e-10).mean(axis=0)


def median_f0(samples: np.ndarray, rate: int) -> float:
    """Median pitch (Hz) of the louder frames, by autocorrelation (60-400 Hz)."""
    x = resample(samples, rate, 16000)
    n, hop = 640, 320
    frames = np.lib.stride_tricks.sliding_window_view(x, n)[::hop]
    energy = (frames**2).sum(axis=1)
    found = []
    for frame in frames[energy >= np.percentile(energy, 60)]:
        frame = frame - frame.mean()
        ac = np.correlate(frame, frame, "full")[n - 1 :]
        lo, hi = 16000 // 400, 16000 // 60
        k = lo + int(np.argmax(ac[lo:hi]))
        if ac[k] > 0.3 * ac[0]:
            found.append(16000 / k)
    return float(np.median(found)) if found else 0.0


def voices_apart(transcriber: WhisperTranscriber) -> dict:
    """Can each example persona's voice be told from the others? Leave-one-sentence-out:
    a persona's voice print is its mean log-mel spectrum and pitch over the other
    sentences (each sentence's content, its mean over all voices, taken out); each sample
    is identified as the nearest print. Also: the same sentence in two voices, how
    far apart, and how well Whisper hears each voice (word accuracy)."""
    personas = load_personas([ROOT / "examples" / "personas", ROOT / "examples" / "more-personas"])
    sentences = [
        "The cache was cold, so the first request took longer than the rest.",
        "Octopuses can change colour in a fraction of a second.",
        "Please measure it twice before you change anything.",
        "We moved the nightly job to the morning and it ran twice as fast.",
    ]
    tts = tts_engine("espeak-ng")
    prints: dict[str, list[np.ndarray]] = {}
    accuracy: dict[str, float] = {}
    for persona in personas:
        hits = total = 0
        for sentence in sentences:
            samples, rate = tts.synthesize(sentence, persona.voice)
            pitch = 20 * np.log(max(median_f0(samples, rate), 1.0))
            prints.setdefault(persona.id, []).append(np.append(log_mel(samples, rate), pitch))
            heard = transcriber.transcribe(resample(samples, rate)).lower()
            words = re.findall(r"[a-z']+", sentence.lower())
            hits += sum(w in set(re.findall(r"[a-z']+", heard)) for w in words)
            total += len(words)
        accuracy[persona.id] = round(hits / total, 3)
    ids = sorted(prints)
    # what a sentence says weighs on its spectrum in every voice: take it out
    for k in range(len(sentences)):
        content = np.mean([prints[q][k] for q in ids], axis=0)
        for q in ids:
            prints[q][k] = prints[q][k] - content
    correct = tried = 0
    for pid in ids:
        for k, sample in enumerate(prints[pid]):
            centres = {
                q: np.mean([f for j, f in enumerate(prints[q]) if q != pid or j != k], axis=0)
                for q in ids
            }
            guess = min(centres, key=lambda q: float(np.linalg.norm(sample - centres[q])))
            correct += guess == pid
            tried += 1
    same_sentence = {
        f"{a}-{b}": round(
            statistics.mean(
                float(np.linalg.norm(fa - fb)) for fa, fb in zip(prints[a], prints[b], strict=True)
            ),
            2,
        )
        for i, a in enumerate(ids)
        for b in ids[i + 1 :]
    }
    return {
        "personas": {p.id: p.voice.model_dump() for p in personas},
        "identified": f"{correct}/{tried}",
        "identification_accuracy": round(correct / tried, 3),
        "median_f0_hz": {
            p.id: round(median_f0(*tts.synthesize(sentences[0], p.voice))) for p in personas
        },
        "same_sentence_distance_min": min(same_sentence.values()),
        "same_sentence_distance": same_sentence,
        "intelligibility_word_accuracy": accuracy,
    }


async def sweep(utterances: list[dict], transcriber: WhisperTranscriber, backend) -> dict:
    """False ends of turn on the paused utterances for several short tails (listen only)."""
    persona = Persona(id="sweep", name="Sweep", identity="x")
    out = {}
    for short in (256, 384, 512, 640):
        policy = EndOfTurnPolicy(short_tail_ms=short)
        room = Room("sweep", [persona], backend)
        s = VoiceSession(room, persona, transcriber, tts_engine("espeak-ng"), policy=policy)
        false = 0
        paused = [u for u in utterances if u["paused"]]
        for u in paused:
            feed = Feed(u["samples"])
            heard = await s.listen(feed.frames())
            false += heard.end_of_turn < feed.start + u["end"] / RATE
        out[short] = round(false / len(paused), 3)
        print(f"short tail {short} ms: false ends of turn on paused utterances {out[short]}")
    return out


async def direct_audio(utterances: list[dict], transcriber: WhisperTranscriber) -> dict:
    """The STT-free stage: the audio goes into the model through its projector (mtmd),
    side by side with transcribing the same audio."""
    from continuum.envelope import AudioPart
    from continuum.events import MediaBridged, ReplyPosted
    from continuum.voice.audio import wav_bytes
    from tests.media.tiny_projectors import audio_projector

    backend = EmbeddedBackend(
        default_model_path(),
        EmbeddedConfig(live_slots=2, slot_ctx=4096, n_threads=2, mmproj=str(audio_projector())),
    )
    persona = next(p for p in load_personas([ROOT / "examples" / "personas"]) if p.id == "maya")
    room = Room(
        "direct", [persona], backend, policy=RoomPolicy(cognition="direct", reply_max_tokens=8)
    )
    media_ms, media_tokens, stt_ms, stt_calls = [], [], [], 0
    for u in utterances:
        envelope = Envelope(
            host="bench", room_id="direct", author=Participant(id="p", name="Pat"),
            parts=(AudioPart(data=wav_bytes(u["samples"], RATE), sample_rate=RATE),),
            reply_to=ReplyTarget(host="bench", channel="direct"), mentions=(persona.id,),
        )  # fmt: skip
        await room.handle(envelope)
        metrics = room.events.of_type(ReplyPosted)[-1].metrics
        stt_calls += room.events.of_type(MediaBridged)[-1].stt_calls
        media_ms.append(metrics.media_ms)
        media_tokens.append(metrics.media_tokens)
        t0 = time.perf_counter()
        transcriber.transcribe(u["samples"])
        stt_ms.append((time.perf_counter() - t0) * 1000)
    await backend.aclose()
    return {
        "utterances": len(utterances),
        "projector": "tiny random-weight Qwen2-Audio (tests/media/tiny_projectors.py)",
        "media_tokens_p50": statistics.median(media_tokens),
        "media_ms_p50": round(statistics.median(media_ms), 1),
        "stt_ms_p50": round(statistics.median(stt_ms), 1),
        "stt_calls": stt_calls,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    threads = 2
    texts = [(t, False) for t in SHORT + LONG] + [(t, True) for t in PAUSED]
    if args.quick:
        texts = texts[:2] + texts[10:12] + texts[20:22]
    tmp = Path(tempfile.mkdtemp())
    utterances = []
    for i, (text, ssml) in enumerate(texts):
        samples = speak(text, tmp / f"u{i}.wav", VOICES[i % len(VOICES)], ssml)
        utterances.append(
            {
                "text": re.sub(r"<[^>]+>", "", text),
                "paused": ssml,
                "samples": samples,
                "end": speech_end(samples),
            }
        )
    policy = EndOfTurnPolicy()
    fixed = fixed_tail_needed(utterances, SileroVAD(), policy)
    print(f"a fixed silence timer needs {fixed['tail_ms']} ms for <= 5 % false ends of turn")

    persona = next(p for p in load_personas([ROOT / "examples" / "personas"]) if p.id == "maya")
    backend = EmbeddedBackend(
        default_model_path(), EmbeddedConfig(live_slots=4, slot_ctx=4096, n_threads=threads)
    )
    transcriber = WhisperTranscriber(threads=threads)
    transcriber.transcribe(utterances[0]["samples"])  # load the model before measuring
    tts = tts_engine("espeak-ng")
    tails = await sweep(utterances, transcriber, backend)
    room_policy = RoomPolicy(cognition="direct", reply_max_tokens=40)

    def session(name: str, mode: str, end_of_turn: EndOfTurnPolicy) -> VoiceSession:
        room = Room(f"voice-{name}", [persona], backend, policy=room_policy)
        return VoiceSession(room, persona, transcriber, tts, policy=end_of_turn, mode=mode)

    sessions = {
        "streaming": session("streaming", "streaming", policy),
        "no_preempt": session("no-preempt", "streaming", policy),
        "sandwich": session("sandwich", "sandwich", EndOfTurnPolicy(long_tail_ms=fixed["tail_ms"])),
    }
    for s in sessions.values():
        await warm(s.room, persona.id)
    rows = []
    for i, u in enumerate(utterances):
        for mode, s in sessions.items():
            feed = Feed(u["samples"])

            async def play(samples, rate):
                pass

            if mode == "streaming":  # the reply is written during the pause (VoiceSession.turn)
                heard, m = await s.turn(feed.frames(), play)
                true_end = feed.start + u["end"] / RATE
                shift = (heard.end_of_speech - true_end) * 1000  # stages from the true end
                for stage in ("end_of_turn_ms", "transcript_ms", "first_token_ms",
                              "first_piece_ms", "first_audio_ms"):  # fmt: skip
                    if getattr(m, stage) is not None:
                        setattr(m, stage, getattr(m, stage) + shift)
            else:  # listen, then reply: nothing is written before the end of turn
                heard = await s.listen(feed.frames())
                true_end = feed.start + u["end"] / RATE
                heard.end_of_speech = true_end
                m = await s.respond(heard, play)
            false_end = heard.end_of_turn < true_end
            rows.append(
                {
                    "i": i,
                    "mode": mode,
                    "paused": u["paused"],
                    "said": u["text"],
                    "heard": m.transcript,
                    "reply": m.reply,
                    "false_end_of_turn": false_end,
                    "stt_calls": m.stt_calls,
                    "tts_calls": m.tts_calls,
                    "preempted": m.preempted,
                    "retracted": m.retracted,
                    "stages_ms": {
                        k: (round(v, 1) if v is not None else None) for k, v in m.stages().items()
                    },
                }
            )
            print(
                f"{i:2d} {mode:9s} first audio {m.first_audio_ms or -1:7.0f} ms  "
                f"eot {m.end_of_turn_ms:5.0f}  transcript {m.transcript_ms:6.0f}  "
                f"token {m.first_token_ms or -1:6.0f}  {'FALSE END ' if false_end else ''}"
                f"| {m.transcript[:40]!r}",
                flush=True,
            )
    await backend.aclose()
    apart = voices_apart(transcriber)
    direct = await direct_audio(utterances[:6], transcriber)

    def stat(mode: str, stage: str, q: float) -> float:
        """Over the turns that ended after the person finished (a false end is counted
        apart: its 'latency' is negative)."""
        vals = [
            r["stages_ms"][stage] for r in rows if r["mode"] == mode and not r["false_end_of_turn"]
        ]
        return p([v for v in vals if v is not None], q)

    stages = [
        "end_of_turn",
        "transcript",
        "stt",
        "first_token",
        "first_piece",
        "first_tts",
        "first_audio",
    ]
    streaming = [r for r in rows if r["mode"] == "streaming"]
    paused = [r for r in streaming if r["paused"]]
    result = {
        "bench": "voice",
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "model": default_model_path().name,
        "threads": threads,
        "utterances": len(utterances),
        "first_audio_ms_p50": stat("streaming", "first_audio", 0.5),
        "first_audio_ms_p90": stat("streaming", "first_audio", 0.9),
        "no_preempt_first_audio_ms_p50": stat("no_preempt", "first_audio", 0.5),
        "no_preempt_first_audio_ms_p90": stat("no_preempt", "first_audio", 0.9),
        "sandwich_first_audio_ms_p50": stat("sandwich", "first_audio", 0.5),
        "sandwich_first_audio_ms_p90": stat("sandwich", "first_audio", 0.9),
        "streaming_speedup_p50": round(
            stat("sandwich", "first_audio", 0.5) / stat("streaming", "first_audio", 0.5), 2
        ),
        "false_end_of_turn_rate": round(
            sum(r["false_end_of_turn"] for r in streaming) / len(streaming), 3
        ),
        "false_end_of_turn_rate_paused": round(
            sum(r["false_end_of_turn"] for r in paused) / max(1, len(paused)), 3
        ),
        "sandwich_false_end_of_turn_rate": round(
            sum(r["false_end_of_turn"] for r in rows if r["mode"] == "sandwich") / len(streaming), 3
        ),
        "end_of_turn_policy": vars(policy),
        "fixed_tail_for_5pct_ms": fixed["tail_ms"],
        "short_tail_sweep_false_rate_paused": tails,
        "fixed_tail_false_rate_at_short_tail": fixed["rates"].get(policy.short_tail_ms),
        "stages_ms_p50": {s: stat("streaming", s, 0.5) for s in stages},
        "sandwich_stages_ms_p50": {s: stat("sandwich", s, 0.5) for s in stages},
        "stt_calls_per_turn_median": statistics.median(r["stt_calls"] for r in streaming),
        "preempted_turns": sum(r["preempted"] for r in streaming),
        "retracted_replies": sum(r["retracted"] for r in streaming),
        "no_preempt_stages_ms_p50": {s: stat("no_preempt", s, 0.5) for s in stages},
        "direct_audio": direct,
        "voices": apart,
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "voice_quick" if args.quick else "voice"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        "# bench/voice",
        "",
        f"{len(utterances)} espeak-ng utterances ({sum(u['paused'] for u in utterances)} with a "
        f"mid-sentence pause), fed in real time; persona Maya on {result['model']}, "
        f"{threads} threads, warm slots, reply cap 40 tokens; Whisper tiny.en, espeak-ng; "
        f"{result['machine']}. Milliseconds after the end of speech.",
        "",
        "| pipeline | first audio p50 | p90 | end of turn p50 | transcript p50 | "
        "first token p50 | first piece p50 | false ends of turn |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode in ("streaming", "no_preempt", "sandwich"):
        ends = [r["false_end_of_turn"] for r in rows if r["mode"] == mode]
        rate = round(sum(ends) / len(ends), 3)
        md.append(
            f"| {mode} | {stat(mode, 'first_audio', 0.5)} | {stat(mode, 'first_audio', 0.9)} | "
            f"{stat(mode, 'end_of_turn', 0.5)} | {stat(mode, 'transcript', 0.5)} | "
            f"{stat(mode, 'first_token', 0.5)} | {stat(mode, 'first_piece', 0.5)} | {rate} |"
        )
    md += [
        "",
        "streaming: the reply is written during the pause, as soon as the pause's transcript "
        "reads finished, and released at the end of turn (`VoiceSession.turn`); no_preempt: "
        "the same pipeline, but the reply starts only at the end of turn; sandwich: a fixed "
        "silence timer, then whole transcript, whole reply, whole synthesis. "
        f"{result['preempted_turns']} of {len(streaming)} streaming turns were answered "
        f"from the pause; {result['retracted_replies']} replies begun in a pause were "
        "retracted because the person talked on.",
        "",
        f"Streaming is {result['streaming_speedup_p50']}x faster to first audio (p50). "
        f"False ends of turn on the paused utterances: "
        f"{result['false_end_of_turn_rate_paused']}. The sandwich's fixed timer is "
        f"{fixed['tail_ms']} ms, the shortest with <= 5 % false ends of turn here; a fixed "
        f"{policy.short_tail_ms} ms timer would cut off "
        f"{result['fixed_tail_false_rate_at_short_tail']} of the utterances.",
        "",
        "Transcript-aware short tail, false ends of turn on the paused utterances: "
        + ", ".join(f"{k} ms: {v}" for k, v in tails.items())
        + f" (default {policy.short_tail_ms} ms). Latency percentiles are over the turns "
        "that did not end early.",
        "",
        f"Voices: each example persona's voice identified from its other sentences "
        f"{apart['identified']} times (nearest log-mel + pitch print; median pitch "
        + ", ".join(f"{k} {v} Hz" for k, v in apart["median_f0_hz"].items())
        + "); the closest two voices "
        f"saying the same sentence are {apart['same_sentence_distance_min']} apart; heard "
        "back through Whisper, word accuracy "
        + ", ".join(f"{k} {v}" for k, v in apart["intelligibility_word_accuracy"].items())
        + ".",
        "",
        f"Direct audio (no STT; the default model with a tiny random-weight Qwen2-Audio "
        f"projector, {direct['utterances']} utterances): the model takes "
        f"{direct['media_tokens_p50']} audio positions per message (30 s windows), encoded and "
        f"decoded in {direct['media_ms_p50']} ms p50, against {direct['stt_ms_p50']} ms of "
        f"Whisper tiny.en for the same audio; STT calls on the direct path: "
        f"{direct['stt_calls']}. (With no transcript, the end of turn falls back to the "
        f"{policy.long_tail_ms} ms silence tail; a real audio model is larger than this one.)",
    ]
    (RESULTS / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    anyio.run(main)
