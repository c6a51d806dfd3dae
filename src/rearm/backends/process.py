"""Processes: spawn in their own session, find, verify and signal them. Linux only.

A spawned target runs in a new session (so it is its own process group leader and outlives the
daemon), reads /dev/null and writes to its watch's log file, which it holds open itself. Exit is
noticed through a pidfd; a pid is only trusted together with its start time from /proc, so a
reused pid is never mistaken for the process that was watched.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rearm.backends.fdreserve import RESERVE
from rearm.limits import Limit, prlimit_options
from rearm.paths import make_folders

SETPRIV = "/usr/bin/setpriv"
ENV = "/usr/bin/env"
PRLIMIT = "/usr/bin/prlimit"
TOKEN_VAR = "REARM_SPAWN_TOKEN"
# The armload request a target carries (daemon.supervisor.REQUEST_VAR); read here only to learn
# which user the target was started as (see may_claim).
REQUEST_VAR = "REARM_REQUEST"


@dataclass(frozen=True)
class Proc:
    """A process known by pid and start time (clock ticks since boot, from /proc/PID/stat)."""

    pid: int
    start: int


class SpawnError(OSError):
    pass


# A spawn failing with one of these says the daemon or the machine is short of something
# (descriptors, processes, memory), not that the target is misconfigured: a crash, restarted as
# usual, never a configuration fault (watch.classify_end).
SHORTAGES = frozenset({errno.EMFILE, errno.ENFILE, errno.EAGAIN, errno.ENOMEM})


# /proc/PID/stat gives a start time in these ticks (USER_HZ) of CLOCK_BOOTTIME, rounded down.
_TICK_NS = 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def start_tick_between(before_ns: int, after_ns: int) -> int | None:
    """The start time a child created between two CLOCK_BOOTTIME readings must have, when both
    fall in one tick (nearly always: a spawn takes well under a tick); else None.

    It saves reading /proc/PID/stat right after the spawn, which waits on the child's exec:
    when a thousand targets restart at once, that wait is a good part of the daemon's time.
    """
    tick = before_ns // _TICK_NS
    return tick if after_ns // _TICK_NS == tick else None


def start_time(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    state = fields[0]
    if state in (b"Z", b"X"):
        return None  # a zombie has ended; only its exit status remains
    return int(fields[19])


def open_pidfd(proc: Proc) -> int | None:
    """A pidfd for `proc`, or None if it ended or its pid now belongs to another process.

    The pidfd is opened first and the start time checked after: if they still agree, the pidfd
    refers to the very process that was recorded.
    """
    try:
        fd = RESERVE.retrying(lambda: os.pidfd_open(proc.pid))
    except ProcessLookupError:
        return None
    if start_time(proc.pid) != proc.start:
        os.close(fd)
        return None
    return fd


def child_pidfd(pid: int) -> int:
    """A pidfd for a child of the daemon's, not yet reaped (so its pid is still its own). Out
    of descriptors, the reserve is given back for it; OSError if there is none even then:
    see `kill_unwatched`."""
    return RESERVE.retrying(lambda: os.pidfd_open(pid))


def kill_unwatched(pid: int) -> None:
    """End a target just started that cannot be watched (no pidfd): it must not run on
    unseen, nor be started a second time by the next restart. It leads the session rearm made
    for it, and it is an unreaped child, so neither its pid nor its group can be another's."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)  # SIGKILL: at once; and no descriptor is needed to reap it


