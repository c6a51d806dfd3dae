"""Command lines of armload, armkill and armem (SPEC §4-6) parsed into the requests of model.py.

Pure: no I/O, no environment, no printing. The commands are run from group scripts many times
per start, so this module imports nothing but rearm.requests, which imports nothing: no `re`
(6 ms), no enum. Its character classes are sets of characters instead.

Telling an option from PATH: an argument is an option when it is "/" or "-" followed by ASCII
letters only (`[/-][A-Za-z]+`); it must then be a known option of the command, case-insensitive.
Any other argument starting with "-" is an unknown option too, since no PATH starts with "-".
Any other argument starting with "/" (such as /usr/bin/sleep) is PATH. The price is that a
program whose absolute path is one letters-only word (/init) must be written /./init.
"""

from __future__ import annotations

from rearm.requests import (
    FINAL_ACTION_VALUES,
    HOURS_RANGE,
    INTERVAL_RANGE,
    KILL_TIMEOUT_DEFAULT,
    KILL_TIMEOUT_RANGE,
    RESERVED_PREFIX,
    RETRY_RANGE,
    WAIT_RANGE,
    WATCH_ID_MAX,
    KillRequest,
    LoadRequest,
    ModeRequest,
    RestartPolicy,
)

__all__ = [
    "ARMEM_USAGE",
    "ARMKILL_USAGE",
    "ARMLOAD_USAGE",
    "ArmUsageError",
    "HelpRequested",
    "parse_armem",
    "parse_armkill",
    "parse_armload",
]


class ArmUsageError(ValueError):
    """A bad command line. str() is one line: what was wrong and what is allowed."""


class HelpRequested(Exception):
    """The arguments asked for help: not an error, the CLI prints `usage` and exits 0."""

    def __init__(self, usage: str) -> None:
        super().__init__(usage)
        self.usage = usage


ARMLOAD_USAGE = """\
usage: armload WATCHID /S [/A] [/R retry [/H hour] [/SCR] [/INT time]] [/WAIT time] SERVICE
       armload WATCHID [/U user] [/A] [/R retry [/H hour] [/SCR] [/INT time]] [/WAIT time]
               PATH [ARG...]

Start a service or an application and watch it: restart it after a fault, and fire the final
action (armem) when it faults more often than /R allows.

  WATCHID     1-255 characters of A-Z a-z 0-9 _, case-insensitive; REARM_... is reserved
  /S          the target is SERVICE: etc/services/SERVICE.toml or the systemd unit
              SERVICE.service; 1-255 characters of A-Z a-z 0-9 _ . @ : -, case-insensitive
  /A          adopt a target that is already running instead of failing
  /R retry    restart after a fault; more than retry faults fire the final action
              (1-9; default: never restart)
  /H hour     count only the faults of the last hour hours (1-24; default: never forget;
              needs /R)
  /SCR        restart by running the group's start script again (needs /R)
  /INT time   seconds to wait before each restart (0-3600; default 0; needs /R)
  /WAIT time  return only once the target has started, failing after time seconds
              (0-3600, 0 = no limit; default: return as soon as the start is launched)
  /U user     run the application as user: a user name or a numeric uid (not with /S:
              set user= in the service definition instead)

Options are case-insensitive, may be written /X or -X, come after WATCHID and before
SERVICE or PATH, and each may be given once. An argument is an option when it is / or -
followed by letters only (/R, -wait); any other argument starting with / is PATH, so write a
program at /init as /./init. Everything after PATH is passed to the application unchanged.
"""

ARMKILL_USAGE = """\
usage: armkill WATCHID [/C | /T time]

Stop the target of a watch (its stop command or stop signal, sent to its whole process group)
and end the watch.

  WATCHID   the watch to end (case-insensitive)
  /C        end the watch only; the target keeps running (not with /T)
  /T time   seconds to wait for the target to stop before what is left is killed with
            SIGKILL (0-3600, 0 = no limit; default 40; not with /C)

Options are case-insensitive, may be written /X or -X, and each may be given once.
"""

ARMEM_USAGE = """\
usage: armem /M MODE
       armem

Set the final action, fired when a watch faults more often than its /R allows; without
arguments, print the current one.

  /M MODE   MODE is one of (case-insensitive):
              reboot     restart the OS
              shutdown   power off
              panic      crash the kernel for a dump
              stopgroup  take the failed watch's group offline
              none       log and alert only

The option is case-insensitive and may be written /M or -M.
"""

