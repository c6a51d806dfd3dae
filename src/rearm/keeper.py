"""The heartbeat keeper: a small process outside the daemon's event loop that notices a hang.

The daemon writes one byte to the keeper's stdin every interval from its event loop. If no byte
arrives within the timeout while the daemon process still exists, the daemon is hung (a stopped
or spinning loop recovers nothing): the keeper records a `heartbeat_timeout` event in the state
database and takes the heartbeat action -- in drill mode, the event only. End of file on stdin
means the daemon ended (a crash or a stop): that is not a hang, and the keeper ends quietly;
the next daemon starts a keeper of its own.

Run as `python -m rearm.keeper --db PATH --timeout S --action A --daemon-pid P [--drill]`.
"""

from __future__ import annotations

import argparse
import os
import select
import sys
import time

from rearm.store import Store


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


def keep(db: str, timeout: float, action: str, daemon_pid: int, drill: bool) -> int:
    store = Store(db)
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
            store.add_event(
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
    args = parser.parse_args(argv)
    return keep(args.db, args.timeout, args.action, args.daemon_pid, args.drill)


if __name__ == "__main__":
    sys.exit(main())
