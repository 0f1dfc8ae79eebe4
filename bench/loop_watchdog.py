"""Where the event loop blocks: a thread that prints the main thread's stack whenever the
loop has not run for ``threshold_s`` (a LiveKit or Discord voice host on a blocked loop
drops frames both ways)."""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import traceback


def install(loop: asyncio.AbstractEventLoop, threshold_s: float = 0.4, limit: int = 40) -> None:
    main_id = threading.main_thread().ident
    beat = [time.monotonic()]

    async def tick() -> None:
        while True:
            beat[0] = time.monotonic()
            await asyncio.sleep(0.05)

    loop.create_task(tick())

    def watch() -> None:
        dumped = 0
        while dumped < limit:
            time.sleep(0.1)
            lag = time.monotonic() - beat[0]
            frame = sys._current_frames().get(main_id) if main_id else None
            if lag > threshold_s and frame is not None:
                print(f"--- event loop blocked {lag:.2f} s ---", file=sys.stderr)
                print("".join(traceback.format_stack(frame)[-12:]), file=sys.stderr)
                dumped += 1
                time.sleep(0.5)

    threading.Thread(target=watch, daemon=True, name="loop-watchdog").start()
