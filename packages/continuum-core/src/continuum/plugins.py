"""Loading plugins: every plugin, built-in or not, comes through the entry-point group."""

from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

from continuum import hookspecs
from continuum.errors import PluginConflict, UnknownPlugin
from continuum.hookspecs import BackendFactory, ModelSource, TTSFactory
from continuum.hosts.base import HostAdapter

if TYPE_CHECKING:
    from continuum.voice.tts import TTSEngine
    from continuum.voice.turn_detect import TurnDetector

ENTRY_POINT_GROUP = "continuum"


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("continuum")
    pm.add_hookspecs(hookspecs)
    pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    # CONTINUUM_PLUGINS=module,module loads extra plugin modules (handy in development).
    for name in filter(None, os.environ.get("CONTINUUM_PLUGINS", "").split(",")):
        try:
            module = importlib.import_module(name.strip())
        except ImportError as exc:
            raise UnknownPlugin(f"CONTINUUM_PLUGINS names {name.strip()!r}: {exc}") from exc
        if not pm.is_registered(module):
            pm.register(module, name=name.strip())
    return pm


def hosts() -> dict[str, type[HostAdapter]]:
    found: dict[str, type[HostAdapter]] = {}

    def register(cls: type[HostAdapter]) -> None:
        if cls.name in found and found[cls.name] is not cls:
            raise PluginConflict(f"two plugins register a host named {cls.name!r}")
        found[cls.name] = cls

    plugin_manager().hook.register_hosts(register=register)
    return found


def _factories(hook: str, what: str) -> dict[str, Callable[..., object]]:
    """Factories by name from every plugin's ``hook``; one name, two factories: a conflict."""
    found: dict[str, Callable[..., object]] = {}

    def register(name: str, factory: Callable[..., object]) -> None:
        if name in found and found[name] is not factory:
            raise PluginConflict(f"two plugins register a {what} named {name!r}")
        found[name] = factory

    getattr(plugin_manager().hook, hook)(register=register)
    return found


def backends() -> dict[str, BackendFactory]:
    return _factories("register_backends", "backend")  # type: ignore[return-value]


def tts_engines() -> dict[str, TTSFactory]:
    return _factories("register_tts", "TTS engine")  # type: ignore[return-value]


def tts_engine(name: str) -> TTSEngine:
    engines = tts_engines()
    if name not in engines:
        raise UnknownPlugin(
            f"no TTS engine named {name!r} (installed: {', '.join(sorted(engines)) or 'none'})"
        )
    return engines[name]()


def model_sources() -> dict[str, ModelSource]:
    return _factories("register_model_sources", "model source")  # type: ignore[return-value]


def turn_detectors() -> dict[str, Callable[[], object]]:
    return _factories("register_turn_detectors", "turn detector")


def turn_detector(name: str) -> TurnDetector:
    found = turn_detectors()
    if name not in found:
        raise UnknownPlugin(
            f"no turn detector named {name!r} (installed: {', '.join(sorted(found)) or 'none'})"
        )
    return found[name]()  # type: ignore[return-value]


def plugin_names() -> list[str]:
    pm = plugin_manager()
    return sorted(pm.get_name(p) or repr(p) for p in pm.get_plugins())
