"""The heartbeat keeper: a small process outside the daemon's event loop that notices a hang.

The daemon writes one byte to the keeper's stdin every interval from its event loop. If no byte
arrives within the timeout while the daemon process still exists, the daemon is hung (a stopped
or spinning loop recovers nothing): the keeper records a `heartbeat_timeout` event in the state
database and takes the heartbeat action -- in drill mode, the event only. End of file on stdin
means the daemon ended (a crash or a stop): that is not a hang, and the keeper ends quietly;
the next daemon starts a keeper of its own.

The hung daemon cannot send the heartbeat_timeout alert, so the keeper sends it itself, to the
sinks of cluster.toml, with a bounded wait, before it takes the action.

Run as `python -m rearm.keeper --db PATH --timeout S --action A --daemon-pid P [--drill]
[--home DIR]`.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import time

from rearm.paths import Home
from rearm.store import EventRow, Store

ALERT_TIMEOUT = 5.0


def _send_alert(home: Home, event: EventRow) -> None:
    """Deliver one event to the configured sinks, waiting at most ALERT_TIMEOUT seconds."""
    import asyncio
    import contextlib
    from typing import Any

    from rearm.alerts import AlertDispatcher, load_sinks
    from rearm.config import load_cluster
    from rearm.validate import ConfigError

    try:
        sinks = load_sinks(home)
        cluster = load_cluster(home)
    except ConfigError:
        return  # the daemon reports configuration errors; nothing to send with here
    if not sinks:
        return

    def ignore(kind: str, message: str, **fields: Any) -> Any:
        return None  # the keeper has no bus: delivery failures only cost this one alert

    async def deliver() -> None:
        dispatcher = AlertDispatcher(sinks, cluster.name, cluster.server, ignore)
        await dispatcher.start()
        dispatcher.offer(event)
        await dispatcher.flush(event, ALERT_TIMEOUT)
        await dispatcher.stop(0.5)

    # An alert must never keep the heartbeat action from happening.
    with contextlib.suppress(Exception):
        asyncio.run(asyncio.wait_for(deliver(), ALERT_TIMEOUT + 2))


def _daemon_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _act(action: str) -> None:
    """The real heartbeat action. Never reached in drill mode (tests, demos, benchmarks)."""
    from rearm.daemon.actions import MachineControl

    machine = MachineControl()
    if action == "reboot":
        machine.reboot()
    elif action == "panic":
        machine.panic()


def keep(
    db: str, timeout: float, action: str, daemon_pid: int, drill: bool, home: Home | None = None
) -> int:
    store = Store(db)
    # A full or read-only var/ must not keep the heartbeat action from firing: the event that
    # cannot be written is dropped (it is sent as an alert all the same).
    store.tolerate_write_failures(lambda failure: None)
    fd = sys.stdin.fileno()
    hung = False
    last = time.monotonic()
    while True:
        remaining = max(0.0, last + timeout - time.monotonic())
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            data = os.read(fd, 4096)
            if not data:
                return 0  # the daemon closed the pipe: it ended, it did not hang
            last = time.monotonic()
            if hung:
                hung = False
                with store.transaction():
                    store.add_event(
                        time.time(),
                        "heartbeat_resumed",
                        "warning",
                        None,
                        None,
                        f"the daemon (pid {daemon_pid}) beats again",
                        None,
                    )
            continue
        if hung:
            last = time.monotonic()  # one event per hang, then keep waiting
            continue
        if not _daemon_exists(daemon_pid):
            return 0
        hung = True
        last = time.monotonic()
        real = not drill and action != "none"
        with store.transaction():
            event = store.add_event(
                time.time(),
                "heartbeat_timeout",
                "critical",
                None,
                None,
                f"no heartbeat from the daemon (pid {daemon_pid}) for {timeout:g} s: "
                f"heartbeat action {action}"
                + (" (drill: recorded, not executed)" if drill and action != "none" else ""),
                {"action": action, "drill": drill, "timeout": timeout},
            )
        if home is not None:
            _send_alert(home, event)
        if real:
            store.sync_hard()
            _act(action)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rearm-keeper", description=__doc__)
    parser.add_argument("--db", required=True)
    parser.add_argument("--timeout", type=float, required=True)
    parser.add_argument("--action", choices=["panic", "reboot", "none"], required=True)
    parser.add_argument("--daemon-pid", type=int, required=True)
    parser.add_argument("--drill", action="store_true")
    parser.add_argument("--home", help="REARM_HOME, for the alert sinks ('' = system paths)")
    args = parser.parse_args(argv)
    home = None if args.home is None else Home.from_env(args.home or None)
    return keep(args.db, args.timeout, args.action, args.daemon_pid, args.drill, home)


if __name__ == "__main__":
    sys.exit(main())
