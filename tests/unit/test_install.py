"""The systemd unit `rearm install` writes, as text: every directive and its value, quoting of
paths and REARM_HOME as systemd parses them back, and the watchdog period."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rearm.daemon.heartbeat import beat_interval
from rearm.install import (
    RESTART_SEC,
    UnitParams,
    describe_changes,
    environment_assignment,
    exec_start,
    unit_text,
    watchdog_seconds,
)
from rearm.validate import ConfigError

REARM = "/opt/rearm/venv/bin/rearm"


def directives(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections of a unit file -> their (key, value) lines, comments and blanks left out."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
            sections.setdefault(current, [])
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {line!r}"
        sections[current].append((key, value))
    return sections


def one(text: str, section: str, key: str) -> str:
    values = [v for k, v in directives(text)[section] if k == key]
    assert len(values) == 1, f"[{section}] {key}: {values}"
    return values[0]


def systemd_unquote(value: str) -> str:
    """How systemd reads back one double-quoted word of Environment=: C escapes, then %%."""
    assert value.startswith('"') and value.endswith('"'), value
    out, chars = [], iter(value[1:-1])
    for ch in chars:
        if ch == "\\":
            out.append(next(chars))  # only \\ and \" are ever written
        else:
            assert ch != '"', "an unescaped quote would end the word early"
            out.append(ch)
    return "".join(out).replace("%%", "%")


# --- the directives ---------------------------------------------------------------------------


def test_every_required_directive_has_its_value() -> None:
    text = unit_text(UnitParams(rearm=REARM))
    assert one(text, "Service", "Type") == "notify"
    assert one(text, "Service", "NotifyAccess") == "main"
    assert one(text, "Service", "ExecStart") == f"{REARM} daemon"
    assert one(text, "Service", "ExecReload") == "/bin/kill -HUP $MAINPID"
    assert one(text, "Service", "KillMode") == "process"
    assert one(text, "Service", "Restart") == "always"
    assert one(text, "Service", "RestartSec") == str(RESTART_SEC) and RESTART_SEC > 0
    assert one(text, "Service", "WatchdogSec") == "30"
    assert one(text, "Service", "OOMPolicy") == "continue"
    assert one(text, "Service", "TasksMax") == "infinity"
    assert one(text, "Service", "LimitNOFILE") == "65536"  # issue 18, High 3
    assert one(text, "Unit", "StartLimitIntervalSec") == "0"
    assert one(text, "Unit", "After") == "network-online.target remote-fs.target"
    assert one(text, "Install", "WantedBy") == "multi-user.target"
    assert list(directives(text)) == ["Unit", "Service", "Install"]
    assert text.endswith("\n")


def test_no_directive_is_given_twice() -> None:
    text = unit_text(UnitParams(rearm=REARM, home="/srv/rearm"))
    for section, pairs in directives(text).items():
        keys = [k for k, _ in pairs]
        assert len(keys) == len(set(keys)), (section, keys)


def test_kill_mode_process_is_explained_where_it_is_set() -> None:
    text = unit_text(UnitParams(rearm=REARM))
    lines = text.splitlines()
    at = lines.index("KillMode=process")
    comment = " ".join(lines[at - 4 : at])
    assert "cgroup" in comment and "kill every one of them" in comment


# Every one of these is inherited by the services the daemon starts: none may be set.
SANDBOXING = [
    "User",
    "DynamicUser",
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "PrivateNetwork",
    "PrivateMounts",
    "NoNewPrivileges",
    "CapabilityBoundingSet",
    "SystemCallFilter",
    "RestrictSUIDSGID",
    "RestrictNamespaces",
    "RestrictAddressFamilies",
    "MemoryDenyWriteExecute",
    "ProtectKernelModules",
    "ProtectKernelTunables",
    "ProtectControlGroups",
    "ProtectClock",
    "ProtectHostname",
    "OOMScoreAdjust",
]


@pytest.mark.parametrize("key", SANDBOXING)
def test_nothing_the_watched_services_would_inherit_is_restricted(key: str) -> None:
    text = unit_text(UnitParams(rearm=REARM, home="/srv/rearm"))
    assert key not in {k for pairs in directives(text).values() for k, _ in pairs}


def test_default_home_sets_no_environment() -> None:
    text = unit_text(UnitParams(rearm=REARM, home=None))
    assert "Environment" not in {k for k, _ in directives(text)["Service"]}
    assert "REARM_HOME" not in text


def test_a_home_is_passed_as_rearm_home() -> None:
    text = unit_text(UnitParams(rearm=REARM, home="/srv/rearm"))
    assert one(text, "Service", "Environment") == '"REARM_HOME=/srv/rearm"'


# --- quoting ----------------------------------------------------------------------------------

HOMES = [
    "/srv/rearm",
    "/srv/my rearm",
    "/srv/100%",
    "/srv/%n%%",
    '/srv/say "hi"',
    "/srv/back\\slash",
    "/srv/it's",
    "/srv/$HOME",
    "/srv/ünïcode",
]


@pytest.mark.parametrize("home", HOMES)
def test_rearm_home_is_read_back_exactly(home: str) -> None:
    text = unit_text(UnitParams(rearm=REARM, home=home))
    value = one(text, "Service", "Environment")
    assert systemd_unquote(value) == f"REARM_HOME={home}"


def test_rearm_home_quoting_examples() -> None:
    assert environment_assignment("REARM_HOME", "/a b") == '"REARM_HOME=/a b"'
    assert environment_assignment("REARM_HOME", "/a%b") == '"REARM_HOME=/a%%b"'
    assert environment_assignment("REARM_HOME", '/a"b') == '"REARM_HOME=/a\\"b"'
    assert environment_assignment("REARM_HOME", "/a\\b") == '"REARM_HOME=/a\\\\b"'
    # Environment= does not expand $: it stays as it is.
    assert environment_assignment("REARM_HOME", "/a$b") == '"REARM_HOME=/a$b"'


@pytest.mark.parametrize("bad", ["/srv/a\nExecStartPre=/bin/evil", "/srv/tab\there", "/srv/\x7f"])
def test_control_characters_never_reach_the_file(bad: str) -> None:
    with pytest.raises(ConfigError, match="control characters"):
        unit_text(UnitParams(rearm=REARM, home=bad))
    with pytest.raises(ConfigError, match="control characters"):
        unit_text(UnitParams(rearm=bad.replace("/srv/", "/opt/") + "/rearm"))


def test_exec_start_quotes_blanks_and_doubles_percent_only() -> None:
    assert exec_start("/usr/local/bin/rearm") == "/usr/local/bin/rearm daemon"
    assert exec_start("/opt/my venv/bin/rearm") == '"/opt/my venv/bin/rearm" daemon'
    assert exec_start("/opt/100%/bin/rearm") == "/opt/100%%/bin/rearm daemon"
    # systemd takes the executable's path literally: no $$ there (verified by systemd-analyze).
    assert exec_start("/opt/$x/bin/rearm") == "/opt/$x/bin/rearm daemon"


@pytest.mark.parametrize(
    ("path", "word"),
    [
        ("bin/rearm", "absolute"),
        ("/opt/../bin/rearm", "normalized"),
        ("/opt//bin/rearm", "normalized"),
        ('/opt/"q"/rearm', "quotes or backslashes"),
        ("/opt/it's/rearm", "quotes or backslashes"),
        ("/opt/back\\slash/rearm", "quotes or backslashes"),
    ],
)
def test_exec_paths_systemd_refuses_are_refused_first(path: str, word: str) -> None:
    with pytest.raises(ConfigError, match=word):
        unit_text(UnitParams(rearm=path))


def test_relative_home_is_refused() -> None:
    with pytest.raises(ConfigError, match="absolute"):
        unit_text(UnitParams(rearm=REARM, home="srv/rearm"))


# --- the watchdog period ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "watchdog"), [(90, 30), (2, 1), (3, 1), (5, 1), (6, 2), (60, 20), (3600, 1200)]
)
def test_watchdog_is_a_third_of_the_heartbeat_timeout(timeout: int, watchdog: int) -> None:
    assert watchdog_seconds(timeout) == watchdog
    text = unit_text(UnitParams(rearm=REARM, heartbeat_timeout=timeout))
    assert one(text, "Service", "WatchdogSec") == str(watchdog)


@given(st.integers(min_value=2, max_value=3600))
def test_systemd_acts_before_the_keeper_and_the_daemon_beats_in_time(timeout: int) -> None:
    watchdog = watchdog_seconds(timeout)
    assert 1 <= watchdog < timeout
    assert watchdog == 1 or 3 * watchdog <= timeout
    # The daemon beats at least twice per watchdog period (daemon/heartbeat.py).
    assert beat_interval(timeout, str(watchdog * 1_000_000)) <= watchdog / 2


def test_a_timeout_below_one_second_is_refused() -> None:
    with pytest.raises(ConfigError):
        watchdog_seconds(0)


# --- what a re-install says -------------------------------------------------------------------


def test_changes_name_the_directives_that_changed() -> None:
    old = unit_text(UnitParams(rearm=REARM, heartbeat_timeout=90))
    new = unit_text(UnitParams(rearm=REARM, heartbeat_timeout=30, home="/srv/r"))
    assert describe_changes(old, new) == [
        '+ Environment="REARM_HOME=/srv/r"',
        "- WatchdogSec=30",
        "+ WatchdogSec=10",
    ]
    assert describe_changes(new, new) == []


def test_comment_only_changes_are_called_that() -> None:
    text = unit_text(UnitParams(rearm=REARM))
    assert describe_changes("# old words\n" + text, text) == ["(comments only)"]


def test_the_text_is_a_pure_function_of_its_parameters() -> None:
    params = UnitParams(rearm=REARM, home="/srv/r", heartbeat_timeout=45)
    assert unit_text(params) == unit_text(UnitParams(REARM, "/srv/r", 45))
    assert unit_text(params) != unit_text(UnitParams(REARM, "/srv/r", 90))
