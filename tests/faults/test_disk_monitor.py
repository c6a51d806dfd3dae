"""The `disk` monitor on a disk that hangs: an ext4 file system on a loop device, mounted in a
private mount namespace of the test's own (privatevar.MountNamespace) and frozen with fsfreeze.
The probe times out, the next ones fail at once (the stuck child is not replaced, the event
loop never waits), and after the thaw the stuck child ends and the monitor recovers.

Only that loop device's file system is ever frozen: the test checks, inside the namespace, that
the mount point's source is a loop device and, outside, that the same path is no mount point.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from rearm.monitors import procfs
from rearm.monitors.base import Status

from ..monitors.helpers import running, spec, toml_str
from .privatevar import MountNamespace, ext4_image, require_namespaces


@pytest.fixture
def loop_mount(tmp_path: Path) -> Iterator[tuple[MountNamespace, Path]]:
    require_namespaces()
    image = ext4_image(tmp_path / "disk.ext4", 16 << 20)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    namespace = MountNamespace(f"mount -o loop {image} {mnt}")
    try:
        yield namespace, mnt
    finally:
        namespace.run("fsfreeze", "--unfreeze", str(mnt))  # whatever happened: thawed
        namespace.end()


def freeze(namespace: MountNamespace, mnt: Path, how: str) -> None:
    source = namespace.run("findmnt", "-n", "-o", "SOURCE", str(mnt)).stdout.strip()
    assert source.startswith("/dev/loop"), f"{mnt} is not the test's loop mount: {source!r}"
    assert not os.path.ismount(mnt), f"{mnt} is a mount point outside the namespace"
    r = namespace.run("fsfreeze", how, str(mnt))
    assert r.returncode == 0, r.stderr


@pytest.mark.asyncio
async def test_a_frozen_disk_times_out_without_hanging_and_recovers_after_thaw(
    loop_mount: tuple[MountNamespace, Path],
) -> None:
    namespace, mnt = loop_mount
    probe_file = namespace.path(mnt / "rearm-disk-probe")
    s = spec(
        f'kind = "disk"\nfile = {toml_str(str(probe_file))}\ninterval = 0.5\ntimeout = 0.4\n'
        "failures = 2\n"
    )
    loop = asyncio.get_running_loop()
    async with running(s) as rec:
        await rec.until(lambda: rec.results, timeout=10)
        assert rec.results[0].status is Status.OK and "O_DIRECT" in rec.results[0].message
        freeze(namespace, mnt, "--freeze")
        frozen_at = len(rec.results)
        # A timer on the loop keeps its time while the disk hangs.
        late: list[float] = []

        async def tick() -> None:
            while not rec.faults():
                due = loop.time() + 0.01
                await asyncio.sleep(0.01)
                late.append(loop.time() - due)

        ticker = asyncio.create_task(tick())
        await rec.until(rec.faults, timeout=10, what="the fault")
        await ticker
        after = rec.results[frozen_at:]
        assert after[0].status is Status.ERROR
        assert after[0].message.startswith("timed out after 0.4 s (writing, syncing and reading")
        assert "is still stuck in I/O" in after[1].message  # not a second child
        assert max(late) < 0.05, f"the loop was held up {max(late) * 1000:.0f} ms"
        stuck = [p for p in procfs.all_stats() if p.state == "D" and p.comm.startswith("python")]
        assert stuck, "the probe's child should be blocked in the frozen file system"
        freeze(namespace, mnt, "--unfreeze")
        await rec.until(lambda: rec.states()[-1] == "normal", timeout=15, what="recovery")
        assert all(procfs.read_stat(p.pid) is None for p in stuck)  # ended and reaped
    assert rec.states() == ["normal", "error", "normal"]
    assert "recovered, failure count cleared: write+fsync" in rec.changes[-1].event.message
