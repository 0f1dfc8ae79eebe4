"""TOML bytes to a table, with the one-line reasons a person can act on."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from typing import Any


def parse_toml(raw: bytes, fail: Callable[[str], Exception]) -> dict[str, Any]:
    """``fail(reason)`` makes the caller's error (it names the file)."""
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except RecursionError:  # tables or arrays nested thousands deep
        raise fail("invalid TOML: nested too deeply") from None
    except UnicodeDecodeError as exc:
        raise fail(f"not UTF-8 text: {exc.reason}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise fail(f"invalid TOML: {exc}") from exc