def spawn(
    argv: list[str],
    env: dict[str, str],
    log_path: str,
    cwd: str | None = None,
    user: str | None = None,
    group: str | None = None,
    limits: Sequence[Limit] = (),
) -> Proc:
    """Start argv[0] (an absolute path) in a new session. Raises SpawnError with a clear reason.

    Every wrapper execs the next with the argv it was given (lists, never a shell): prlimit
    (limits), then setpriv (user, group), then env -C (cwd), then the program.
    """
    program = argv[0]
    if not os.path.isabs(program):
        raise SpawnError(errno.EINVAL, f"'{program}' is not an absolute path")
    wrapped = cwd is not None or user is not None or group is not None or bool(limits)
    if wrapped:
        # A wrapper would start, then fail to exec the program: a fault later instead of a
        # clear refusal now. Unwrapped, posix_spawn itself fails and _why_not explains it.
        _check_program(program)
        _check_ids(user, group)
    full = wrap(argv, cwd=cwd, user=user, group=group, limits=limits)
    actions = [
        (os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    for attempt in (1, 2):
        try:
            # Python ignores SIGPIPE and SIGXFSZ for itself; ignored signals survive exec, so
            # they are set back to their defaults for the service.
            # Out of descriptors (the log is opened in a copy of the daemon's table): once more
            # with the reserve given back.
            pid = RESERVE.retrying(
                lambda: os.posix_spawn(
                    full[0],
                    full,
                    env,
                    file_actions=actions,
                    setsid=True,
                    setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
                )
            )
            break
        except ValueError as e:  # a NUL byte or '=' in a name of the environment, or in argv
            raise SpawnError(errno.EINVAL, f"{program}: {e}") from None
        except OSError as e:
            # The log's folder is made here, on the rare spawn that needs it, rather than
            # looked for before every restart (the restart path is the hot path).
            log_folder = os.path.dirname(log_path)
            if attempt == 1 and e.errno == errno.ENOENT and not os.path.isdir(log_folder):
                make_folders(log_folder)
                continue
            _check_program(program)
            raise SpawnError(e.errno or 0, f"{program}: {e.strerror}") from None
    start = start_tick_between(before, time.clock_gettime_ns(time.CLOCK_BOOTTIME))
    if start is None:
        # The spawn spanned a tick (a loaded machine): read it. Reading opens a file, so out
        # of descriptors it takes the reserve too. It must not escape as a bare OSError: the
        # caller would never learn of this child, which would then run unwatched.
        try:
            start = RESERVE.retrying(lambda: start_time(pid))
        except OSError as e:
            kill_unwatched(pid)
            raise SpawnError(
                e.errno or 0,
                f"{program}: started, but its start time could not be read ({e.strerror}), "
                f"so pid {pid} was killed",
            ) from None
    if start is None:
        # It ended already; it is still our child, so its exit will be read from the pidfd
        # path as usual. Record a start time that no live process can match.
        start = -1
    return Proc(pid, start)


def wrap(
    argv: Sequence[str],
    *,
    cwd: str | None = None,
    user: str | None = None,
    group: str | None = None,
    limits: Sequence[Limit] = (),
) -> list[str]:
    """argv behind the exec wrappers that set its limits, identity and folder.

    posix_spawn (vfork + exec) is the fastest way to start a process from Python, but cannot
    change directory or identity; small exec wrappers do that without a shell in between.
    Every wrapper execs the next with the argv it was given: prlimit (limits), then setpriv
    (user, group), then env -C (cwd), then the program. Used for targets and for the commands
    run on their behalf (stop and ready commands), which run as the target's user too.
    """
    full = list(argv)
    if cwd is not None:
        full = [ENV, "-C", cwd, "--", *full]
    if user is not None or group is not None:
        ids: list[str] = []
        if user is not None:
            ids += [f"--reuid={user}", "--init-groups"]
            ids += (
                [f"--regid={group}"] if group is not None else [f"--regid={_primary_group(user)}"]
            )
        else:
            ids += [f"--regid={group}", "--clear-groups"]
        full = [SETPRIV, *ids, "--", *full]
    if limits:
        # Before setpriv: raising a hard limit needs root's CAP_SYS_RESOURCE, which the new
        # user lacks. setpriv and env keep limits across exec.
        if not os.access(PRLIMIT, os.X_OK):
            raise SpawnError(
                errno.ENOENT, f"{PRLIMIT} is missing (apt-get install util-linux): needed by limits"
            )
        full = [PRLIMIT, *prlimit_options(limits), "--", *full]
    return full


def uid_of(user: str | None) -> int:
    """The uid a target runs as: its user (a name or a uid), else the daemon's own."""
    if user is None:
        return os.geteuid()
    if user.isdigit():
        return int(user)
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        raise SpawnError(errno.EINVAL, f"no such user '{user}'") from None


# What `su -` gives a login: these from the user's entry, PATH fixed, nothing of the caller's.
LOGIN_PATH = "/usr/local/bin:/usr/bin:/bin"


def login_env(user: str) -> dict[str, str]:
    """HOME, USER, LOGNAME and SHELL of `user` (a name or a uid), as `su -` sets them."""
    import pwd

    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise SpawnError(errno.EINVAL, f"no such user '{user}'") from None
    return {
        "HOME": entry.pw_dir,
        "USER": entry.pw_name,
        "LOGNAME": entry.pw_name,
        "SHELL": entry.pw_shell or "/bin/sh",
    }


def close_inherited_fds() -> list[int]:
    """Close every descriptor above stderr that this process inherited (those without
    close-on-exec: Python opens its own with it). Whoever started the daemon may have left it
    some, and posix_spawn would hand them on to every target, whatever its user. Returns the
    descriptors closed."""
    closed = []
    for entry in os.listdir("/proc/self/fd"):
        fd = int(entry)
        if fd <= 2:
            continue
        try:
            if not os.get_inheritable(fd):
                continue
            os.close(fd)
        except OSError:  # the descriptor of the listing itself, already gone
            continue
        closed.append(fd)
    return closed


def _check_program(program: str) -> None:
    """Raise SpawnError saying why `program` cannot be run, when a look at it can tell."""
    if not os.path.exists(program):
        raise SpawnError(errno.ENOENT, f"{program}: no such file")
    if not os.access(program, os.X_OK) or os.path.isdir(program):
        raise SpawnError(errno.EACCES, f"{program}: not an executable file")


def _check_ids(user: str | None, group: str | None) -> None:
    """Raise SpawnError for a user or group this machine does not know (setpriv would start,
    then exit 1: a fault later instead of a clear reason now)."""
    import grp
    import pwd

    try:
        if user is not None and not user.isdigit():
            pwd.getpwnam(user)
    except KeyError:
        raise SpawnError(errno.EINVAL, f"no such user '{user}'") from None
    try:
        if group is not None and not group.isdigit():
            grp.getgrnam(group)
    except KeyError:
        raise SpawnError(errno.EINVAL, f"no such group '{group}'") from None


def _primary_group(user: str) -> str:
    import pwd

    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise SpawnError(errno.EINVAL, f"no such user '{user}'") from None
    return str(entry.pw_gid)


def reap(pidfd: int) -> tuple[str, bool] | None:
    """Read the exit of a child through its pidfd: (description, clean), or None if not ours."""
    ended = reap_status(pidfd)
    return None if ended is None else ended[:2]


def reap_status(pidfd: int) -> tuple[str, bool, int | None] | None:
    """`reap`, plus the exit status when the child exited by itself (None: a signal)."""
    try:
        result = os.waitid(os.P_PIDFD, pidfd, os.WEXITED | os.WNOHANG)
    except ChildProcessError:
        return None  # adopted: not our child, the status belongs to someone else
    if result is None:
        return None
    detail, clean = describe_exit(result.si_code, result.si_status)
    return detail, clean, result.si_status if result.si_code == os.CLD_EXITED else None


def describe_exit(code: int, status: int) -> tuple[str, bool]:
    if code == os.CLD_EXITED:
        return f"exit status {status}", status == 0
    try:
        name = signal.Signals(status).name
    except ValueError:
        name = f"signal {status}"
    return f"killed by {name}" + (" (core dumped)" if code == os.CLD_DUMPED else ""), False


def signal_target(pid: int, own_group: bool, sig: int) -> bool:
    """Signal the process group rearm created (or, for an adopted process, the process alone).

    Returns False when nothing was there to signal.
    """
    try:
        if own_group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def _read(path: str) -> bytes | None:
    """A /proc file's bytes, or None when the process is gone or not ours to read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def group_alive(pgid: int) -> bool:
    """Whether a process group still has a running member (zombies waiting for a parent that
    is not rearm to reap them do not count: they have ended and can do nothing more)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    for pid in _pids():
        stat = _read(f"/proc/{pid}/stat")
        if stat is None:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
            return True
    return False


def _live(pids: list[int]) -> list[Proc]:
    found = []
    for pid in pids:
        start = start_time(pid)
        if start is not None:
            found.append(Proc(pid, start))
    return found


def find_by_token(token: str) -> list[Proc]:
    """Processes whose environment carries REARM_SPAWN_TOKEN=token.

    After a crash between spawning and recording the pid, this finds the process that was
    started, so the restarted daemon adopts it instead of starting a second one.
    """
    needle = b"\0" + f"{TOKEN_VAR}={token}".encode() + b"\0"
    return _live(
        [pid for pid in _pids() if needle in b"\0" + (_read(f"/proc/{pid}/environ") or b"") + b"\0"]
    )


def find_by_tokens(tokens: set[str]) -> dict[str, list[Proc]]:
    """`find_by_token` for many tokens in one pass over /proc: a daemon re-adopting hundreds
    of watches after a crash reads each process's environment once, not once per watch."""
    marker = f"\0{TOKEN_VAR}=".encode()
    found: dict[str, list[int]] = {}
    for pid in _pids():
        environ = b"\0" + (_read(f"/proc/{pid}/environ") or b"")
        at = environ.find(marker)
        if at < 0:
            continue
        start = at + len(marker)
        end = environ.find(b"\0", start)
        token = environ[start : end if end >= 0 else len(environ)].decode("ascii", "replace")
        if token in tokens:
            found.setdefault(token, []).append(pid)
    return {token: _live(pids) for token, pids in found.items()}


def real_uid(pid: int) -> int | None:
    """The real uid of a process (the first of the Uid: line of /proc/PID/status)."""
    status = _read(f"/proc/{pid}/status")
    if status is None:
        return None
    for line in status.splitlines():
        if line.startswith(b"Uid:"):
            return int(line.split()[1])
    return None


def may_claim(
    uid: int, env: dict[str, str], service_user: Callable[[str], str | None] | None = None
) -> bool:
    """Whether a process of real uid `uid` with environment `env` may be taken for a target
    rearm started. Anyone can give a process any environment: one of another user is taken
    only when it would be run again, at a restart, as that very user and not as root: its
    request says so (armload /U), or its request is `/S NAME` and `service_user(NAME)`, the
    `user =` of that service's definition, is that user."""
    if uid in (0, os.geteuid()):
        return True
    try:
        request = json.loads(env.get(REQUEST_VAR, ""))
        user = request.get("user")
        service = request.get("service")
    except (ValueError, AttributeError, RecursionError):  # anyone's environment: anything
        return False
    if user is None and isinstance(service, str) and service_user is not None:
        user = service_user(service)
    if not isinstance(user, str):
        return False
    if user.isdigit():
        return int(user) == uid
    import pwd

    try:
        return pwd.getpwnam(user).pw_uid == uid
    except KeyError:
        return False


def processes_with_env(
    name: str, value: str, service_user: Callable[[str], str | None] | None = None
) -> list[tuple[Proc, dict[str, str]]]:
    """Live processes whose environment has name=value, with their whole environment.

    Only those that may_claim allows: the daemon rebuilds watches from what these say.
    """
    needle = f"{name}={value}".encode()
    found = []
    for pid in _pids():
        raw = _read(f"/proc/{pid}/environ")
        if raw is None or needle not in raw.split(b"\0"):
            continue
        start = start_time(pid)
        if start is None:
            continue
        env = {}
        for item in raw.split(b"\0"):
            k, sep, v = item.partition(b"=")
            if sep:
                env[k.decode(errors="replace")] = v.decode(errors="replace")
        uid = real_uid(pid)
        if uid is None or not may_claim(uid, env, service_user):
            continue
        found.append((Proc(pid, start), env))
    return found


def find_by_argv(argv: list[str], exclude: set[int], uid: int) -> list[Proc]:
    """Running processes of real uid `uid` whose command line is exactly `argv` (for /A
    adoption). Anyone can run a program with any command line: a process of another user is
    not the target, and adopting it would let rearm signal it, and restart it as `uid`."""
    wanted = b"\0".join(a.encode() for a in argv) + b"\0"
    me = os.getpid()
    return _live(
        [
            pid
            for pid in _pids()
            if pid not in exclude
            and pid != me
            and _read(f"/proc/{pid}/cmdline") == wanted
            and real_uid(pid) == uid
        ]
    )


def leads_own_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except ProcessLookupError:
        return False


def boot_id() -> str:
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()
