"""A blocking call that hangs (statvfs of a dead NFS mount...) keeps one thread, not one per
interval: while it hangs, the next call is refused at once."""

from __future__ import annotations

import asyncio
import threading

import pytest

from rearm.monitors.offload import Offload, Stuck


@pytest.mark.asyncio
async def test_a_hanging_call_keeps_one_thread_and_the_next_is_refused() -> None:
    release = threading.Event()
    offload = Offload("test")
    before = threading.active_count()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(offload.run(release.wait), 0.1)  # the probe's deadline
    for _ in range(5):
        with pytest.raises(Stuck, match="the previous check is still stuck after 0 s"):
            await offload.run(lambda: 1)
    assert threading.active_count() == before + 1
    release.set()
    loop = asyncio.get_running_loop()
    end = loop.time() + 5
    while True:
        try:
            assert await offload.run(lambda: 42) == 42
            break
        except Stuck:
            assert loop.time() < end
            await asyncio.sleep(0.01)
    with pytest.raises(ZeroDivisionError):
        await offload.run(lambda: 1 // 0)
