"""bench/voice: end of speech -> first audio, through the runtime (issue 19): a
``Runtime`` serving the test audio host (``continuum.testing.AudioTestHost``), the person's
speech pushed into the runtime's ear in real time, the persona's reply spoken into an
output with a playout clock. The embedded default model, 2 threads.

Utterances: the same 30 espeak-ng ones as before (10 short, 10 long, 10 with a
mid-sentence pause of 400-800 ms after a word that promises more), plus the held-out
labelled set of bench/turn_sets.py (other sentences, Piper's joe voice and espeak-ng
voices not used for calibration; its thresholds were chosen on the calibration set by
bench/turn_detect.py). Each is followed by silence; the end of speech is known from the
synthetic audio. Persona Maya (reply cap 40 tokens), warm slot.

Measured per utterance: end of turn (the silence waited), first audio (the first frame
written to the output; playback starts then), whether the reply was written in the pause,
false ends of turn (judged over before the person finished), STT passes. Then a room of 6
listening personas: speech-to-text passes per utterance for the whole room. The sandwich
row (fixed silence timer, whole transcript, whole reply, whole synthesis) is kept for
reference. Then the example personas' voices, measured apart, and the direct-audio path.

    .venv/bin/python bench/voice.py           # ~15 min on 2 cores
    .venv/bin/python bench/voice.py --quick   # a few utterances (smoke run; not committed)

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

from bench.turn_sets import held_out_set  # noqa: E402
from continuum.backends.embedded import EmbeddedBackend, EmbeddedConfig  # noqa: E402
from continuum.envelope import Envelope, Participant, ReplyTarget, TextPart  # noqa: E402
from continuum.media.whisper import WhisperTranscriber  # noqa: E402
from continuum.models import default_model_path  # noqa: E402
from continuum.persona_files import load_personas  # noqa: E402
from continuum.plugins import tts_engine  # noqa: E402
from continuum.room import Room, RoomPolicy  # noqa: E402
from continuum.testing import AudioTestHost, serve_host  # noqa: E402
from continuum.voice.audio import RATE, read_wav, resample  # noqa: E402
from continuum.voice.vad import FRAME, FRAME_MS, EndOfTurnPolicy, SileroVAD  # noqa: E402

RESULTS = ROOT / "bench" / "results"
BENCH_CONFIG: dict = {}
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


def backend(threads: int, slots: int = 8) -> EmbeddedBackend:
    return EmbeddedBackend(
        default_model_path(), EmbeddedConfig(live_slots=slots, slot_ctx=4096, n_threads=threads)
    )


async def through_runtime(
    utterances: list[dict],
    personas: list,
    threads: int,
    data_dir: Path,
    tag: str,
    memory: bool = True,
) -> tuple[list[dict], dict]:
    """Each utterance spoken into the runtime's ear; the reply played out before the next."""
    rows = []
    async with serve_host(
        "audio-test",
        data_dir=data_dir,
        personas=personas,
        backend=backend(threads),
        host_classes={"audio-test": AudioTestHost},
        policy={"reply_max_tokens": 40},
        config={"media": {"stt": "whisper"}, "memory": {"enabled": memory}, **BENCH_CONFIG},
    ) as probe:
        rt, host = probe._rt, probe.host
        voice = rt.voice
        warm_turn = await rt.services_for("audio-test").deliver(
            Envelope(
                host="audio-test", room_id="voice",
                author=Participant(id="sam", name="Sam"),
                parts=(TextPart(text="Hi, I have a few performance questions."),),
                reply_to=ReplyTarget(host="audio-test", channel="voice"),
                mentions=(personas[0].id,),
            )
        )  # fmt: skip
        await warm_turn.wait()
        ear = await host.ear("sam")
        stt0 = voice.stt_calls
        for i, u in enumerate(utterances):
            before = len(ear.heard)
            calls0, bridge0 = voice.stt_calls, rt.bridge.transcriber.calls
            started = time.monotonic()
            await host.speak("sam", u["samples"], RATE, silence_after_s=2.5)
            true_end = started + u["end"] / RATE
            heard = ear.heard[before:]
            for h in heard:
                if h.turn is not None:
                    with anyio.fail_after(120):
                        await h.turn.wait()
            last = heard[-1] if heard else None
            false_end = bool(heard) and (heard[0].end_of_turn < true_end or len(heard) > 1)
            stats = last.turn.speech if last is not None and last.turn is not None else []
            first = min((s.first_audio_at for s in stats if s.first_audio_at), default=None)
            row = {
                "set": tag,
                "i": i,
                "paused": u["paused"],
                "said": u["text"],
                "heard": last.transcript if last else None,
                "turns": len(heard),
                "false_end_of_turn": false_end,
                "ended_by": last.ended_by if last else None,
                "preempted": bool(last and last.preempted),
                "retracted": sum(h.retracted for h in heard),
                "stt_passes": voice.stt_calls - calls0,
                "bridge_stt_calls": rt.bridge.transcriber.calls
                - bridge0
                - (voice.stt_calls - calls0),
                "end_of_turn_ms": round((last.end_of_turn - true_end) * 1000, 1) if last else None,
                "first_audio_ms": round((first - true_end) * 1000, 1) if first else None,
                "speakers": len(stats),
                "reply": stats[0].spoken if stats else "",
            }
            if stats and last is not None:
                s0 = stats[0]
                row["stages_ms"] = {
                    k: round((v - last.end_of_turn) * 1000, 1) if v else None
                    for k, v in (
                        ("opened", s0.opened_at),
                        ("first_delta", s0.first_delta_at),
                        ("first_piece", s0.first_piece_at),
                        ("first_audio", s0.first_audio_at),
                    )
                } | {"first_tts_ms": s0.first_tts_ms}
            rows.append(row)
            print(
                f"{tag} {i:2d} first audio {row['first_audio_ms'] or -1:7.0f} ms  eot "
                f"{row['end_of_turn_ms'] or -1:5.0f}  {row['ended_by']}  stt {row['stt_passes']}"
                f"{'  FALSE END' if false_end else ''} | {(row['heard'] or '')[:40]!r}",
                flush=True,
            )
        detector = voice.detector.name
        total_stt = voice.stt_calls - stt0
    return rows, {"turn_detector": detector, "stt_passes": total_stt}


