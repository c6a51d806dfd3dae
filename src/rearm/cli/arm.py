"""armload, armkill and armem: thin, fast clients of the daemon (called from scripts, often).

Imports only the parser, rearm.requests and the socket client, which between them import no
stdlib module that is not already loaded when Python starts (see docs/performance.md).
Exit status: 0 success, 1 refused or failed, 2 bad command line, 3 daemon not running.
"""

from __future__ import annotations

import os
import sys

from rearm.api.client import ApiFailure, DaemonNotRunning, call
from rearm.arm import (
    ARMEM_USAGE,
    ARMKILL_USAGE,
    ARMLOAD_USAGE,
    ArmUsageError,
    HelpRequested,
    parse_armem,
    parse_armkill,
    parse_armload,
)
from rearm.paths import Home
from rearm.requests import KillRequest, LoadRequest, ModeRequest, request_to_dict

TYPE_CHECKING = False
if TYPE_CHECKING:  # only for the checker: typing costs milliseconds at run time
    from collections.abc import Callable
    from typing import TypeVar

    Req = TypeVar("Req")

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_NO_DAEMON = 3


def _split_home(args: list[str]) -> tuple[Home, list[str]]:
    """`--home DIR` (or --home=DIR) may come first, as on every rearm command."""
    if args and args[0] == "--home" and len(args) > 1:
        return Home.from_env(args[1]), args[2:]
    if args and args[0].startswith("--home="):
        return Home.from_env(args[0].split("=", 1)[1]), args[1:]
    return Home.from_env(), args


def _fail(command: str, message: str, code: int) -> int:
    print(f"{command}: {message}", file=sys.stderr)
    return code


def resolve_program(name: str) -> str:
    """PATH as the caller's shell would find it, made absolute (the daemon has another cwd)."""
    if "/" in name:
        path = os.path.abspath(name)
        if not os.path.isfile(path):
            raise ArmUsageError(f"program '{name}' not found ({path} does not exist)")
    else:
        for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
            path = os.path.join(folder or ".", name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                break
        else:
            raise ArmUsageError(f"program '{name}' not found in PATH")
        path = os.path.abspath(path)
    if not os.access(path, os.X_OK):
        raise ArmUsageError(f"program '{path}' is not executable")
    return path


def _run(
    command: str,
    usage: str,
    args: list[str],
    parse: Callable[[list[str]], Req],
    act: Callable[[Home, Req], int],
) -> int:
    """Parse, then act: one mapping of every failure to its message and exit status."""
    home, args = _split_home(args)
    try:
        request = parse(args)
    except HelpRequested:
        print(usage)
        return 0
    except ArmUsageError as e:
        return _fail(command, str(e), EXIT_USAGE)
    try:
        return act(home, request)
    except ArmUsageError as e:
        return _fail(command, str(e), EXIT_USAGE)
    except DaemonNotRunning as e:
        return _fail(command, str(e), EXIT_NO_DAEMON)
    except ApiFailure as e:
        return _fail(command, str(e), EXIT_REFUSED)


def _load(home: Home, req: LoadRequest) -> int:
    if req.argv is not None:
        req = LoadRequest(
            req.watch_id,
            req.policy,
            req.adopt,
            req.wait,
            None,
            (resolve_program(req.argv[0]), *req.argv[1:]),
            req.user,
        )
    request = {
        "request": request_to_dict(req),
        "group": os.environ.get("REARM_GROUP") or None,
        "event": os.environ.get("REARM_EVENT") or None,
        # An application starts with its caller's environment, as if run from that shell.
        "env": dict(os.environ) if req.argv is not None else {},
    }
    result = call(home.socket, "armload", request)
    message = result.get("message") if isinstance(result, dict) else None
    if message:  # e.g. /A of a service another watch holds: nothing was changed
        print(f"armload: {message}")
    return 0


def _kill(home: Home, req: KillRequest) -> int:
    result = call(
        home.socket,
        "armkill",
        {"watch_id": req.watch_id, "keep_running": req.keep_running, "timeout": req.timeout},
    )
    message = str(result.get("message", "")) if isinstance(result, dict) else ""
    if "SIGKILL" in message:
        print(message)  # the target had to be killed: say so, as SPEC §5 asks
    warning = result.get("warning") if isinstance(result, dict) else None
    if warning:  # e.g. done, but var/ takes no writes: a daemon crash now would undo it
        print(f"armkill: warning: {warning}", file=sys.stderr)
    return 0


def _mode(home: Home, req: ModeRequest) -> int:
    from rearm.config import load_cluster, set_cluster_keys
    from rearm.validate import ConfigError

    try:
        if req.mode is None:
            print(load_cluster(home).final_action.value)
            return 0
        set_cluster_keys(home, {"final_action": req.mode.value})
    except ConfigError as e:
        return _fail("armem", str(e), EXIT_REFUSED)
    except OSError as e:
        return _fail("armem", f"cannot write {home.cluster_file}: {e.strerror}", EXIT_REFUSED)
    try:
        call(home.socket, "reload")
    except DaemonNotRunning:
        print("armem: the daemon is not running; the mode applies when it starts", file=sys.stderr)
    except ApiFailure as e:
        return _fail("armem", f"saved, but the daemon did not take it: {e}", EXIT_REFUSED)
    print("Command succeeded.")
    return 0


def armload(args: list[str]) -> int:
    return _run("armload", ARMLOAD_USAGE, args, parse_armload, _load)


def armkill(args: list[str]) -> int:
    return _run("armkill", ARMKILL_USAGE, args, parse_armkill, _kill)


def armem(args: list[str]) -> int:
    return _run("armem", ARMEM_USAGE, args, parse_armem, _mode)


def armload_main() -> int:
    return armload(sys.argv[1:])


def armkill_main() -> int:
    return armkill(sys.argv[1:])


def armem_main() -> int:
    return armem(sys.argv[1:])
