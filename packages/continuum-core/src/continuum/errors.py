"""The errors continuum raises: one small hierarchy a user can catch."""

from __future__ import annotations

from pathlib import Path


class ContinuumError(Exception):
    """Base class of every error continuum raises on purpose."""


class FileFieldError(ContinuumError):
    """A file is unreadable or invalid; the message names the file and the field."""

    def __init__(self, path: Path | str, field: str | None, message: str) -> None:
        self.path = Path(path)
        self.field = field
        self.message = message
        where = f"{self.path}: field '{field}'" if field else f"{self.path}"
        super().__init__(f"{where}: {message}")


class PersonaFileError(FileFieldError):
    """A persona or character-card file is unreadable or invalid; names the file and field."""


class ModelNotInstalled(ContinuumError):
    """The model a backend needs is missing; the message carries the install line."""


class PromptTooLong(ContinuumError):
    """A composed prompt cannot fit the slot's context even after trimming history."""


class BackendError(ContinuumError):
    """An inference backend failed to serve a request. ``retryable``: the same request
    may succeed later (a server down, a full queue, a timeout); False for a refusal."""

    retryable: bool = True

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class MediaRejected(BackendError):
    """The model could not take a media part (a truncated JPEG, an SVG, an image bomb, a
    clip its projector refuses). ``media_ids``: the placeholders' ids it concerns (all of
    the request's, when the backend cannot tell which). Never sent again."""

    retryable = False

    def __init__(self, message: str, media_ids: tuple[str, ...]) -> None:
        super().__init__(message, retryable=False)
        self.media_ids = media_ids


class BackendBusy(BackendError):
    """The backend's queue is full (backpressure); try again later."""


class BackendTimeout(BackendError):
    """A request waited or ran longer than its timeout."""


class BackendPreempted(BackendError):
    """A background request gave the model back to a turn that needed it (it stopped
    between batches); run it again when the model is free."""


class MalformedEvent(ContinuumError):
    """A host event could not be turned into an envelope (forged, malformed, unknown)."""


class ConfigError(FileFieldError):
    """A configuration file (continuum.toml) is invalid; names the file and the field."""


class UnknownPlugin(ContinuumError):
    """No installed plugin registers a host or backend of that name (lists the known ones)."""


class UnknownMessage(ContinuumError):
    """A message id (a room's, or a host's) that is not known."""


class PluginConflict(ContinuumError):
    """Two plugins register the same host or backend name."""


class DataDirInUse(ContinuumError):
    """Another continuum process holds the data dir (a second runtime, or a command that
    would change what a running one keeps in memory)."""


class MediaTooLong(ContinuumError):
    """A voice message longer than speech-to-text takes (``[media] max_audio_s``)."""


class HostFailed(ContinuumError):
    """A host cannot run (credentials refused, its port taken, its service unreachable
    after bounded retries). ``continuum serve`` stops and exits non-zero with this line."""
