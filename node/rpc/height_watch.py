"""A height that only rises, and coroutines that wait for it to pass a mark.

The node advances one ``HeightWatch`` per executed block and implements
``ChainView.wait_for_execution`` with ``wait_above``; any number of block streams can wait
on it without a queue per subscriber (a slow subscriber reads the blocks it missed from
storage instead of buffering them).
"""

from __future__ import annotations

import asyncio


class HeightWatch:
    """The latest height, plus an event that fires whenever it rises."""

    def __init__(self, height: int = 0) -> None:
        self._height = height
        self._risen = asyncio.Event()

    @property
    def height(self) -> int:
        return self._height

    def advance(self, height: int) -> None:
        """Record ``height`` if it is higher than the current one and wake every waiter."""
        if height <= self._height:
            return
        self._height = height
        risen, self._risen = self._risen, asyncio.Event()
        risen.set()

    async def wait_above(self, mark: int) -> int:
        """Return the height as soon as it exceeds ``mark``."""
        while self._height <= mark:
            await self._risen.wait()
        return self._height
