"""Resource limits of a service (the `[limits]` table of a service definition).

Pure: reads a parsed TOML table, and renders the options of util-linux `prlimit`, which the
process backend puts in front of the command (posix_spawn cannot set limits itself). Each key
is one of prlimit's resources; its value is a whole number (soft and hard limit alike),
"unlimited", or a table `{ soft = ..., hard = ... }` of those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from rearm.validate import Table

# Key -> what it limits, in the unit the value is written in (prlimit's and setrlimit(2)'s).
KINDS: dict[str, str] = {
    "nofile": "open files",
    "nproc": "processes of the user",
    "core": "core file size, bytes",
    "memlock": "locked memory, bytes",
    "stack": "stack size, bytes",
    "as": "address space, bytes",
    "cpu": "CPU time, seconds",
    "fsize": "file size, bytes",
}
UNLIMITED = "unlimited"
# setrlimit takes an unsigned 64-bit number whose all-ones value means unlimited: anything
# from 2**63 on is refused rather than silently turned into "unlimited" by the kernel.
MAX_VALUE = 2**63 - 1
RULE = f'a whole number from 0 to {MAX_VALUE}, "{UNLIMITED}", or {{ soft = ..., hard = ... }}'


@dataclass(frozen=True)
class Limit:
    """One resource limit. None stands for unlimited."""

    kind: str
    soft: int | None
    hard: int | None

    def option(self) -> str:
        """prlimit's option, e.g. --nofile=1024:4096."""
        return f"--{self.kind}={_text(self.soft)}:{_text(self.hard)}"


def _text(value: int | None) -> str:
    return UNLIMITED if value is None else str(value)


def _value(t: Table, key: str, raw: object) -> int | None:
    if raw == UNLIMITED:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw <= MAX_VALUE:
        raise t.error(key, f"must be {RULE}")
    return raw


def _order(value: int | None) -> float:
    return float("inf") if value is None else value


def limits_from(t: Table, key: str = "limits") -> tuple[Limit, ...]:
    """The `[limits]` table of `t` (empty when there is none), checked key by key."""
    table = t.table(key)
    if table is None:
        return ()
    out = []
    for kind in KINDS:
        raw = table.raw(kind)
        if raw is None:
            continue
        if isinstance(raw, dict):
            pair = table.table(kind)
            assert pair is not None
            soft_raw, hard_raw = pair.raw("soft"), pair.raw("hard")
            if soft_raw is None or hard_raw is None:
                raise table.error(
                    kind, "give both soft and hard, e.g. { soft = 1024, hard = 4096 }"
                )
            pair.finish()
            soft, hard = _value(pair, "soft", soft_raw), _value(pair, "hard", hard_raw)
            if _order(soft) > _order(hard):
                raise table.error(
                    kind, f"the soft limit ({_text(soft)}) is above the hard limit ({_text(hard)})"
                )
        else:
            soft = hard = _value(table, kind, raw)
        out.append(Limit(kind, soft, hard))
    table.finish()
    return tuple(out)


def prlimit_options(limits: Sequence[Limit]) -> list[str]:
    return [limit.option() for limit in limits]
