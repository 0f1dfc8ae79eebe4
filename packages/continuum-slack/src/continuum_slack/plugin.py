"""Registers the Slack host through the ``continuum`` entry-point group."""

from __future__ import annotations

from collections.abc import Callable

from continuum import HostAdapter, hookimpl
from continuum_slack.host import SlackHost


@hookimpl
def register_hosts(register: Callable[[type[HostAdapter]], None]) -> None:
    register(SlackHost)
