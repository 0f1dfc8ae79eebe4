"""Voice activity (Silero, the ONNX copy bundled in faster-whisper) frame by frame, and an
end-of-turn detector that is better than a fixed silence timer.

End of turn: a short silence ends the turn when what was said so far reads as finished
(the speculative transcript, made while the person is silent, ends a sentence and not on a
word that promises more: "and", "the", "um", ...); otherwise the turn waits for a long
silence. The speculative transcript is the final one when the person does not go on, so
speech-to-text is off the critical path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from continuum.errors import ContinuumError

FRAME = 512  # samples at 16 kHz: 32 ms, what Silero takes
FRAME_MS = 32
_CONTEXT = 64


class SileroVAD:
    """Speech probability per 32 ms frame, carrying the model's state across calls."""

    def __init__(self) -> None:
        try:
            import onnxruntime
            from faster_whisper.utils import get_assets_path
        except ImportError as exc:
            raise ContinuumError(
                "voice activity detection needs faster-whisper (its bundled Silero model) "
                "and onnxruntime: pip install 'continuum-core[voice]'"
            ) from exc
        opts = onnxruntime.SessionOptions()
        opts.inter_op_num_threads = 1
        opts.intra_op_num_threads = 1
        opts.log_severity_level = 4
        self._session = onnxruntime.InferenceSession(
            os.path.join(get_assets_path(), "silero_vad_v6.onnx"),
            providers=["CPUExecutionProvider"],
            sess_options=opts,
        )
        self.reset()

    def reset(self) -> None:
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, _CONTEXT), dtype=np.float32)

    def __call__(self, frame: np.ndarray) -> float:
        if frame.shape != (FRAME,):
            raise ValueError(f"a VAD frame is {FRAME} samples at 16 kHz")
        x = np.concatenate([self._context, frame[None, :].astype(np.float32)], axis=1)
        out, self._h, self._c = self._session.run(None, {"input": x, "h": self._h, "c": self._c})
        self._context = x[:, -_CONTEXT:]
        return float(out.reshape(-1)[0])


# words after which a speaker has not finished: a pause here is a breath, not a turn end
_OPEN_ENDINGS = frozenset(
    """a an the and or but so because if when while that which who whose to of in on at for
    with about from by as than then like um uh er erm hmm my your our their his her its is
    are was were be been am i we you they he she it this these those some any very really
    just maybe also""".split()
)
# verbs that announce what comes next: "can you explain ...", "I wonder ...", "tell me ..."
_OPEN_VERBS = frozenset(
    """tell explain show think know wonder say mean guess suppose believe want need try like
    hope wish remember ask describe give""".split()
)
_OBJECTS = frozenset("me us you him her them".split())


def reads_finished(transcript: str) -> bool:
    """Does this (speculative) transcript read like a finished turn?"""
    text = transcript.strip()
    if not text or text.endswith(("...", "…", ",", "-", "—")):
        return False
    words = re.findall(r"[a-z0-9']+", text.lower())  # "is 4417." ends on the number
    if words and words[-1] in _OPEN_ENDINGS:
        return False
    if words and words[-1] in _OPEN_VERBS:  # "can you explain?"
        return False
    if len(words) >= 2 and words[-2] in _OPEN_VERBS and words[-1] in _OBJECTS:  # "tell me?"
        return False
    return text[-1] in ".?!"


@dataclass
class EndOfTurnPolicy:
    threshold: float = 0.5  # speech probability that counts as speech
    min_speech_ms: int = 160  # shorter bursts are noise (a click, a cough's start)
    speculate_ms: int = 96  # silence before the speculative transcript starts
    # silence that ends a turn that reads as finished: 640 ms is the shortest that kept
    # false ends of turn at 0 of 10 paused utterances in bench/voice (256-512 ms: 1 of 10)
    short_tail_ms: int = 640
    long_tail_ms: int = 960  # silence that ends any turn
    # a turn detector's probability at or above this reads "finished" (then short_tail_ms)
    finished_threshold: float = 0.5
    barge_in_ms: int = 128  # speech during playback that pauses it
    burst_end_ms: int = 256  # silence that ends a burst during playback (then: what was it?)
    unsure_logprob: float = -1.0  # a burst transcribed less surely than this is not words
    # speech this long during playback is an interruption whatever it says (shorter bursts
    # are transcribed: "mm-hm" resumes). Playback is paused long before, at barge_in_ms.
    confirm_ms: int = 960


# what people say to show they are listening, not to take the floor
BACKCHANNELS = frozenset(
    """mm mmm mhm mmhm hm hmm uh huh uhhuh yeah yep yes ok okay right sure aha ah oh um""".split()
)


def is_backchannel(transcript: str) -> bool:
    words = re.findall(r"[a-z']+", transcript.lower())  # "Mm-hmm." -> mm, hmm
    return all(w in BACKCHANNELS for w in words)  # nothing heard (a cough): one too
