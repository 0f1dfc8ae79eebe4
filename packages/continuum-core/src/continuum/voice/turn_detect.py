"""End-of-turn detectors: has the person finished, or only paused?

Plugins, like TTS engines (``register_turn_detectors``); ``[voice] turn_detector`` picks
one. Each answers, in a pause, with the probability that the turn is over, from the
audio so far (16 kHz mono) and, where there is one, the transcript made in the pause.

- ``smart-turn``: Pipecat's Smart Turn v3 (BSD-2-Clause, by Daily), an 8 MB ONNX
  classifier on Whisper log-mel features of the last 8 s — it hears prosody, not only
  words. Its model file ships in the ``pipecat-ai`` wheel; continuum reads only that file
  (``pip install --no-deps pipecat-ai==1.14.0``), not the framework.
- ``smart-turn|transcript`` (the default where Smart Turn is installed): either says
  finished — chosen on bench/turn_detect's calibration set.
- ``transcript``: the word rule (:func:`continuum.voice.vad.reads_finished`): finished
  when the transcript ends a sentence, not on a word that promises more. Needs a
  transcript; it is the fallback where Smart Turn is not installed.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
from pathlib import Path
from typing import Protocol

import numpy as np

from continuum.errors import ContinuumError
from continuum.voice.audio import RATE
from continuum.voice.vad import reads_finished

SMART_TURN_INSTALL = "pip install --no-deps pipecat-ai==1.14.0  (only its Smart Turn model file)"
SMART_TURN_FILE = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
WINDOW_S = 8


class TurnDetector(Protocol):
    name: str
    needs_transcript: bool  # True: it cannot judge before the pause's transcript exists

    def finished(self, audio: np.ndarray, transcript: str | None) -> float:
        """The probability that the turn is over (``audio``: all of it so far, 16 kHz
        mono float32). May block: the ear calls it in a worker thread."""
        ...


class TranscriptTurnDetector:
    name = "transcript"
    needs_transcript = True

    def finished(self, audio: np.ndarray, transcript: str | None) -> float:
        return 1.0 if transcript is not None and reads_finished(transcript) else 0.0


def smart_turn_model_path() -> Path:
    """The Smart Turn v3 ONNX file: ``$CONTINUUM_SMART_TURN_MODEL``, else the one in an
    installed ``pipecat-ai`` distribution (found by its metadata; nothing is imported)."""
    env = os.environ.get("CONTINUUM_SMART_TURN_MODEL")
    if env:
        path = Path(env)
        if not path.is_file():
            raise ContinuumError(f"CONTINUUM_SMART_TURN_MODEL={env}: no such file")
        return path
    try:
        dist = importlib.metadata.distribution("pipecat-ai")
    except importlib.metadata.PackageNotFoundError as exc:
        raise ContinuumError(
            f"the smart-turn detector needs its model: {SMART_TURN_INSTALL}"
        ) from exc
    path = Path(str(dist.locate_file(SMART_TURN_FILE)))
    if not path.is_file():
        raise ContinuumError(
            f"pipecat-ai {dist.version} has no {SMART_TURN_FILE}: {SMART_TURN_INSTALL}"
        )
    return path


class SmartTurnDetector:
    name = "smart-turn"
    needs_transcript = False

    def __init__(self, model: Path | None = None, threads: int = 1) -> None:
        try:
            import onnxruntime
            from faster_whisper.feature_extractor import FeatureExtractor
        except ImportError as exc:
            raise ContinuumError(
                "the smart-turn detector needs onnxruntime and faster-whisper's feature "
                "extractor: pip install 'continuum-core[voice]'"
            ) from exc
        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            str(model or smart_turn_model_path()),
            providers=["CPUExecutionProvider"],
            sess_options=opts,
        )
        self._features = FeatureExtractor(feature_size=80, sampling_rate=RATE)
        self._lock = threading.Lock()
        self.calls = 0

    def finished(self, audio: np.ndarray, transcript: str | None) -> float:
        n = WINDOW_S * RATE
        x = audio[-n:].astype(np.float32)
        if len(x) < n:  # the model was trained on audio padded at the front
            x = np.pad(x, (n - len(x), 0))
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)  # Whisper's do_normalize
        mel = self._features(x, padding=0)[:, : WINDOW_S * 100]
        with self._lock:
            self.calls += 1
            out = self._session.run(None, {"input_features": mel[None].astype(np.float32)})
        return float(np.asarray(out[0]).reshape(-1)[0])


class EitherTurnDetector:
    """Finished when the transcript reads finished, or Smart Turn is sure (at the ear's
    ``finished_threshold``): Smart Turn catches turns whose transcript lost its final
    punctuation, the rule catches those Smart Turn misjudges on synthetic voices. Chosen
    on bench/turn_detect's calibration set (see bench/results/turn_detect.md)."""

    name = "smart-turn|transcript"
    needs_transcript = True

    def __init__(self, smart: SmartTurnDetector | None = None) -> None:
        self.smart = smart or SmartTurnDetector()
        self.rule = TranscriptTurnDetector()

    def finished(self, audio: np.ndarray, transcript: str | None) -> float:
        if self.rule.finished(audio, transcript) >= 1.0:
            return 1.0
        return self.smart.finished(audio, transcript)


def default_turn_detector() -> TurnDetector:
    """Smart Turn or the transcript rule where its model is installed, else the rule."""
    try:
        return EitherTurnDetector()
    except ContinuumError:
        return TranscriptTurnDetector()
