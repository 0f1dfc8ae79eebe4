"""What goes wrong with the Hub, said plainly."""

from __future__ import annotations

from continuum.errors import ContinuumError


class HubError(ContinuumError):
    """A repo, file or card continuum-hub will not use (and why)."""


class UnsafeFile(HubError):
    """A weight format that can run code (pickle), or a file name that escapes its folder."""


class ChecksumMismatch(HubError):
    """The bytes downloaded are not the ones the Hub lists."""


class LicenseNotAccepted(HubError):
    """A licence outside the allow-list, not accepted for this pull."""
