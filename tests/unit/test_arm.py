"""The command lines of armload, armkill and armem (SPEC §4-6)."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

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
from rearm.model import (
    KILL_TIMEOUT_DEFAULT,
    FinalAction,
    KillRequest,
    LoadRequest,
    ModeRequest,
    RestartPolicy,
    TargetKind,
)

MODES = ("reboot", "shutdown", "panic", "stopgroup", "none")


def load_error(args: list[str]) -> str:
    with pytest.raises(ArmUsageError) as caught:
        parse_armload(args)
    return str(caught.value)


def kill_error(args: list[str]) -> str:
    with pytest.raises(ArmUsageError) as caught:
        parse_armkill(args)
    return str(caught.value)


def em_error(args: list[str]) -> str:
    with pytest.raises(ArmUsageError) as caught:
        parse_armem(args)
    return str(caught.value)


def app(watch_id: str = "W", **fields: object) -> LoadRequest:
    """The request expected for an application watch with default options."""
    values: dict[str, object] = {
        "watch_id": watch_id,
        "policy": RestartPolicy(),
        "argv": ("/usr/bin/sleep", "60"),
    }
    values.update(fields)
    return LoadRequest(**values)  # type: ignore[arg-type]


# --- help -----------------------------------------------------------------------------------

PARSERS = [
    (parse_armload, ARMLOAD_USAGE),
    (parse_armkill, ARMKILL_USAGE),
    (parse_armem, ARMEM_USAGE),
]


@pytest.mark.parametrize(("parse", "usage"), PARSERS)
@pytest.mark.parametrize("word", ["-h", "-H", "--help", "--HELP", "--Help", "/?"])
def test_help_alone_asks_for_usage(
    parse: Callable[[list[str]], object], usage: str, word: str
) -> None:
    with pytest.raises(HelpRequested) as caught:
        parse([word])
    assert caught.value.usage == usage


def test_help_is_not_an_error() -> None:
    assert not issubclass(HelpRequested, ArmUsageError)
    assert issubclass(ArmUsageError, ValueError)


def test_help_among_other_arguments_is_an_error() -> None:
    assert kill_error(["W", "--help"]).startswith("--help must be given alone")
    assert load_error(["W", "--help"]).startswith("--help must be given alone: armload takes")
    # Not [/-] and letters, so by the rule it is PATH, like any other word starting with /.
    assert parse_armload(["W", "/?"]).argv == ("/?",)
    assert "reboot" in em_error(["--help", "x"])


@pytest.mark.parametrize("usage", [ARMLOAD_USAGE, ARMKILL_USAGE, ARMEM_USAGE])
def test_usage_is_a_synopsis_with_options(usage: str) -> None:
    lines = usage.splitlines()
    assert lines[0].startswith("usage: ")
    assert len(lines) > 5
    assert all(len(line) <= 100 for line in lines)


def test_armload_usage_lists_every_option_with_its_range() -> None:
    for text in ("/S", "/A", "/R", "/H", "/SCR", "/INT", "/WAIT", "/U", "WATCHID", "PATH"):
        assert text in ARMLOAD_USAGE
    for text in ("1-9", "1-24", "0-3600", "default 0", "0 = no limit", "REARM_", "/./init"):
        assert text in ARMLOAD_USAGE


def test_armkill_and_armem_usage() -> None:
    for text in ("/C", "/T", "0-3600", "default 40", "0 = no limit"):
        assert text in ARMKILL_USAGE
    for text in ("/M", *MODES):
        assert text in ARMEM_USAGE


# --- watch ID -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "watch_id", ["W", "web_1", "MixedCase", "0", "_", "a" * 255, "REARM", "REARMX"]
)
def test_valid_watch_ids_are_kept_as_written(watch_id: str) -> None:
    assert parse_armload([watch_id, "/usr/bin/sleep", "60"]).watch_id == watch_id
    assert parse_armkill([watch_id]).watch_id == watch_id


@pytest.mark.parametrize("watch_id", ["a-b", "a b", "", "é", "a.b", "a" * 256, "a\nb", "x/y"])
def test_invalid_watch_ids(watch_id: str) -> None:
    for message in (load_error([watch_id, "prog"]), kill_error([watch_id])):
        assert message.startswith("watch ID '")
        assert "1-255 characters of A-Z, a-z, 0-9 and _" in message


def test_watch_id_error_names_the_id() -> None:
    assert load_error(["a-b", "prog"]) == (
        "watch ID 'a-b': use 1-255 characters of A-Z, a-z, 0-9 and _"
    )
    assert "(256 characters)" in load_error(["a" * 256, "prog"])


@pytest.mark.parametrize("watch_id", ["REARM_X", "rearm_x", "Rearm_", "REARM_"])
def test_reserved_watch_ids(watch_id: str) -> None:
    expected = f"watch ID '{watch_id}': IDs beginning with REARM_ are reserved"
    assert load_error([watch_id, "prog"]) == expected
    assert kill_error([watch_id]) == expected


def test_missing_watch_id() -> None:
    assert load_error([]).startswith("missing watch ID")
    assert kill_error([]).startswith("missing watch ID")


@pytest.mark.parametrize("first", ["/S", "-s", "/R", "-x", "/Q"])
def test_option_instead_of_watch_id(first: str) -> None:
    message = load_error([first, "svc"])
    assert message.startswith("missing watch ID")
    assert first in message
    assert kill_error([first]).startswith("missing watch ID")


# --- armload: services ----------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["/S", "/s", "-S", "-s"])
def test_service_flag_spellings(flag: str) -> None:
    request = parse_armload(["W", flag, "redis"])
    assert request == LoadRequest("W", RestartPolicy(), service="redis")
    assert request.kind is TargetKind.SERVICE


@pytest.mark.parametrize(
    ("written", "stored"),
    [
        ("Redis", "redis"),
        ("MY_SVC", "my_svc"),
        ("getty@tty1", "getty@tty1"),
        ("a.b:c-d", "a.b:c-d"),
        ("_x", "_x"),
        ("9", "9"),
        ("S" * 255, "s" * 255),
    ],
)
def test_service_names_are_lower_cased(written: str, stored: str) -> None:
    assert parse_armload(["W", "/S", written]).service == stored


@pytest.mark.parametrize("name", [".hidden", "a b", "a/b", "x" * 256, "", "é", "a\0b", "/x/y"])
def test_invalid_service_names(name: str) -> None:
    message = load_error(["W", "/S", name])
    assert message.startswith("service name '")
    assert "1-255 characters" in message


def test_service_name_starting_with_dash_is_an_unknown_option() -> None:
    assert load_error(["W", "/S", "-foo"]).startswith("unknown option -foo")


def test_service_missing() -> None:
    assert load_error(["W", "/S"]).startswith("missing SERVICE")
    assert load_error(["W", "/S", "/R", "2"]).startswith("missing SERVICE")


def test_service_followed_by_more_arguments() -> None:
    message = load_error(["W", "/S", "redis", "extra"])
    assert "unexpected argument 'extra'" in message
    assert "one service name" in message
    message = load_error(["W", "/S", "redis", "/R", "3"])
    assert "'/R'" in message
    assert "options go before SERVICE" in message


def test_service_with_user_is_refused() -> None:
    for args in (["W", "/S", "/U", "bob", "svc"], ["W", "-u", "bob", "-S", "svc"]):
        message = load_error(args)
        assert "/U" in message
        assert "/S" in message
        assert "user=" in message
        assert "service definition" in message


# --- armload: applications ------------------------------------------------------------------


def test_application_defaults() -> None:
    request = parse_armload(["W", "/usr/bin/sleep", "60"])
    assert request == app()
    assert request.kind is TargetKind.APPLICATION
    assert request.wait is None
    assert request.user is None
    assert not request.adopt


@pytest.mark.parametrize(
    "path",
    ["/usr/bin/sleep", "sleep", "bin/sleep", "./sleep", "../x", "//init", "/./init", "/a/b", "x"],
)
def test_paths(path: str) -> None:
    assert parse_armload(["W", path]).argv == (path,)


def test_args_after_path_are_passed_unchanged() -> None:
    rest = ["/R", "12", "-x", "--", "", "a b", "/S", "/U", "Root", "-h", "/?", "REARM_X"]
    request = parse_armload(["W", "/R", "2", "prog", *rest])
    assert request.argv == ("prog", *rest)
    assert request.policy == RestartPolicy(retry=2)


@pytest.mark.parametrize(
    "word", ["/Q", "/X", "/init", "/usr", "-x", "-Q", "--", "-", "--verbose", "-5"]
)
def test_unknown_options(word: str) -> None:
    message = load_error(["W", word, "prog"])
    assert message.startswith("unknown option ")
    assert word in message
    assert "armload takes /S /A /R /H /SCR /INT /WAIT /U" in message


def test_unknown_option_message_exactly() -> None:
    assert load_error(["W", "/Q"]) == (
        "unknown option /Q: armload takes /S /A /R /H /SCR /INT /WAIT /U"
    )


def test_armkill_options_are_unknown_to_armload() -> None:
    assert load_error(["W", "/C", "prog"]).startswith("unknown option /C")
    assert load_error(["W", "/T", "4", "prog"]).startswith("unknown option /T")


def test_path_missing() -> None:
    for args in (["W"], ["W", "/R", "3"], ["W", "/A"]):
        message = load_error(args)
        assert message.startswith("missing PATH")
        assert "/S SERVICE" in message


def test_empty_path() -> None:
    assert load_error(["W", ""]).startswith("PATH is empty")


def test_nul_bytes_are_refused() -> None:
    message = load_error(["W", "/bin/a\0b"])
    assert message.startswith("PATH ")
    assert "NUL" in message
    assert "\0" not in message
    assert load_error(["W", "prog", "ok", "b\0d"]).startswith("ARG 2 ")


# --- armload: options -----------------------------------------------------------------------


@pytest.mark.parametrize("spelling", ["/WAIT", "/wait", "/Wait", "-WAIT", "-wait", "-wAiT"])
def test_options_are_case_insensitive(spelling: str) -> None:
    assert parse_armload(["W", spelling, "30", "prog"]).wait == 30


def test_all_options_together() -> None:
    request = parse_armload(
        ["W", "-a", "/r", "3", "/H", "12", "-scr", "/Int", "5", "/WAIT", "0", "-U", "app", "prog"]
    )
    assert request == LoadRequest(
        "W",
        RestartPolicy(retry=3, hours=12, interval=5, script=True),
        adopt=True,
        wait=0,
        argv=("prog",),
        user="app",
    )


def test_retry_alone_uses_defaults() -> None:
    assert parse_armload(["W", "/R", "1", "prog"]).policy == RestartPolicy(
        retry=1, hours=None, interval=0, script=False
    )


def test_options_in_any_order() -> None:
    one = parse_armload(["W", "/WAIT", "9", "/INT", "8", "/R", "7", "/A", "/S", "svc"])
    two = parse_armload(["W", "/S", "/R", "7", "/A", "/INT", "8", "/WAIT", "9", "svc"])
    assert one == two


RANGES = [
    ("/R", 1, 9, "retry"),
    ("/H", 1, 24, "hour"),
    ("/INT", 0, 3600, "time"),
    ("/WAIT", 0, 3600, "time"),
]


def with_option(option: str, value: str) -> list[str]:
    """An armload command line where `option value` is allowed by the other options."""
    prefix = [] if option == "/R" else ["/R", "1"]
    return ["W", *prefix, option, value, "prog"]


def option_value(request: LoadRequest, option: str) -> int | None:
    return {
        "/R": request.policy.retry,
        "/H": request.policy.hours,
        "/INT": request.policy.interval,
        "/WAIT": request.wait,
    }[option]


@pytest.mark.parametrize(("option", "low", "high", "noun"), RANGES)
def test_range_bounds_are_accepted(option: str, low: int, high: int, noun: str) -> None:
    for value in (low, high):
        assert option_value(parse_armload(with_option(option, str(value))), option) == value


@pytest.mark.parametrize(("option", "low", "high", "noun"), RANGES)
def test_out_of_range_values(option: str, low: int, high: int, noun: str) -> None:
    for value in (low - 1, high + 1, 99999, 10**40):
        message = load_error(with_option(option, str(value)))
        assert message.startswith(f"{option} {value}: {noun} must be a whole number")
        assert f"from {low} to {high}" in message


@pytest.mark.parametrize(("option", "low", "high", "noun"), RANGES)
@pytest.mark.parametrize(
    "value", ["+3", "3.0", "", "1e3", " 3", "3 ", "-1", "0x3", "1_0", "٣", "three", "３"]
)
def test_values_must_be_plain_decimal(
    option: str, low: int, high: int, noun: str, value: str
) -> None:
    message = load_error(with_option(option, value))
    assert message.startswith(f"{option} ")
    assert f"{noun} must be a whole number" in message
    assert f"from {low} to {high}" in message


def test_exact_range_message() -> None:
    assert (
        load_error(["W", "/R", "12", "prog"]) == "/R 12: retry must be a whole number from 1 to 9"
    )


def test_wait_and_timeout_messages_explain_zero() -> None:
    assert "0 = no limit" in load_error(["W", "/WAIT", "4000", "prog"])
    assert "0 = no limit" in kill_error(["W", "/T", "4000"])


def test_leading_zeros_are_fine() -> None:
    assert parse_armload(["W", "/R", "05", "prog"]).policy.retry == 5
    assert parse_armload(["W", "/WAIT", "0" * 50 + "3600", "prog"]).wait == 3600
    assert parse_armload(["W", "/WAIT", "000", "prog"]).wait == 0


def test_huge_numbers_are_an_ordinary_error() -> None:
    assert "/R 1111" in load_error(["W", "/R", "1" * 10000, "prog"])


def test_value_error_names_the_option_as_written() -> None:
    assert load_error(["W", "-r", "12", "prog"]).startswith("-r 12: retry")
    assert load_error(["W", "/r", "1", "/iNt", "x", "prog"]).startswith("/iNt x: time")


@pytest.mark.parametrize(("option", "low", "high", "noun"), [*RANGES, ("/U", 0, 0, "user")])
def test_missing_value_at_the_end(option: str, low: int, high: int, noun: str) -> None:
    prefix = [] if option in ("/R", "/U") else ["/R", "1"]
    message = load_error(["W", *prefix, option])
    assert message.startswith(f"{option} needs a value: {noun} must be")


@pytest.mark.parametrize(("option", "low", "high", "noun"), RANGES)
def test_value_followed_by_something_else(option: str, low: int, high: int, noun: str) -> None:
    prefix = [] if option == "/R" else ["/R", "1"]
    for following in ("/S", "/usr/bin/sleep", "prog"):
        message = load_error(["W", *prefix, option, following, "prog"])
        assert message.startswith(f"{option} {following}: {noun}")
        assert f"from {low} to {high}" in message


@pytest.mark.parametrize(
    ("option", "words"),
    [
        ("/H", ["/H", "2"]),
        ("/SCR", ["/SCR"]),
        ("/INT", ["/INT", "5"]),
        ("/H", ["-h", "2"]),
        ("/SCR", ["-Scr"]),
    ],
)
def test_restart_tuning_needs_retry(option: str, words: list[str]) -> None:
    message = load_error(["W", *words, "prog"])
    assert message.startswith(f"{option} needs /R: ")
    assert "restart" in message


def test_hours_needs_retry_message() -> None:
    assert load_error(["W", "/H", "2", "prog"]) == (
        "/H needs /R: the restart count window only applies to watches that restart"
    )


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("/A", ["/A", "/A"]),
        ("/A", ["/A", "-a"]),
        ("/R", ["/R", "1", "/R", "2"]),
        ("/R", ["/R", "1", "-r", "1"]),
        ("/S", ["/S", "/s"]),
        ("/SCR", ["/R", "1", "/SCR", "/scr"]),
        ("/WAIT", ["/WAIT", "1", "-Wait", "2"]),
        ("/U", ["/U", "a", "/U", "b"]),
    ],
)
def test_repeated_options(name: str, words: list[str]) -> None:
    message = load_error(["W", *words, "prog"])
    assert message.startswith(f"{name} given twice")
    assert "once" in message


@pytest.mark.parametrize(
    "user", ["bob", "_x", "a-b", "a_b9", "machine$", "0", "1000", "a" * 32, "1" * 32]
)
def test_valid_users(user: str) -> None:
    assert parse_armload(["W", "/U", user, "prog"]).user == user


@pytest.mark.parametrize(
    "user", ["Bob", "1abc", "a" * 33, "1" * 33, "", "-bob", "a$b", "a b", "é", "$", "a.b"]
)
def test_invalid_users(user: str) -> None:
    message = load_error(["W", "/U", user, "prog"])
    assert message.startswith("/U ")
    assert "user must be" in message
    assert "numeric uid" in message


# --- armkill --------------------------------------------------------------------------------


def test_armkill_defaults() -> None:
    assert parse_armkill(["W"]) == KillRequest("W", keep_running=False, timeout=40)
    assert KILL_TIMEOUT_DEFAULT == 40


@pytest.mark.parametrize("flag", ["/C", "/c", "-C", "-c"])
def test_armkill_keep_running(flag: str) -> None:
    assert parse_armkill(["W", flag]) == KillRequest("W", keep_running=True)


@pytest.mark.parametrize(("value", "timeout"), [("0", 0), ("3600", 3600), ("07", 7), ("40", 40)])
@pytest.mark.parametrize("option", ["/T", "/t", "-T", "-t"])
def test_armkill_timeout(option: str, value: str, timeout: int) -> None:
    assert parse_armkill(["W", option, value]) == KillRequest("W", timeout=timeout)


@pytest.mark.parametrize("value", ["3601", "-1", "+1", "", "1.5", "x", "/C"])
def test_armkill_bad_timeout(value: str) -> None:
    message = kill_error(["W", "/T", value])
    assert message.startswith("/T ")
    assert "from 0 to 3600" in message


def test_armkill_timeout_missing() -> None:
    assert kill_error(["W", "-t"]).startswith("-t needs a value: time must be")


@pytest.mark.parametrize("words", [["/C", "/T", "5"], ["/T", "5", "/C"], ["-c", "-t", "0"]])
def test_armkill_keep_running_and_timeout_conflict(words: list[str]) -> None:
    assert kill_error(["W", *words]) == (
        "/C and /T cannot be used together: /C ends the watch and leaves the target running,"
        " /T sets how long to wait for it to stop"
    )


def test_armkill_extra_arguments() -> None:
    for words in (["extra"], ["/C", "x"], ["/T", "5", "6"], ["/usr/bin/x"]):
        message = kill_error(["W", *words])
        assert message.startswith("unexpected argument '")
        assert "armkill takes WATCHID [/C | /T time]" in message


@pytest.mark.parametrize("word", ["/Q", "/S", "/R", "-x", "--force", "/M"])
def test_armkill_unknown_options(word: str) -> None:
    message = kill_error(["W", word])
    assert message.startswith("unknown option ")
    assert word in message
    assert "/C | /T" in message


def test_armkill_repeated_option() -> None:
    assert kill_error(["W", "/C", "-c"]).startswith("/C given twice")
    assert kill_error(["W", "/T", "1", "/T", "1"]).startswith("/T given twice")


# --- armem ----------------------------------------------------------------------------------


def test_armem_without_arguments_prints_the_mode() -> None:
    assert parse_armem([]) == ModeRequest(None)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("option", ["/M", "/m", "-M", "-m"])
def test_armem_modes(option: str, mode: str) -> None:
    expected = ModeRequest(FinalAction(mode))
    assert parse_armem([option, mode]) == expected
    assert parse_armem([option, mode.upper()]) == expected
    assert parse_armem([option, mode.title()]) == expected


@pytest.mark.parametrize(
    "args",
    [
        ["/M"],
        ["/M", "restart"],
        ["/M", ""],
        ["/M", "reboot", "now"],
        ["/M", "reboot", "/M", "none"],
        ["reboot"],
        ["/X"],
        ["-x", "reboot"],
        ["/M", "\u212a"],
        ["/M", "reb\u0130ot"],
        ["/M", " reboot"],
    ],
)
def test_armem_errors_list_the_modes(args: list[str]) -> None:
    message = em_error(args)
    assert "reboot, shutdown, panic, stopgroup, none" in message


def test_armem_bad_mode_names_it() -> None:
    assert em_error(["/M", "restart"]) == (
        "/M restart: mode must be one of reboot, shutdown, panic, stopgroup, none"
    )
    assert em_error(["-m"]).startswith("-m needs a value")
    assert em_error(["/Q"]).startswith("unknown option /Q: armem takes /M MODE")


# --- messages -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["a\nb", "prog"],
        ["W", "-\n"],
        ["W", "/R", "1\n"],
        ["W", "/U", "a\u2028b", "prog"],
        ["W", "/S", "x\ry"],
        ["W", "prog\0"],
        ["W", "/WAIT", "\ud800"],
    ],
)
def test_messages_stay_on_one_line(args: list[str]) -> None:
    message = load_error(args)
    assert len(message.splitlines()) == 1
    assert "\\" in message


def test_long_values_are_shortened() -> None:
    message = load_error(["W", "/R", "x" * 1000, "prog"])
    assert len(message) < 200
    assert "..." in message


# --- properties -----------------------------------------------------------------------------

OPTION_WORD = re.compile(r"[/-][A-Za-z]+")

watch_ids = st.from_regex(r"[A-Za-z0-9_]{1,255}", fullmatch=True).filter(
    lambda text: not text.upper().startswith("REARM_")
)
service_names = st.from_regex(r"[A-Za-z0-9_@:][A-Za-z0-9_.@:-]{0,254}", fullmatch=True)
users = st.from_regex(r"[a-z_][a-z0-9_-]{0,30}\$?|[0-9]{1,32}", fullmatch=True)
paths = st.one_of(
    st.from_regex(r"/[a-z]+(/[A-Za-z0-9._-]+)+", fullmatch=True),
    st.from_regex(r"[A-Za-z0-9_.][A-Za-z0-9._/-]*", fullmatch=True),
    st.text(min_size=1).filter(
        lambda text: (
            not text.startswith("-") and not OPTION_WORD.fullmatch(text) and "\0" not in text
        )
    ),
)
app_args = st.lists(
    st.one_of(
        st.text().filter(lambda text: "\0" not in text),
        st.sampled_from(["/R", "-r", "12", "/S", "-x", "--", "/U", "root", "-h"]),
    ),
    max_size=6,
)


@st.composite
def spelled(draw: st.DrawFn, name: str) -> str:
    """`name` (like "WAIT") as a user may write it: / or -, any case."""
    prefix = draw(st.sampled_from("/-"))
    cases = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return prefix + "".join(
        c.upper() if up else c.lower() for c, up in zip(name, cases, strict=True)
    )


@st.composite
def number(draw: st.DrawFn, low: int, high: int) -> tuple[int, str]:
    value = draw(st.integers(low, high))
    return value, "0" * draw(st.integers(0, 3)) + str(value)


@st.composite
def armload_lines(draw: st.DrawFn) -> tuple[list[str], LoadRequest]:
    watch_id = draw(watch_ids)
    is_service = draw(st.booleans())
    groups: list[list[str]] = []
    retry = hours = wait = None
    interval = 0
    script = adopt = False
    user = None
    if is_service:
        groups.append([draw(spelled("S"))])
    if draw(st.booleans()):
        adopt = True
        groups.append([draw(spelled("A"))])
    if draw(st.booleans()):
        retry, text = draw(number(1, 9))
        groups.append([draw(spelled("R")), text])
        if draw(st.booleans()):
            hours, text = draw(number(1, 24))
            groups.append([draw(spelled("H")), text])
        if draw(st.booleans()):
            interval, text = draw(number(0, 3600))
            groups.append([draw(spelled("INT")), text])
        if draw(st.booleans()):
            script = True
            groups.append([draw(spelled("SCR"))])
    if draw(st.booleans()):
        wait, text = draw(number(0, 3600))
        groups.append([draw(spelled("WAIT")), text])
    if not is_service and draw(st.booleans()):
        user = draw(users)
        groups.append([draw(spelled("U")), user])
    ordered = draw(st.permutations(groups))
    policy = RestartPolicy(retry=retry, hours=hours, interval=interval, script=script)
    args = [watch_id, *(word for group in ordered for word in group)]
    if is_service:
        service = draw(service_names)
        args.append(service)
        expected = LoadRequest(watch_id, policy, adopt=adopt, wait=wait, service=service.lower())
    else:
        argv = (draw(paths), *draw(app_args))
        args.extend(argv)
        expected = LoadRequest(watch_id, policy, adopt=adopt, wait=wait, argv=argv, user=user)
    return args, expected


@given(armload_lines())
def test_armload_round_trip(line: tuple[list[str], LoadRequest]) -> None:
    args, expected = line
    assert parse_armload(args) == expected


@given(
    watch_ids,
    st.one_of(
        st.none(),
        st.just("C"),
        st.integers(0, 3600),
    ),
    st.data(),
)
def test_armkill_round_trip(watch_id: str, choice: str | int | None, data: st.DataObject) -> None:
    if choice is None:
        args, expected = [watch_id], KillRequest(watch_id)
    elif choice == "C":
        args = [watch_id, data.draw(spelled("C"))]
        expected = KillRequest(watch_id, keep_running=True)
    else:
        args = [watch_id, data.draw(spelled("T")), str(choice)]
        expected = KillRequest(watch_id, timeout=int(choice))
    assert parse_armkill(args) == expected


@given(st.sampled_from(MODES), st.data())
def test_armem_round_trip(mode: str, data: st.DataObject) -> None:
    cases = data.draw(st.lists(st.booleans(), min_size=len(mode), max_size=len(mode)))
    written = "".join(c.upper() if up else c for c, up in zip(mode, cases, strict=True))
    assert parse_armem([data.draw(spelled("M")), written]) == ModeRequest(FinalAction(mode))


VOCABULARY = [
    "/S", "-s", "/A", "/R", "-r", "/H", "/SCR", "/INT", "/WAIT", "/U", "/C", "/T", "/M", "-m",
    "0", "1", "9", "10", "24", "3600", "3601", "05", "reboot", "NONE", "bob", "Bob", "redis",
    "/usr/bin/sleep", "sleep", "", "-", "--", "/?", "-h", "--help", "REARM_X", "W", "a-b",
]  # fmt: skip
fuzz_lines = st.lists(
    st.one_of(st.text(), st.sampled_from(VOCABULARY), st.from_regex(r"[0-9]{1,6}", fullmatch=True)),
    max_size=8,
)


@pytest.mark.parametrize(
    ("parse", "kind"),
    [(parse_armload, LoadRequest), (parse_armkill, KillRequest), (parse_armem, ModeRequest)],
)
@given(args=fuzz_lines)
def test_any_input_gives_a_request_or_a_usage_error(
    parse: Callable[[list[str]], object], kind: type, args: list[str]
) -> None:
    try:
        result = parse(list(args))
    except ArmUsageError as error:
        message = str(error)
        assert message
        assert len(message.splitlines()) == 1
        assert "Traceback" not in message
    except HelpRequested:
        assert len(args) == 1
    else:
        assert isinstance(result, kind)