_HELP_WORDS = frozenset({"-h", "--help", "/?"})
_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
_DIGIT_CHARS = frozenset("0123456789")
_WATCH_ID_CHARS = _LETTERS | _DIGIT_CHARS | {"_"}
_SERVICE_FIRST = _WATCH_ID_CHARS | {"@", ":"}
_SERVICE_CHARS = _SERVICE_FIRST | {".", "-"}
_SERVICE_MAX = 255
_USER_FIRST = frozenset("abcdefghijklmnopqrstuvwxyz_")
_USER_CHARS = _USER_FIRST | _DIGIT_CHARS | {"-"}
_USER_MAX = 32
# How much of a wrong value an error message repeats: enough to recognise it, still one line.
_SHOW_MAX = 80

_MODE_VALUES = FINAL_ACTION_VALUES
_MODES = ", ".join(_MODE_VALUES)

_FLAGS = frozenset({"S", "A", "SCR", "C"})
_NUMBERS = {
    "R": RETRY_RANGE,
    "H": HOURS_RANGE,
    "INT": INTERVAL_RANGE,
    "WAIT": WAIT_RANGE,
    "T": KILL_TIMEOUT_RANGE,
}


def _range_rule(noun: str, bounds: tuple[int, int], unit: str = "", zero: str = "") -> str:
    return f"{noun} must be a whole number{unit} from {bounds[0]} to {bounds[1]}{zero}"


_RULES = {
    "R": _range_rule("retry", RETRY_RANGE),
    "H": _range_rule("hour", HOURS_RANGE),
    "INT": _range_rule("time", INTERVAL_RANGE, " of seconds"),
    "WAIT": _range_rule("time", WAIT_RANGE, " of seconds", " (0 = no limit)"),
    "T": _range_rule("time", KILL_TIMEOUT_RANGE, " of seconds", " (0 = no limit)"),
    "U": (
        f"user must be a user name of 1-{_USER_MAX} characters (a-z 0-9 _ -, starting with"
        " a-z or _, optionally ending in $) or a numeric uid"
    ),
    "M": f"mode must be one of {_MODES}",
}

# What each command accepts, in the order its synopsis lists them.
_ARMLOAD_OPTIONS = ("S", "A", "R", "H", "SCR", "INT", "WAIT", "U")
_ARMKILL_OPTIONS = ("C", "T")
_ARMEM_OPTIONS = ("M",)
_ARMLOAD_TAKES = " ".join("/" + name for name in _ARMLOAD_OPTIONS)
_ARMKILL_TAKES = "WATCHID [/C | /T time]"
_ARMLOAD_SYNOPSIS = "WATCHID [options] SERVICE|PATH [ARG...] (see armload --help)"
_ARMEM_TAKES = f"/M MODE with MODE one of {_MODES}, or nothing to print the current mode"

# /H, /SCR and /INT tune restarts, so alone they would be silently ignored.
_NEEDS_RETRY = {
    "H": "the restart count window only applies to watches that restart",
    "SCR": "restarting through the start script only applies to watches that restart",
    "INT": "the delay before a restart only applies to watches that restart",
}


def _show(text: str, *, quote: bool = False) -> str:
    """User text made safe for a one-line message: shortened, control characters escaped."""
    if len(text) > _SHOW_MAX:
        text = text[: _SHOW_MAX - 3] + "..."
    if not text.isprintable():
        text = "".join(char if char.isprintable() else _escape(char) for char in text)
    if quote or not text or any(char.isspace() for char in text):
        return f"'{text}'"
    return text


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def _made_of(text: str, allowed: frozenset[str]) -> bool:
    return bool(text) and all(char in allowed for char in text)


def _option_word(arg: str) -> bool:
    """`[/-][A-Za-z]+`: a slash or dash, then ASCII letters only."""
    return len(arg) > 1 and arg[0] in "/-" and _made_of(arg[1:], _LETTERS)


def _service_name(text: str) -> bool:
    """`[A-Za-z0-9_@:][A-Za-z0-9_.@:-]*`"""
    return bool(text) and text[0] in _SERVICE_FIRST and _made_of(text, _SERVICE_CHARS)


def _user_name(text: str) -> bool:
    """`[a-z_][a-z0-9_-]*$?` (a name, maybe ending in $ as Samba machine accounts do) or
    `[0-9]+` (a uid)."""
    if _made_of(text, _DIGIT_CHARS):
        return True
    name = text[:-1] if text.endswith("$") else text
    return bool(name) and name[0] in _USER_FIRST and _made_of(name, _USER_CHARS)


