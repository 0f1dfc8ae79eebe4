"""The scripted backend now ships in the package (continuum.testing) for host authors."""

from continuum.testing import ScriptedBackend

__all__ = ["ScriptedBackend"]
