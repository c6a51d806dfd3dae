"""Heavy libraries imported off the daemon's loop.

Importing aiohttp or aiosmtplib takes tens of milliseconds of CPU; done on the loop at the first
alert, that would delay whatever the daemon had to do just then -- a restart, say. Imported in a
worker thread, the loop keeps turning (the interpreter switches threads every few ms).
"""

from __future__ import annotations

import asyncio
import importlib
import sys


async def import_off_loop(*names: str) -> None:
    for name in names:
        if name not in sys.modules:
            await asyncio.to_thread(importlib.import_module, name)