def _check_help(args: list[str], usage: str) -> None:
    if len(args) == 1 and args[0].isascii() and args[0].lower() in _HELP_WORDS:
        raise HelpRequested(usage)


def _is_option(arg: str) -> bool:
    return arg.startswith("-") or _option_word(arg)


def _whole(value: str, bounds: tuple[int, int]) -> int | None:
    if not _made_of(value, _DIGIT_CHARS):
        return None
    digits = value.lstrip("0") or "0"
    # Checked before int(): Python refuses to convert strings of thousands of digits.
    if len(digits) > len(str(bounds[1])):
        return None
    number = int(digits)
    return number if bounds[0] <= number <= bounds[1] else None


def _watch_id(command: str, args: list[str], synopsis: str) -> str:
    if not args:
        raise ArmUsageError(f"missing watch ID: {command} takes {synopsis}")
    watch_id = args[0]
    if _is_option(watch_id):
        raise ArmUsageError(
            f"missing watch ID before {_show(watch_id, quote=True)}: the watch ID comes first:"
            f" {command} takes {synopsis}"
        )
    if len(watch_id) > WATCH_ID_MAX or not _made_of(watch_id, _WATCH_ID_CHARS):
        length = f" ({len(watch_id)} characters)" if len(watch_id) > WATCH_ID_MAX else ""
        raise ArmUsageError(
            f"watch ID {_show(watch_id, quote=True)}{length}: use 1-{WATCH_ID_MAX} characters"
            " of A-Z, a-z, 0-9 and _"
        )
    if watch_id.upper().startswith(RESERVED_PREFIX):
        raise ArmUsageError(
            f"watch ID {_show(watch_id, quote=True)}: IDs beginning with {RESERVED_PREFIX}"
            " are reserved"
        )
    return watch_id


class _Options:
    """The options of one command line, by upper-case name without the prefix."""

    __slots__ = ("flags", "numbers", "texts", "written")

    def __init__(self) -> None:
        self.written: dict[str, str] = {}
        self.flags: set[str] = set()
        self.numbers: dict[str, int] = {}
        self.texts: dict[str, str] = {}


def _scan(
    command: str, args: list[str], start: int, allowed: tuple[str, ...], takes: str
) -> tuple[_Options, int]:
    """Read options from args[start:] up to the first argument that is not one.

    Returns them and the index of that argument (len(args) when none is left).
    """
    options = _Options()
    index = start
    while index < len(args):
        arg = args[index]
        if not _is_option(arg):
            break
        name = arg[1:].upper() if _option_word(arg) else ""
        if name not in allowed:
            if arg.isascii() and arg.lower() in _HELP_WORDS:
                raise ArmUsageError(f"{arg} must be given alone: {command} takes {takes}")
            shown = _show(arg) if name else _show(arg, quote=True)
            raise ArmUsageError(f"unknown option {shown}: {command} takes {takes}")
        if name in options.written:
            raise ArmUsageError(
                f"/{name} given twice ({options.written[name]} and {arg}): {command} takes"
                f" each option once: {takes}"
            )
        options.written[name] = arg
        if name in _FLAGS:
            options.flags.add(name)
            index += 1
            continue
        if index + 1 == len(args):
            raise ArmUsageError(f"{arg} needs a value: {_RULES[name]}")
        value = args[index + 1]
        if name in _NUMBERS:
            number = _whole(value, _NUMBERS[name])
            if number is None:
                raise ArmUsageError(f"{arg} {_show(value)}: {_RULES[name]}")
            options.numbers[name] = number
        elif name == "U":
            if len(value) > _USER_MAX or not _user_name(value):
                raise ArmUsageError(f"{arg} {_show(value)}: {_RULES[name]}")
            options.texts[name] = value
        else:
            # Modes are ASCII words; isascii() keeps lower() from mapping characters such as
            # the Kelvin sign onto ASCII letters.
            mode = value.lower() if value.isascii() else ""
            if mode not in _MODE_VALUES:
                raise ArmUsageError(f"{arg} {_show(value)}: {_RULES[name]}")
            options.texts[name] = mode
        index += 2
    return options, index


