"""``continuum-hub preview``: what a repo is before anything is installed — its card,
base model, licence, files and sizes, and for a voice a sample line synthesized locally
from a temporary copy (checked like a pull; deleted after)."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from continuum_hub.download import fetch
from continuum_hub.errors import HubError
from continuum_hub.pull import choose_weights
from continuum_hub.remote import RepoView, split_ref, view
from continuum_hub.settings import HubSettings

SAMPLE_LINE = "Hello, this is how I sound. Nice to meet you."


@dataclass(frozen=True)
class Preview:
    view: RepoView
    card_text: str
    sample: Path | None = None


def _card_body(settings: HubSettings, remote: RepoView) -> str:
    if not any(f.path == "README.md" for f in remote.files):
        return "(no card)"
    with tempfile.TemporaryDirectory(prefix="continuum-hub-card-") as tmp:
        path = fetch(
            settings,
            remote.repo_id,
            remote.sha,
            remote.file("README.md"),
            Path(tmp),
            progress=False,
        )
        text = path.read_text("utf-8", "replace")
    if text.startswith("---"):
        end = text.find("\n---", 3)
        text = text[end + 4 :] if end > 0 else text
    return text.strip()


def preview(
    ref: str,
    settings: HubSettings | None = None,
    sample: Path | None = None,
    line: str = SAMPLE_LINE,
) -> Preview:
    settings = settings or HubSettings()
    repo_id, rev = split_ref(ref)
    remote = view(settings, repo_id, rev)
    body = _card_body(settings, remote)
    if sample is None:
        return Preview(remote, body)
    if remote.kind != "voice":
        raise HubError(f"{remote.repo_id} is not a voice (tagged continuum-voice): no sample")
    weights = choose_weights(remote, "voice", None)
    from continuum.backends.base import AdapterUse
    from continuum.persona import VoiceSpec
    from continuum.voice.audio import wav_bytes
    from continuum.voice.codec_tts import CodecTTS

    with tempfile.TemporaryDirectory(prefix="continuum-hub-voice-") as tmp:
        path = fetch(settings, remote.repo_id, remote.sha, weights, Path(tmp), progress=False)
        tts = CodecTTS.from_environment()
        try:
            use = AdapterUse(id="preview", path=str(path))
            audio, rate = tts.synthesize(line, VoiceSpec(engine="codec"), (use,))
        finally:
            tts.close()
    sample.write_bytes(wav_bytes(audio, rate))
    return Preview(remote, body, sample)
