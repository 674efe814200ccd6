"""Background work a service does beside its events (building inventories, attaching OCR
evidence, pruning expired records): one loop for all of it, so that such work never takes
the service down and ends with it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


async def repeat(
    step: Callable[[], Awaitable[object]], every: float, what: str, log: logging.Logger
) -> None:
    """Run ``step`` every ``every`` seconds until cancelled. While it reports work left (a
    truthy result) it runs again at once; a failure is logged as "``what`` failed" and the
    step is tried again on the next round."""
    while True:
        try:
            while await step():
                pass
        except asyncio.CancelledError:
            raise
        except Exception:  # housekeeping never takes the service down
            log.warning("%s failed; retrying", what, exc_info=True)
        await asyncio.sleep(every)


async def stop(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait until it has ended."""
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