async def sandwich(utterances: list[dict], persona, threads: int, tail_ms: int) -> list[dict]:
    """The naive pipeline for reference: a fixed silence timer on the VAD, then the whole
    transcript, the whole reply, the whole synthesis."""
    b = backend(threads, 2)
    room = Room(
        "sandwich", [persona], b, policy=RoomPolicy(cognition="direct", reply_max_tokens=40)
    )
    whisper = WhisperTranscriber(threads=threads)
    whisper.transcribe(utterances[0]["samples"])
    tts = tts_engine("espeak-ng")
    vad = SileroVAD()
    policy = EndOfTurnPolicy()

    def envelope(text: str) -> Envelope:
        return Envelope(
            host="bench", room_id="sandwich", author=Participant(id="sam", name="Sam"),
            parts=(TextPart(text=text),), reply_to=ReplyTarget(host="bench", channel="sandwich"),
            mentions=(persona.id,),
        )  # fmt: skip

    await room.handle(envelope("Hi, I have a few performance questions."))
    rows = []
    for i, u in enumerate(utterances):
        vad.reset()
        audio = np.concatenate([u["samples"], np.zeros(RATE * 3, np.float32)])
        audio = np.pad(audio, (0, -len(audio) % FRAME))
        start = time.monotonic()
        speech_ms = silence_ms = 0
        for k in range(len(audio) // FRAME):
            await anyio.sleep(max(0.0, start + (k + 1) * FRAME / RATE - time.monotonic()))
            if vad(audio[k * FRAME : (k + 1) * FRAME]) >= policy.threshold:
                speech_ms, silence_ms = speech_ms + FRAME_MS, 0
            elif speech_ms >= policy.min_speech_ms:
                silence_ms += FRAME_MS
                if silence_ms >= tail_ms:
                    break
        end_of_turn = time.monotonic()
        true_end = start + u["end"] / RATE
        heard = await anyio.to_thread.run_sync(whisper.transcribe, audio[: (k + 1) * FRAME])
        replies = await room.handle(envelope(heard))
        text = replies[0].message.text if replies else ""
        await anyio.to_thread.run_sync(tts.synthesize, text or ".", persona.voice)
        first_audio = time.monotonic()
        rows.append(
            {
                "set": "sandwich",
                "i": i,
                "paused": u["paused"],
                "false_end_of_turn": end_of_turn < true_end,
                "end_of_turn_ms": round((end_of_turn - true_end) * 1000, 1),
                "first_audio_ms": round((first_audio - true_end) * 1000, 1),
                "heard": heard,
            }
        )
        print(f"sandwich {i:2d} first audio {rows[-1]['first_audio_ms']:7.0f} ms", flush=True)
    await b.aclose()
    return rows


def spoken(texts: list[tuple[str, bool]], tmp: Path) -> list[dict]:
    """Each (text, ssml) spoken with espeak-ng, voices in turn; the true end of speech."""
    out = []
    for i, (text, ssml) in enumerate(texts):
        samples = speak(text, tmp / f"u{i}.wav", VOICES[i % len(VOICES)], ssml)
        out.append(
            {
                "text": re.sub(r"<[^>]+>", "", text),
                "paused": ssml,
                "samples": samples,
                "end": speech_end(samples),
            }
        )
    return out


async def room_only() -> None:
    """The room of six listening personas alone, as the runtime now runs voice rooms."""
    tmp = Path(tempfile.mkdtemp())
    texts = [(t, False) for t in SHORT[:3]] + [(t, True) for t in PAUSED[:3]]
    utterances = spoken(texts, tmp)
    personas = load_personas([ROOT / "examples" / "personas", ROOT / "examples" / "more-personas"])
    rows, info = await through_runtime(utterances, personas, 2, tmp / "six", "six")
    audio = [
        r["first_audio_ms"] for r in rows if r["first_audio_ms"] and not r["false_end_of_turn"]
    ]
    passes = [r["stt_passes"] + r["bridge_stt_calls"] for r in rows]
    result = {
        "bench": "voice_room",
        "through_runtime": True,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "personas_listening": len(personas),
        "utterances": len(rows),
        "turn_detector": info["turn_detector"],
        "first_audio_ms_p50": p(audio, 0.5) if audio else None,
        "first_audio_ms_max": max(audio) if audio else None,
        "stt_calls_per_utterance_max": max(passes),
        "stt_calls_per_utterance_median": statistics.median(passes),
        "bridge_stt_calls": sum(r["bridge_stt_calls"] for r in rows),
        "speakers_per_utterance": [r["speakers"] for r in rows],
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "voice_room.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "voice_room.md").write_text(
        "# bench/voice --room-only\n\n"
        f"A room of {len(personas)} listening personas (deliberation = gate, the voice-room "
        f"default), {len(rows)} utterances in real time through the runtime, 2 threads, "
        f"{result['machine']}: first audio p50 {result['first_audio_ms_p50']} ms (max "
        f"{result['first_audio_ms_max']}); speech-to-text passes per utterance max "
        f"{result['stt_calls_per_utterance_max']}, median "
        f"{result['stt_calls_per_utterance_median']}, of which the room's media bridge "
        f"{result['bridge_stt_calls']}; personas speaking per utterance "
        f"{result['speakers_per_utterance']}.\n"
    )
    print((RESULTS / "voice_room.md").read_text())


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--room-only",
        action="store_true",
        help="only the room of six listening personas (writes voice_room.json / .md)",
    )
    args = parser.parse_args()
    if args.room_only:
        await room_only()
        return
    threads = 2
    texts = [(t, False) for t in SHORT + LONG] + [(t, True) for t in PAUSED]
    if args.quick:
        texts = texts[:2] + texts[10:12] + texts[20:22]
    tmp = Path(tempfile.mkdtemp())
    utterances = spoken(texts, tmp)
    held = [
        {"text": u.text, "paused": u.paused, "samples": u.samples, "end": u.end, "voice": u.voice}
        for u in held_out_set()
    ]
    if args.quick:
        held = held[:2] + held[-1:]
    fixed = fixed_tail_needed(utterances, SileroVAD(), EndOfTurnPolicy())
    print(f"a fixed silence timer needs {fixed['tail_ms']} ms for <= 5 % false ends of turn")
    personas = load_personas([ROOT / "examples" / "personas", ROOT / "examples" / "more-personas"])
    maya = next(p for p in personas if p.id == "maya")

    from continuum.config import VoiceConfig

    vc = VoiceConfig()
    voice_policy = EndOfTurnPolicy(
        short_tail_ms=vc.short_tail_ms,
        long_tail_ms=vc.long_tail_ms,
        finished_threshold=vc.finished_threshold,
    )
    rows, info = await through_runtime(utterances + held, [maya], threads, tmp / "one", "runtime")
    six = utterances[:3] + utterances[20:23]
    room_rows, _ = await through_runtime(six, personas, threads, tmp / "six", "six")
    # as the sandwich runs it: no memory (no recall lines in the prompt, no writer)
    bare_rows, _ = await through_runtime(
        utterances, [maya], threads, tmp / "bare", "no-memory", memory=False
    )
    sandwich_rows = await sandwich(utterances, maya, threads, fixed["tail_ms"])
    whisper = WhisperTranscriber(threads=threads)
    apart = voices_apart(whisper)
    direct = await direct_audio(utterances[:6], whisper)

    def ok(rs: list[dict]) -> list[float]:
        return [
            r["first_audio_ms"] for r in rs if not r["false_end_of_turn"] and r["first_audio_ms"]
        ]

    same30 = [r for r in rows if r["i"] < len(utterances)]
    held_rows = [r for r in rows if r["i"] >= len(utterances)]
    paused = [r for r in rows if r["paused"]]
    result = {
        "bench": "voice",
        "through_runtime": True,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "model": default_model_path().name,
        "threads": threads,
        "turn_detector": info["turn_detector"],
        "end_of_turn_policy": vars(voice_policy),
        "utterances": len(utterances),
        "held_out_utterances": len(held),
        "first_audio_ms_p50": p(ok(rows), 0.5),
        "first_audio_ms_p90": p(ok(rows), 0.9),
        "first_audio_ms_p50_same_30": p(ok(same30), 0.5),
        "first_audio_ms_p90_same_30": p(ok(same30), 0.9),
        "first_audio_ms_p50_held_out": p(ok(held_rows), 0.5) if held_rows else None,
        "end_of_turn_ms_p50": p(
            [
                r["end_of_turn_ms"]
                for r in rows
                if r["end_of_turn_ms"] is not None and not r["false_end_of_turn"]
            ],
            0.5,
        ),
        "false_end_of_turn_rate_paused": round(
            sum(r["false_end_of_turn"] for r in paused) / max(1, len(paused)), 3
        ),
        "false_ends_paused": f"{sum(r['false_end_of_turn'] for r in paused)}/{len(paused)}",
        "false_end_of_turn_rate": round(sum(r["false_end_of_turn"] for r in rows) / len(rows), 3),
        "preempted_turns": f"{sum(r['preempted'] for r in rows)}/{len(rows)}",
        "retracted_replies": sum(r["retracted"] for r in rows),
        "personas_listening": len(personas),
        "stt_calls_per_utterance_max": max(
            r["stt_passes"] + r["bridge_stt_calls"] for r in room_rows
        ),
        "stt_calls_per_utterance_median": statistics.median(
            r["stt_passes"] + r["bridge_stt_calls"] for r in room_rows
        ),
        "bridge_stt_calls_in_room": sum(r["bridge_stt_calls"] for r in room_rows),
        "speakers_per_utterance_in_room": [r["speakers"] for r in room_rows],
        "no_memory_first_audio_ms_p50": p(ok(bare_rows), 0.5),
        "no_memory_first_audio_ms_p90": p(ok(bare_rows), 0.9),
        "no_memory_end_of_turn_ms_p50": p(
            [r["end_of_turn_ms"] for r in bare_rows if r["end_of_turn_ms"] is not None], 0.5
        ),
        "sandwich_first_audio_ms_p50": p(ok(sandwich_rows), 0.5),
        "sandwich_first_audio_ms_p90": p(ok(sandwich_rows), 0.9),
        "sandwich_fixed_tail_ms": fixed["tail_ms"],
        "sandwich_false_end_of_turn_rate": round(
            sum(r["false_end_of_turn"] for r in sandwich_rows) / len(sandwich_rows), 3
        ),
        "direct_audio": direct,
        "voices": apart,
        "rows": rows + room_rows + bare_rows + sandwich_rows,
    }
    result["no_memory_speedup_vs_sandwich_p50"] = round(
        result["sandwich_first_audio_ms_p50"] / result["no_memory_first_audio_ms_p50"], 2
    )
    result["speedup_vs_sandwich_p50"] = round(
        result["sandwich_first_audio_ms_p50"] / result["first_audio_ms_p50"], 2
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = "voice_quick" if args.quick else "voice"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    r = result
    md = [
        "# bench/voice (through the runtime)",
        "",
        f"{len(utterances)} espeak-ng utterances ({sum(u['paused'] for u in utterances)} with a "
        f"mid-sentence pause) plus {len(held)} held-out labelled ones (bench/turn_sets.py), "
        "spoken in real time into the runtime's ear through the test audio host; persona "
        f"Maya on {r['model']}, {threads} threads, warm slot, reply cap 40 tokens; Whisper "
        f"tiny.en, espeak-ng; turn detector `{r['turn_detector']}` (thresholds from "
        f"bench/turn_detect's calibration set); {r['machine']}. Milliseconds after the end of "
        "speech.",
        "",
        "| pipeline | first audio p50 | p90 | false ends (paused) |",
        "|---|---|---|---|",
        f"| runtime, all {len(rows)} | {r['first_audio_ms_p50']} | {r['first_audio_ms_p90']} | "
        f"{r['false_ends_paused']} |",
        f"| runtime, the same 30 | {r['first_audio_ms_p50_same_30']} | "
        f"{r['first_audio_ms_p90_same_30']} | |",
        f"| runtime, held out | {r['first_audio_ms_p50_held_out']} | | |",
        f"| runtime without memory, the same 30 | {r['no_memory_first_audio_ms_p50']} | "
        f"{r['no_memory_first_audio_ms_p90']} | |",
        f"| sandwich (fixed {fixed['tail_ms']} ms timer) | {r['sandwich_first_audio_ms_p50']} | "
        f"{r['sandwich_first_audio_ms_p90']} | {r['sandwich_false_end_of_turn_rate']} |",
        "",
        f"End of turn (silence waited) p50 {r['end_of_turn_ms_p50']} ms. Replies written in the "
        f"pause: {r['preempted_turns']}; retracted (the person talked on): "
        f"{r['retracted_replies']}. Without memory (as the sandwich runs) "
        f"{r['no_memory_speedup_vs_sandwich_p50']}x faster than the sandwich to first audio "
        "(p50); with memory the recalled lines and the history after them are evaluated "
        "on every turn (the stages in the JSON rows: reply opened → first delta grows from "
        "~0.2 s to ~1 s as memory fills).",
        "",
        f"A room of {r['personas_listening']} listening personas, {len(room_rows)} utterances: "
        f"speech-to-text passes per utterance for the whole room: max "
        f"{r['stt_calls_per_utterance_max']}, median {r['stt_calls_per_utterance_median']} "
        f"(all the ear's; the room's media bridge made {r['bridge_stt_calls_in_room']}); "
        f"personas speaking per utterance: {r['speakers_per_utterance_in_room']}.",
        "",
        f"Voices: each example persona's voice identified from its other sentences "
        f"{apart['identified']} times (median pitch "
        + ", ".join(f"{k} {v} Hz" for k, v in apart["median_f0_hz"].items())
        + f"); the closest two voices saying the same sentence are "
        f"{apart['same_sentence_distance_min']} apart.",
        "",
        f"Direct audio (no STT; a tiny random-weight Qwen2-Audio projector, "
        f"{direct['utterances']} utterances): {direct['media_tokens_p50']} audio positions, "
        f"{direct['media_ms_p50']} ms p50 against {direct['stt_ms_p50']} ms of Whisper; STT "
        f"calls on the direct path: {direct['stt_calls']}.",
    ]
    (RESULTS / f"{name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    anyio.run(main)
