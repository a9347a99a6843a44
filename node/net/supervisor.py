"""One owned background task per component, so start()/stop() APIs stay structured.

The component's long-lived tasks run inside an ``asyncio.TaskGroup`` in ``main``; the
Supervisor holds the single task running it, cancels and awaits it on ``stop``, and logs
loudly if it ever ends with an error (a bug: every expected failure is handled inside).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

log = structlog.get_logger("lanenet.net")


class Supervisor:
    def __init__(self, name: str) -> None:
        self._name = name
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self, main: Coroutine[Any, Any, None]) -> None:
        if self._task is not None:
            main.close()
            raise RuntimeError(f"{self._name} already started")
        self._task = asyncio.get_running_loop().create_task(main, name=self._name)
        self._task.add_done_callback(self._on_done)

    async def stop(self) -> None:
        task = self._task
        if task is None or task.done():
            return
        task.cancel()
        # asyncio.wait neither raises the task's CancelledError nor swallows our own
        await asyncio.wait([task])

    def _on_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("task_crashed", component=self._name, exc_info=task.exception())
