"""The voice side of the host contract: what a voice host (LiveKit, Discord voice, a
phone bridge, yours) gives the runtime and gets from it.

A voice host only moves frames:

- **In:** for every human audio stream it asks the runtime for an :class:`Ear`
  (``services.ear(room_id, speaker)``) and pushes the stream's frames into it, at whatever
  rate and channel count they come. The runtime does the rest: voice activity, end of
  turn, speech-to-text with its one transcriber (or none, for a model that hears audio),
  barge-in, and delivering the utterance into the room under the speaker's identity.
- **Out:** a host with ``capabilities.audio_out`` implements
  :meth:`HostAdapter.open_audio <continuum.hosts.base.HostAdapter.open_audio>`, returning
  an :class:`AudioOutput` for one persona's reply. The runtime synthesizes the reply in
  the persona's voice and writes its frames there, paced a little ahead of playback; the
  output's *playout clock* (:meth:`AudioOutput.played_s`) says what was actually heard —
  which is what the persona's history keeps when it is interrupted.

This module imports nothing of the engine.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Protocol, runtime_checkable

import numpy as np


class AudioOutput(ABC):
    """Where one persona's spoken reply goes (a LiveKit track, a Discord voice client).

    ``write`` takes mono float32 samples in [-1, 1] at ``sample_rate`` (the core
    resamples); it may wait while the output's buffer is full. ``played_s`` is the
    playout clock: seconds of written audio that have actually been played (not pushed)
    — LiveKit's ``AudioSource.queued_duration`` subtracted from what was captured,
    discord.py's ``read()`` count times 20 ms. ``clear`` drops audio written but not
    played yet (a barge-in pauses the reply at once)."""

    sample_rate: int = 48_000
    # the host lost this output (a dropped connection): the reply ends there, and the
    # persona's history keeps what ``played_s`` says was heard before
    broken: bool = False

    @abstractmethod
    async def write(self, samples: np.ndarray) -> None: ...

    @abstractmethod
    def played_s(self) -> float: ...

    @abstractmethod
    def clear(self) -> None: ...

    async def close(self) -> None:  # noqa: B027 - optional
        """The reply is over (played out, or cut off): release the output."""


@runtime_checkable
class Ear(Protocol):
    """One incoming human audio stream, listened to by the runtime. ``push`` frames as
    they arrive: ``samples`` int16 or float32, interleaved when ``channels`` > 1, at
    ``rate``. ``close`` when the stream ends (what was said before is still answered)."""

    speaker_id: str

    async def push(self, samples: np.ndarray, rate: int, channels: int = 1) -> None: ...

    async def close(self) -> None: ...
