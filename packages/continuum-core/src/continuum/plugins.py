"""Loading plugins: every plugin, built-in or not, comes through the entry-point group."""

from __future__ import annotations

import functools
import importlib
import os
from typing import TYPE_CHECKING

import pluggy

from continuum import hookspecs
from continuum.errors import PluginConflict, UnknownPlugin
from continuum.hookspecs import BackendFactory, TTSFactory
from continuum.hosts.base import HostAdapter

if TYPE_CHECKING:
    from continuum.voice.tts import TTSEngine

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


def backends() -> dict[str, BackendFactory]:
    found: dict[str, BackendFactory] = {}

    def register(name: str, factory: BackendFactory) -> None:
        if name in found and found[name] is not factory:
            raise PluginConflict(f"two plugins register a backend named {name!r}")
        found[name] = factory

    plugin_manager().hook.register_backends(register=register)
    return found


def tts_engines() -> dict[str, TTSFactory]:
    found: dict[str, TTSFactory] = {}

    def register(name: str, factory: TTSFactory) -> None:
        if name in found and found[name] is not factory:
            raise PluginConflict(f"two plugins register a TTS engine named {name!r}")
        found[name] = factory

    plugin_manager().hook.register_tts(register=register)
    return found


def tts_engine(name: str) -> TTSEngine:
    engines = tts_engines()
    if name not in engines:
        raise UnknownPlugin(
            f"no TTS engine named {name!r} (installed: {', '.join(sorted(engines)) or 'none'})"
        )
    return engines[name]()


def plugin_names() -> list[str]:
    pm = plugin_manager()
    return sorted(pm.get_name(p) or repr(p) for p in pm.get_plugins())
