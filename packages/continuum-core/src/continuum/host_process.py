"""A host process (an editor's language server, started by the editor): attached to the
runtime that serves the data dir when there is one, else inside a runtime of its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio

from continuum.attach import attached, runtime_is_serving
from continuum.config import ContinuumConfig
from continuum.hosts.base import HostAdapter
from continuum.memory.engine import default_data_dir
from continuum.runtime import Runtime


async def run_host(
    host_cls: type[HostAdapter],
    settings: dict[str, Any] | None = None,
    *,
    config: Any = None,
    backend: Any = None,
    ready: Callable[[HostAdapter, bool], None] | None = None,
) -> None:
    """Run one host process until cancelled: attached to the runtime serving the data dir
    when there is one, else inside a runtime of its own (with this host only).
    ``ready(host, attached)`` is called once it runs."""
    config = config or ContinuumConfig()
    data_dir = (
        config.relative(config.memory.data_dir) if config.memory.data_dir else default_data_dir()
    )
    if await runtime_is_serving(data_dir):
        host_config = host_cls.config_model.model_validate(settings or {})
        async with attached(data_dir, host_cls, host_config) as host:
            if ready is not None:
                ready(host, True)
            await anyio.sleep_forever()
    own = config.model_copy(update={"hosts": {host_cls.name: settings or {}}})
    runtime = Runtime(own, backend=backend, host_classes={host_cls.name: host_cls})
    async with runtime:
        if ready is not None:
            ready(runtime.host(host_cls.name), False)
        await runtime.serve(handle_signals=False)
