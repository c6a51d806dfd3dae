"""`[[monitors]]` in group.toml and service definitions: every refusal is one line naming the
file, the key, the value and the rule, and a file with one bad monitor is refused whole."""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

import pytest

from rearm.config import load_group, load_service
from rearm.monitors.config import MonitorSpec, Recovery, Timing, monitors_from
from rearm.monitors.registry import KINDS, parser
from rearm.paths import Home
from rearm.validate import ConfigError, Table

GROUP_FILE = "etc/groups/g/group.toml"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home.from_env(str(tmp_path))


def write(home: Home, relative: str, text: str) -> None:
    assert home.root is not None
    path = os.path.join(home.root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def group_error(home: Home, text: str) -> str:
    write(home, GROUP_FILE, text)
    with pytest.raises(ConfigError) as caught:
        load_group(home, "g")
    message = str(caught.value)
    assert "\n" not in message
    return message


def parse(text: str, *, in_service: bool = False) -> tuple[MonitorSpec, ...]:
    return monitors_from(Table(tomllib.loads(text), "x.toml"), in_service=in_service)


WATCH = '[[watches]]\nid = "WEB"\ncommand = ["/bin/sleep", "100"]\n'


def test_a_group_with_monitors(home: Home) -> None:
    write(home, "etc/groups/g/start.sh", "#!/bin/sh\n    armload DB /S /R 3 postgresql\n")
    write(
        home,
        GROUP_FILE,
        WATCH
        + """
[[monitors]]
name = "web"
kind = "http"
target = "web"
url = "http://127.0.0.1:8080/health"
interval = 5
timeout = 2
start_delay = 10
failures = 2
slow = 0.5
timing = "always"
recovery = "final"

[[monitors]]
name = "db"
kind = "postgresql"
target = "DB"
user = "postgres"

[[monitors]]
name = "disk-space"
kind = "system"
free_min = "5%"
""",
    )
    group = load_group(home, "g")
    web, db, space = group.monitors
    assert (web.name, web.kind, web.target, web.interval, web.timeout) == (
        "web",
        "http",
        "web",
        5.0,
        2.0,
    )
    assert (web.start_delay, web.failures, web.slow, web.timing, web.recovery) == (
        10.0,
        2,
        0.5,
        Timing.ALWAYS,
        Recovery.FINAL,
    )
    assert web.where == GROUP_FILE and web.describe() == "http GET http://127.0.0.1:8080/health"
    # Defaults: every 10 s, a 5 s timeout, 3 failures, only while the target runs, restart.
    assert (db.interval, db.timeout, db.failures, db.timing, db.recovery) == (
        10.0,
        5.0,
        3,
        Timing.ACTIVE,
        Recovery.RESTART,
    )
    assert db.target == "DB"  # armloaded by start.sh
    assert space.target is None  # the group itself


def test_a_service_definition_with_monitors(home: Home) -> None:
    write(
        home,
        "etc/services/redis.toml",
        'command = ["/usr/bin/redis-server"]\n'
        '[[monitors]]\nname = "ping"\nkind = "redis"\nport = 6380\ninterval = 2\n',
    )
    service = load_service(home, "redis")
    assert service is not None
    [ping] = service.monitors
    assert (ping.kind, ping.target, ping.timeout) == ("redis", None, 2.0)  # timeout <= interval


@pytest.mark.parametrize(
    ("monitor", "key", "value", "rule"),
    [
        ('kind = "htp"', "kind", '"htp"', "must be one of disk, exec, heartbeat, http"),
        ('kind = "tcp"\nport = 1\ninterval = 0', "interval", "0", "from 0.1 to 86400"),
        ('kind = "tcp"\nport = 1\ninterval = -5', "interval", "-5", "from 0.1"),
        (
            'kind = "tcp"\nport = 1\ninterval = 5\ntimeout = 6',
            "timeout",
            "6",
            "must not exceed interval (5)",
        ),
        ('kind = "tcp"\nport = 1\ntimeout = 0', "timeout", "0", "above 0"),
        ('kind = "tcp"\nport = 70000', "port", "70000", "a port number from 1 to 65535"),
        ('kind = "tcp"\nport = 1\nfailures = 0', "failures", "0", "from 1 to 100"),
        ('kind = "tcp"\nport = 1\ntiming = "sometimes"', "timing", '"sometimes"', '"active"'),
        ('kind = "tcp"\nport = 1\nrecovery = "reboot"', "recovery", '"reboot"', '"restart"'),
        ('kind = "tcp"\nport = 1\ntimeout = 2\nslow = 3', "slow", "3", "below timeout (2)"),
        ('kind = "tcp"\nport = 1\ntarget = "no such"', "target", '"no such"', "a watch ID"),
        ('kind = "tcp"\nport = 1\ntarget = "DB"', "target", '"DB"', "no such watch"),
        ('kind = "http"\nurl = "ftp://x/"', "url", '"ftp://x/"', "http:// or https://"),
        ('kind = "http"\nurl = "http://x/"\nstatus = 99', "status", "99", "from 100 to 599"),
        ('kind = "http"\nurl = "http://x/"\nexpect = "("', "expect", '"("', "regular expr"),
        ('kind = "exec"\ncommand = ["check"]', "command", '"check"', "an absolute path"),
        (
            'kind = "exec"\ncommand = ["/bin/true"]\nasync = true\ntimeout = 3',
            "timeout",
            "3",
            "has no timeout",
        ),
        ('kind = "resource"\nrss_max = "1G"', "target", None, "is required"),
        ('kind = "resource"\ntarget = "WEB"\nrss_max = "lots"', "rss_max", '"lots"', "512M"),
        ('kind = "system"\nfree_min = "120%"', "free_min", '"120%"', "from 0% to 100%"),
        ('kind = "heartbeat"\nperiod = 10\ninterval = 20', "interval", "20", "period (10)"),
        ('kind = "disk"\nfile = "relative"', "file", '"relative"', "an absolute path"),
        ('kind = "link"\ninterface = "a/b"', "interface", '"a/b"', "an interface name"),
        ('kind = "process"\nprocess = "x"\nmin = 3\nmax = 2', "max", "2", "not be below min"),
        ('kind = "redis"\nuser = "u"', "user", None, "needs password_file"),
        ('kind = "tcp"\nport = 1\nrecovery = "script"', "script", None, "is required"),
    ],
)
def test_bad_monitor_is_one_line_naming_file_key_value_and_rule(
    home: Home, monitor: str, key: str, value: str | None, rule: str
) -> None:
    message = group_error(home, WATCH + f'[[monitors]]\nname = "m"\n{monitor}\n')
    assert message.startswith(f"{GROUP_FILE}: key 'monitors[0].{key}': "), message
    if value is not None:
        assert f"got {value};" in message, message
    assert rule in message, message


def test_unknown_keys_are_named_with_the_known_ones(home: Home) -> None:
    message = group_error(home, '[[monitors]]\nname = "m"\nkind = "tcp"\nport = 1\nprot = 2\n')
    assert message.startswith(f"{GROUP_FILE}: unknown key 'monitors[0].prot' (known keys: ")
    assert "port" in message and "interval" in message


def test_names_are_required_valid_and_unique(home: Home) -> None:
    assert "'monitors[0].name': is required" in group_error(home, '[[monitors]]\nkind = "tcp"\n')
    assert 'got "a b"; use 1-64' in group_error(
        home, '[[monitors]]\nname = "a b"\nkind = "tcp"\nport = 1\n'
    )
    message = group_error(home, '[[monitors]]\nname = "m"\nkind = "tcp"\nport = 1\n' * 2)
    assert "'monitors[1].name': got \"m\"; the name is taken by monitors[0]" in message


def test_a_service_monitor_has_no_target(home: Home) -> None:
    write(
        home,
        "etc/services/web.toml",
        'command = ["/bin/sleep"]\n[[monitors]]\nname = "m"\nkind = "tcp"\nport = 1\n'
        'target = "X"\n',
    )
    with pytest.raises(ConfigError, match=r"^etc/services/web.toml: key 'monitors\[0\].target'"):
        load_service(home, "web")


def test_every_kind_parses_its_documented_example() -> None:
    """Each kind module's docstring example is a valid monitor (the docs cannot rot)."""
    import importlib

    for kind, module in KINDS.items():
        doc = importlib.import_module(module).__doc__ or ""
        example = "\n".join(line[4:] for line in doc.splitlines() if line.startswith("    ")).split(
            "\n\n"
        )[0]
        assert "[[monitors]]" in example, kind
        example = re.sub(r"(?m)^target = .*$", "", example)  # no group watches here
        [spec] = parse(example, in_service=True)
        assert spec.kind == kind and parser(kind) is not None


def test_defaults_per_kind() -> None:
    [beat] = parse('[[monitors]]\nname = "b"\nkind = "heartbeat"\nperiod = 30\n', in_service=True)
    assert (beat.interval, beat.failures) == (10.0, 1)  # checked often; a missed period faults
    [checker] = parse(
        '[[monitors]]\nname = "c"\nkind = "exec"\ncommand = ["/bin/cat"]\nasync = true\n'
        "interval = 4\n",
        in_service=True,
    )
    assert (checker.timeout, checker.failures, checker.options.continuous) == (4.0, 1, True)
    [short] = parse('[[monitors]]\nname = "s"\nkind = "tcp"\nport = 1\ninterval = 1\n')
    assert short.timeout == 1.0  # the default 5 s is cut to the interval


def test_the_examples_of_docs_monitors_md_are_valid() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "monitors.md"
    blocks = re.findall(r"```toml\n(.*?)```", docs.read_text(), re.DOTALL)
    assert len(blocks) >= 8
    for block in blocks:
        specs = parse(block)
        assert specs, block
