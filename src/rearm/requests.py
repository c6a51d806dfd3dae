"""The requests of the arm commands (armload, armkill, armem) and their limits (SPEC §4-6).

These run from group scripts, often hundreds of times per group start, so a call must cost
little more than the interpreter's own start-up. This module therefore imports nothing: no
dataclasses (which pulls in inspect, ~10 ms), no enum, no typing. The classes are small frozen
value objects written out by hand; rearm.model re-exports them for the rest of rearm.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # only for the checker: typing costs milliseconds at run time
    from rearm.model import FinalAction, TargetKind

WATCH_ID_MAX = 255
RETRY_RANGE = (1, 9)
HOURS_RANGE = (1, 24)
INTERVAL_RANGE = (0, 3600)
WAIT_RANGE = (0, 3600)
KILL_TIMEOUT_RANGE = (0, 3600)
KILL_TIMEOUT_DEFAULT = 40
RESERVED_PREFIX = "REARM_"
# The values of model.FinalAction, in its order (a unit test keeps the two equal): the parser
# checks `armem /M` against them without importing enum.
FINAL_ACTION_VALUES = ("reboot", "shutdown", "panic", "stopgroup", "none")


class _Value:
    """Frozen value semantics from __slots__: equality, hash and repr over the fields, in the
    order of __slots__ (the order of the constructor's parameters)."""

    __slots__: tuple[str, ...] = ()

    def _fields(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, _Value)
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((self.__class__.__name__, self._fields()))

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{self.__class__.__name__}({shown})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{self.__class__.__name__} is frozen: cannot set {name}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{self.__class__.__name__} is frozen: cannot delete {name}")

    def _init(self, **values: object) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)


class RestartPolicy(_Value):
    """The /R /H /INT /SCR options of one watch. `retry=None` means: do not restart."""

    __slots__ = ("retry", "hours", "interval", "script")  # noqa: RUF023 (repr order)
    retry: int | None
    hours: int | None
    interval: int
    script: bool

    def __init__(
        self,
        retry: int | None = None,
        hours: int | None = None,
        interval: int = 0,
        script: bool = False,
    ) -> None:
        self._init(retry=retry, hours=hours, interval=interval, script=script)


class LoadRequest(_Value):
    """A parsed `armload` command line.

    Exactly one of `service` (with /S; lower-cased) and `argv` (an application: PATH then its
    arguments, unchanged) is set. `wait` is None without /WAIT, 0 for no limit, else seconds.
    """

    __slots__ = ("watch_id", "policy", "adopt", "wait", "service", "argv", "user")  # noqa: RUF023
    watch_id: str
    policy: RestartPolicy
    adopt: bool
    wait: int | None
    service: str | None
    argv: tuple[str, ...] | None
    user: str | None

    def __init__(
        self,
        watch_id: str,
        policy: RestartPolicy,
        adopt: bool = False,
        wait: int | None = None,
        service: str | None = None,
        argv: tuple[str, ...] | None = None,
        user: str | None = None,
    ) -> None:
        self._init(
            watch_id=watch_id,
            policy=policy,
            adopt=adopt,
            wait=wait,
            service=service,
            argv=argv,
            user=user,
        )

    @property
    def kind(self) -> TargetKind:
        from rearm.model import TargetKind  # the daemon's side only: enum stays out of armload

        return TargetKind.SERVICE if self.service is not None else TargetKind.APPLICATION

    @property
    def target(self) -> str:
        if self.service is not None:
            return self.service
        assert self.argv is not None
        return " ".join(self.argv)


class KillRequest(_Value):
    """A parsed `armkill` command line. `timeout` 0 means no limit; `keep_running` is /C."""

    __slots__ = ("watch_id", "keep_running", "timeout")  # noqa: RUF023 (repr order)
    watch_id: str
    keep_running: bool
    timeout: int

    def __init__(
        self, watch_id: str, keep_running: bool = False, timeout: int = KILL_TIMEOUT_DEFAULT
    ) -> None:
        self._init(watch_id=watch_id, keep_running=keep_running, timeout=timeout)


class ModeRequest(_Value):
    """A parsed `armem` command line: `mode` None prints the current final action."""

    __slots__ = ("mode",)
    mode: FinalAction | None

    def __init__(self, mode: FinalAction | None = None) -> None:
        self._init(mode=mode)


def request_to_dict(req: LoadRequest) -> dict[str, object]:
    """The stored and transmitted form of an armload request (plain JSON types)."""
    return {
        "watch_id": req.watch_id,
        "retry": req.policy.retry,
        "hours": req.policy.hours,
        "interval": req.policy.interval,
        "script": req.policy.script,
        "adopt": req.adopt,
        "wait": req.wait,
        "service": req.service,
        "argv": list(req.argv) if req.argv is not None else None,
        "user": req.user,
    }


def request_from_dict(d: dict[str, object]) -> LoadRequest:
    def opt_int(key: str) -> int | None:
        v = d.get(key)
        return v if isinstance(v, int) and not isinstance(v, bool) else None

    argv = d.get("argv")
    service = d.get("service")
    user = d.get("user")
    return LoadRequest(
        watch_id=str(d["watch_id"]),
        policy=RestartPolicy(
            retry=opt_int("retry"),
            hours=opt_int("hours"),
            interval=opt_int("interval") or 0,
            script=bool(d.get("script")),
        ),
        adopt=bool(d.get("adopt")),
        wait=opt_int("wait"),
        service=service if isinstance(service, str) else None,
        argv=tuple(str(a) for a in argv) if isinstance(argv, list) else None,
        user=user if isinstance(user, str) else None,
    )