def parse_armload(args: list[str]) -> LoadRequest:
    """Parse the arguments of `armload` (without the command name)."""
    _check_help(args, ARMLOAD_USAGE)
    watch_id = _watch_id("armload", args, _ARMLOAD_SYNOPSIS)
    options, index = _scan("armload", args, 1, _ARMLOAD_OPTIONS, _ARMLOAD_TAKES)
    is_service = "S" in options.flags
    if is_service and "U" in options.texts:
        raise ArmUsageError(
            "/U cannot be used with /S: set user= in the service definition"
            " (etc/services/SERVICE.toml) instead"
        )
    retry = options.numbers.get("R")
    if retry is None:
        for name, why in _NEEDS_RETRY.items():
            if name in options.written:
                raise ArmUsageError(f"/{name} needs /R: {why}")
        policy = RestartPolicy()
    else:
        policy = RestartPolicy(
            retry=retry,
            hours=options.numbers.get("H"),
            interval=options.numbers.get("INT", INTERVAL_RANGE[0]),
            script="SCR" in options.flags,
        )
    rest = args[index:]
    adopt = "A" in options.flags
    wait = options.numbers.get("WAIT")
    if is_service:
        return LoadRequest(watch_id, policy, adopt=adopt, wait=wait, service=_service(rest))
    return LoadRequest(
        watch_id, policy, adopt=adopt, wait=wait, argv=_argv(rest), user=options.texts.get("U")
    )


def _service(rest: list[str]) -> str:
    if not rest:
        raise ArmUsageError("missing SERVICE: /S needs one service name after the options")
    service = rest[0]
    if len(service) > _SERVICE_MAX or not _service_name(service):
        raise ArmUsageError(
            f"service name {_show(service, quote=True)}: use 1-{_SERVICE_MAX} characters of"
            " A-Z, a-z, 0-9, _ . @ : and -, not starting with . or -"
        )
    if len(rest) > 1:
        where = "options go before SERVICE" if _is_option(rest[1]) else "give one service name"
        raise ArmUsageError(
            f"unexpected argument {_show(rest[1], quote=True)} after SERVICE {service}: {where}"
        )
    # Only ASCII is left after the pattern, so lower() cannot turn one name into another.
    return service.lower()


def _argv(rest: list[str]) -> tuple[str, ...]:
    if not rest:
        raise ArmUsageError(
            "missing PATH: give the application to start (PATH [ARG...]), or /S SERVICE"
        )
    if not rest[0]:
        raise ArmUsageError("PATH is empty: give the program to start, a path or a name")
    # No program can be given a NUL byte in its arguments: refused here, not at exec time.
    for position, arg in enumerate(rest):
        if "\0" in arg:
            what = "PATH" if position == 0 else f"ARG {position}"
            raise ArmUsageError(f"{what} {_show(arg, quote=True)} contains a NUL byte")
    return tuple(rest)


def parse_armkill(args: list[str]) -> KillRequest:
    """Parse the arguments of `armkill` (without the command name)."""
    _check_help(args, ARMKILL_USAGE)
    watch_id = _watch_id("armkill", args, _ARMKILL_TAKES)
    options, index = _scan("armkill", args, 1, _ARMKILL_OPTIONS, _ARMKILL_TAKES)
    if index < len(args):
        raise ArmUsageError(
            f"unexpected argument {_show(args[index], quote=True)}: armkill takes {_ARMKILL_TAKES}"
        )
    if "C" in options.flags and "T" in options.numbers:
        raise ArmUsageError(
            "/C and /T cannot be used together: /C ends the watch and leaves the target"
            " running, /T sets how long to wait for it to stop"
        )
    return KillRequest(
        watch_id=watch_id,
        keep_running="C" in options.flags,
        timeout=options.numbers.get("T", KILL_TIMEOUT_DEFAULT),
    )


def parse_armem(args: list[str]) -> ModeRequest:
    """Parse the arguments of `armem` (without the command name)."""
    _check_help(args, ARMEM_USAGE)
    options, index = _scan("armem", args, 0, _ARMEM_OPTIONS, _ARMEM_TAKES)
    if index < len(args):
        raise ArmUsageError(
            f"unexpected argument {_show(args[index], quote=True)}: armem takes {_ARMEM_TAKES}"
        )
    mode = options.texts.get("M")
    if mode is None:
        return ModeRequest(None)
    from rearm.model import FinalAction  # armem only: enum stays out of armload and armkill

    return ModeRequest(FinalAction(mode))
