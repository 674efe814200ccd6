"""A task of the catalog that runs beside its requests (the feed sequencer, the mirror)."""

from __future__ import annotations

import asyncio


class Background:
    """``run`` in a task between ``start`` and ``stop``; ``close`` releases what it held."""

    _task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        """Release connections and clients (after the task has ended)."""

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=type(self).__name__)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self.close()
