"""Configuration files under REARM_HOME (SPEC §2, §8): loading, validation and writing."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from rearm.arm import ArmUsageError, parse_armload
from rearm.config import (
    SETTABLE,
    SIGNALS,
    check_script,
    create_group,
    group_names,
    load_cluster,
    load_group,
    load_service,
    new_cluster_text,
    script_path,
    set_cluster_keys,
)
from rearm.model import (
    Cluster,
    FinalAction,
    GroupConfig,
    HeartbeatAction,
    LoadRequest,
    ReadyCheck,
    RestartPolicy,
    ReturnMode,
    ServiceDef,
)
from rearm.paths import Home
from rearm.validate import ConfigError

CLUSTER_FILE = "etc/cluster.toml"
MINIMAL_CLUSTER = 'name = "prod1"\nserver = "host1"\nip = "10.0.0.1"\n'


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return Home.from_env(str(tmp_path))


def write(home: Home, relative: str, text: str) -> str:
    assert home.root is not None
    path = os.path.join(home.root, relative)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def cluster_error(home: Home, text: str) -> str:
    write(home, CLUSTER_FILE, text)
    with pytest.raises(ConfigError) as caught:
        load_cluster(home)
    return str(caught.value)


# --- the home ------------------------------------------------------------------------------


def test_home_puts_everything_under_the_directory(tmp_path: Path, home: Home) -> None:
    assert home.root == str(tmp_path)
    assert home.cluster_file == str(tmp_path / "etc" / "cluster.toml")
    assert home.service_file("redis") == str(tmp_path / "etc" / "services" / "redis.toml")
    assert home.group_dir("web") == str(tmp_path / "etc" / "groups" / "web")


# --- load_cluster --------------------------------------------------------------------------


def test_load_minimal_cluster_with_defaults(home: Home) -> None:
    write(home, CLUSTER_FILE, MINIMAL_CLUSTER)
    assert load_cluster(home) == Cluster(name="prod1", server="host1", ip="10.0.0.1")


def test_drill_defaults_to_true_when_absent(home: Home) -> None:
    write(home, CLUSTER_FILE, MINIMAL_CLUSTER)
    assert load_cluster(home).drill is True


@pytest.mark.parametrize(("written", "drill"), [("true", True), ("false", False)])
def test_drill_as_written(home: Home, written: str, drill: bool) -> None:
    write(home, CLUSTER_FILE, MINIMAL_CLUSTER + f"drill = {written}\n")
    assert load_cluster(home).drill is drill


def test_drill_must_be_a_boolean(home: Home) -> None:
    message = cluster_error(home, MINIMAL_CLUSTER + 'drill = "yes"\n')
    assert message == f"{CLUSTER_FILE}: key 'drill': must be true or false"


def test_full_cluster(home: Home) -> None:
    write(
        home,
        CLUSTER_FILE,
        MINIMAL_CLUSTER + 'interconnect = "192.168.93.1"\nfinal_action = "REBOOT"\ndrill = false\n'
        'return_mode = "manual"\nheartbeat_timeout = 30\nheartbeat_action = "panic"\n'
        'max_reboots = 5\nreboot_window = 7200\nadmin_group = "wheel"\nmanager_port = 9000\n'
        '[[alerts]]\ntype = "snmp"\ntarget = "127.0.0.1:162"\n',
    )
    assert load_cluster(home) == Cluster(
        name="prod1",
        server="host1",
        ip="10.0.0.1",
        interconnect="192.168.93.1",
        final_action=FinalAction.REBOOT,
        drill=False,
        return_mode=ReturnMode.MANUAL,
        heartbeat_timeout=30,
        heartbeat_action=HeartbeatAction.PANIC,
        max_reboots=5,
        reboot_window=7200,
        admin_group="wheel",
        manager_port=9000,
    )


def test_missing_cluster_file_says_how_to_create_one(home: Home) -> None:
    with pytest.raises(ConfigError) as caught:
        load_cluster(home)
    message = str(caught.value)
    assert "rearm cluster create" in message
    assert CLUSTER_FILE in message
    assert "missing" in message


def test_bad_toml(home: Home) -> None:
    message = cluster_error(home, 'name = "prod1\nserver = \n')
    assert message.startswith(f"{CLUSTER_FILE}: not valid TOML")


@pytest.mark.parametrize("name", ["a" * 15, "p", "9lives", "a_b-c"])
def test_good_cluster_names(home: Home, name: str) -> None:
    write(home, CLUSTER_FILE, f'name = "{name}"\nserver = "host1"\nip = "10.0.0.1"\n')
    assert load_cluster(home).name == name


@pytest.mark.parametrize("name", ["a" * 16, "-lead", "_lead", "a.b", "a b", "é"])
def test_bad_cluster_names(home: Home, name: str) -> None:
    message = cluster_error(home, f'name = "{name}"\nserver = "host1"\nip = "10.0.0.1"\n')
    assert message.startswith(f"{CLUSTER_FILE}: key 'name': cluster name '{name}'")
    assert "1-15 characters" in message


@pytest.mark.parametrize(("name", "server"), [("host1", "host1"), ("Host1", "hOST1")])
def test_name_equal_to_server_is_refused(home: Home, name: str, server: str) -> None:
    message = cluster_error(home, f'name = "{name}"\nserver = "{server}"\nip = "10.0.0.1"\n')
    assert f"{CLUSTER_FILE}: key 'name'" in message
    assert "equals the server's hostname" in message


@pytest.mark.parametrize("key", ["name", "server", "ip"])
def test_required_cluster_keys(home: Home, key: str) -> None:
    lines = [line for line in MINIMAL_CLUSTER.splitlines() if not line.startswith(key)]
    message = cluster_error(home, "\n".join(lines) + "\n")
    assert message == f"{CLUSTER_FILE}: key '{key}': is required"


@pytest.mark.parametrize("ip", ["10.0.0.300", "host1", "10.0.0", "", "10.0.0.1/33"])
def test_bad_ip(home: Home, ip: str) -> None:
    message = cluster_error(home, f'name = "prod1"\nserver = "host1"\nip = "{ip}"\n')
    assert message.startswith(f"{CLUSTER_FILE}: key 'ip': ")
    assert "IP address" in message or "non-empty" in message


def test_bad_ip_is_blamed_on_ip_even_with_an_interconnect(home: Home) -> None:
    message = cluster_error(
        home, 'name = "prod1"\nserver = "host1"\nip = "bogus"\ninterconnect = "192.168.93.1"\n'
    )
    assert message.startswith(f"{CLUSTER_FILE}: key 'ip': ")


@pytest.mark.parametrize(
    ("ip", "interconnect"),
    [
        ("10.0.0.1", "10.0.0.2"),
        ("10.0.0.1", "10.0.0.254"),
        ("10.0.0.1/16", "10.0.200.1"),
        ("10.0.0.1", "10.0.0.1"),
        ("fd00::1", "fd00::2"),
    ],
)
def test_interconnect_in_the_same_network_is_refused(
    home: Home, ip: str, interconnect: str
) -> None:
    message = cluster_error(
        home,
        f'name = "prod1"\nserver = "host1"\nip = "{ip}"\ninterconnect = "{interconnect}"\n',
    )
    assert message.startswith(f"{CLUSTER_FILE}: key 'interconnect': ")
    assert "same network" in message


@pytest.mark.parametrize(
    ("ip", "interconnect"),
    [
        ("10.0.0.1", "192.168.93.1"),
        ("10.0.0.1", "10.0.1.1"),  # a bare IPv4 address is taken as a /24
        ("10.0.0.1/24", "10.0.1.1/24"),
        ("10.0.0.1", "fd00::1"),
    ],
)
def test_interconnect_in_another_network_is_accepted(
    home: Home, ip: str, interconnect: str
) -> None:
    write(
        home,
        CLUSTER_FILE,
        f'name = "prod1"\nserver = "host1"\nip = "{ip}"\ninterconnect = "{interconnect}"\n',
    )
    cluster = load_cluster(home)
    assert (cluster.ip, cluster.interconnect) == (ip, interconnect)


def test_bad_interconnect_address(home: Home) -> None:
    message = cluster_error(home, MINIMAL_CLUSTER + 'interconnect = "nowhere"\n')
    assert message.startswith(f"{CLUSTER_FILE}: key 'interconnect': ")
    assert "not an IP address" in message


def test_unknown_cluster_key_is_named(home: Home) -> None:
    message = cluster_error(home, MINIMAL_CLUSTER + "colour = 3\n")
    assert message.startswith(f"{CLUSTER_FILE}: unknown key 'colour'")
    assert "final_action" in message  # the known keys are listed


def test_sections_of_other_parts_are_not_unknown(home: Home) -> None:
    write(
        home,
        CLUSTER_FILE,
        MINIMAL_CLUSTER
        + 'require_license = false\n[manager]\nport = 1\n[[alerts]]\ntype = "syslog"\n'
        "[[license]]\nserial = 1\n",
    )
    assert load_cluster(home).name == "prod1"


@pytest.mark.parametrize("action", ["explode", "halt", "", "stop group"])
def test_final_action_must_be_allowed(home: Home, action: str) -> None:
    message = cluster_error(home, MINIMAL_CLUSTER + f'final_action = "{action}"\n')
    assert message == (
        f"{CLUSTER_FILE}: key 'final_action': must be one of "
        "reboot, shutdown, panic, stopgroup, none"
    )


@pytest.mark.parametrize("action", [a.value for a in FinalAction])
def test_every_final_action_is_accepted_in_any_case(home: Home, action: str) -> None:
    write(home, CLUSTER_FILE, MINIMAL_CLUSTER + f'final_action = "{action.upper()}"\n')
    assert load_cluster(home).final_action is FinalAction(action)


@pytest.mark.parametrize(
    ("line", "key", "rule"),
    [
        ("heartbeat_timeout = 1", "heartbeat_timeout", "from 2 to 3600"),
        ("max_reboots = 0", "max_reboots", "from 1 to 100"),
        ("reboot_window = 59", "reboot_window", "from 60 to 604800"),
        ("manager_port = 70000", "manager_port", "from 1 to 65535"),
        ('max_reboots = "3"', "max_reboots", "whole number"),
        ("max_reboots = true", "max_reboots", "whole number"),
        ('return_mode = "sometimes"', "return_mode", "auto, manual"),
        ("name = 3", "name", "non-empty string"),
    ],
)
def test_cluster_value_rules(home: Home, line: str, key: str, rule: str) -> None:
    lines = [x for x in MINIMAL_CLUSTER.splitlines() if not x.startswith(key)]
    message = cluster_error(home, "\n".join([*lines, line]) + "\n")
    assert message.startswith(f"{CLUSTER_FILE}: key '{key}': ")
    assert rule in message


def test_new_cluster_text_loads_back(home: Home) -> None:
    cluster = Cluster(
        name="prod1",
        server="host1",
        ip="10.0.0.1",
        interconnect="192.168.93.1",
        final_action=FinalAction.STOPGROUP,
        drill=False,
        max_reboots=7,
    )
    write(home, CLUSTER_FILE, new_cluster_text(cluster))
    assert load_cluster(home) == cluster


def test_new_cluster_text_is_commented_and_in_drill_by_default() -> None:
    text = new_cluster_text(Cluster(name="prod1", server="host1", ip="10.0.0.1"))
    assert text.startswith("#")
    assert "drill = true" in text
    assert "interconnect" not in text


# --- set_cluster_keys ----------------------------------------------------------------------

HAND_EDITED = """\
# Our production cluster -- edited by hand, keep this comment.
name = "prod1"   # the name the Manager shows
server = "host1"
ip = "10.0.0.1"

# final action: see armem
final_action = "none"
drill = true

[[alerts]]   # the NOC's trap receiver
type = "snmp"
target = "127.0.0.1:162"
"""


def test_set_keeps_comments_of_a_hand_edited_file(home: Home) -> None:
    path = write(home, CLUSTER_FILE, HAND_EDITED)
    cluster, restart = set_cluster_keys(home, {"final_action": "REBOOT", "max_reboots": "5"})
    assert cluster.final_action is FinalAction.REBOOT
    assert cluster.max_reboots == 5
    assert restart == []
    text = read_bytes(path).decode()
    for comment in (
        "# Our production cluster -- edited by hand, keep this comment.",
        "# the name the Manager shows",
        "# final action: see armem",
        "# the NOC's trap receiver",
    ):
        assert comment in text
    assert 'final_action = "reboot"' in text
    assert 'final_action = "none"' not in text
    # The new top-level key did not end up inside the [[alerts]] table.
    assert load_cluster(home) == cluster
    assert text.index("max_reboots") < text.index("[[alerts]]")


def test_set_only_touches_the_changed_lines(home: Home) -> None:
    path = write(home, CLUSTER_FILE, HAND_EDITED)
    set_cluster_keys(home, {"drill": "off"})
    before = HAND_EDITED.splitlines()
    after = read_bytes(path).decode().splitlines()
    assert len(after) == len(before)
    changed = [(a, b) for a, b in zip(before, after, strict=True) if a != b]
    assert changed == [("drill = true", "drill = false")]


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("YES", True), ("on", True), ("1", True), ("false", False), ("0", False)],
)
def test_set_drill_spellings(home: Home, text: str, value: bool) -> None:
    write(home, CLUSTER_FILE, MINIMAL_CLUSTER)
    cluster, _ = set_cluster_keys(home, {"drill": text})
    assert cluster.drill is value
    assert load_cluster(home).drill is value


def test_set_reports_keys_that_need_a_restart(home: Home) -> None:
    write(home, CLUSTER_FILE, MINIMAL_CLUSTER)
    _, restart = set_cluster_keys(home, {"admin_group": "wheel", "max_reboots": "4"})
    assert restart == ["admin_group"]


def test_set_empty_interconnect_removes_it(home: Home) -> None:
    path = write(home, CLUSTER_FILE, MINIMAL_CLUSTER + 'interconnect = "192.168.93.1"\n')
    cluster, _ = set_cluster_keys(home, {"interconnect": ""})
    assert cluster.interconnect is None
    assert "interconnect" not in read_bytes(path).decode()


def test_set_refuses_unknown_keys_listing_the_settable_ones(home: Home) -> None:
    path = write(home, CLUSTER_FILE, HAND_EDITED)
    with pytest.raises(ConfigError) as caught:
        set_cluster_keys(home, {"colour": "blue"})
    message = str(caught.value)
    assert message.startswith("unknown cluster property 'colour' (settable: ")
    for key in SETTABLE:
        assert key in message
    for key in ("return_mode", "heartbeat_timeout", "heartbeat_action", "max_reboots", "drill"):
        assert key in message  # the ones SPEC §8 names
    assert read_bytes(path) == HAND_EDITED.encode()


@pytest.mark.parametrize(
    ("assignments", "key"),
    [
        ({"drill": "maybe"}, "drill"),
        ({"max_reboots": "abc"}, "max_reboots"),
        ({"max_reboots": "-1"}, "max_reboots"),
        ({"max_reboots": "0"}, "max_reboots"),
        ({"heartbeat_timeout": "99999"}, "heartbeat_timeout"),
        ({"final_action": "explode"}, "final_action"),
        ({"return_mode": "never"}, "return_mode"),
        ({"name": "a" * 16}, "name"),
        ({"name": "HOST1"}, "name"),
        ({"ip": "10.0.0.999"}, "ip"),
        ({"interconnect": "10.0.0.2"}, "interconnect"),
        # One bad value spoils the whole command: nothing of it is applied.
        ({"final_action": "reboot", "drill": "maybe"}, "drill"),
        ({"max_reboots": "5", "manager_port": "0"}, "manager_port"),
    ],
)
def test_set_refuses_invalid_values_and_leaves_the_file_unchanged(
    home: Home, assignments: dict[str, str], key: str
) -> None:
    path = write(home, CLUSTER_FILE, HAND_EDITED)
    stat_before = os.stat(path)
    with pytest.raises(ConfigError) as caught:
        set_cluster_keys(home, assignments)
    assert f"'{key}'" in str(caught.value)
    assert read_bytes(path) == HAND_EDITED.encode()
    assert os.stat(path).st_ino == stat_before.st_ino  # not even rewritten
    assert os.listdir(os.path.dirname(path)) == ["cluster.toml"]  # no temporary file left


def test_set_without_a_cluster_says_how_to_create_one(home: Home) -> None:
    with pytest.raises(ConfigError, match="rearm cluster create"):
        set_cluster_keys(home, {"drill": "true"})
    assert not os.path.exists(home.cluster_file)


def test_set_cluster_file_keeps_its_permissions_readable(home: Home) -> None:
    path = write(home, CLUSTER_FILE, MINIMAL_CLUSTER)
    set_cluster_keys(home, {"max_reboots": "2"})
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


# --- load_service --------------------------------------------------------------------------

SERVICE_FILE = "etc/services/x.toml"


def service_error(home: Home, text: str, name: str = "x") -> str:
    write(home, f"etc/services/{name}.toml", text)
    with pytest.raises(ConfigError) as caught:
        load_service(home, name)
    return str(caught.value)


def test_missing_service_file_is_none(home: Home) -> None:
    assert load_service(home, "redis") is None


def test_minimal_service(home: Home) -> None:
    write(home, SERVICE_FILE, 'command = ["/usr/bin/x", "--flag"]\n')
    assert load_service(home, "x") == ServiceDef(name="x", command=("/usr/bin/x", "--flag"))


def test_the_spec_example_service(home: Home) -> None:
    write(
        home,
        "etc/services/redis.toml",
        """\
command = ["/usr/bin/redis-server", "/etc/redis/redis.conf"]  # argv, never through a shell
user = "redis"                 # run as this user (and its groups)
group = "redis"
directory = "/var/lib/redis"   # working directory
environment = { LANG = "C.UTF-8" }
pidfile = "/run/redis/redis-server.pid"  # the command forks: watch the pid written here
stop_signal = "TERM"           # sent to the whole process group by armkill
stop_command = ["/usr/bin/redis-cli", "shutdown"]  # used instead of the signal when given
ready = { tcp = "127.0.0.1:6379" }  # or { http = "http://127.0.0.1/" } or { command = [...] }
description = "a cache"
""",
    )
    assert load_service(home, "redis") == ServiceDef(
        name="redis",
        command=("/usr/bin/redis-server", "/etc/redis/redis.conf"),
        user="redis",
        group="redis",
        directory="/var/lib/redis",
        environment={"LANG": "C.UTF-8"},
        pidfile="/run/redis/redis-server.pid",
        stop_signal="TERM",
        stop_command=("/usr/bin/redis-cli", "shutdown"),
        ready=ReadyCheck(tcp="127.0.0.1:6379"),
    )


def test_service_names_are_case_insensitive(home: Home) -> None:
    write(home, "etc/services/redis.toml", 'command = ["/usr/bin/redis-server"]\n')
    service = load_service(home, "Redis")
    assert service is not None
    assert service.name == "redis"


@pytest.mark.parametrize("name", ["../cluster", ".hidden", "a/b", "", "-x"])
def test_bad_service_names_are_refused_before_any_file_is_read(home: Home, name: str) -> None:
    write(home, "etc/cluster.toml", 'command = ["/usr/bin/x"]\n')
    with pytest.raises(ConfigError, match="service name"):
        load_service(home, name)


@pytest.mark.parametrize(
    ("written", "stored"),
    [("TERM", "TERM"), ("SIGHUP", "HUP"), ("int", "INT"), ("sigusr1", "USR1"), ("KILL", "KILL")],
)
def test_stop_signal_spellings(home: Home, written: str, stored: str) -> None:
    write(home, SERVICE_FILE, f'command = ["/usr/bin/x"]\nstop_signal = "{written}"\n')
    service = load_service(home, "x")
    assert service is not None
    assert service.stop_signal == stored


@pytest.mark.parametrize(
    "ready",
    [
        '{ tcp = "127.0.0.1:6379" }',
        '{ tcp = "[::1]:6379" }',
        '{ tcp = "localhost:80" }',
        '{ http = "http://127.0.0.1:8080/health" }',
        '{ command = ["/usr/bin/redis-cli", "ping"] }',
    ],
)
def test_good_ready_checks(home: Home, ready: str) -> None:
    write(home, SERVICE_FILE, f'command = ["/usr/bin/x"]\nready = {ready}\n')
    service = load_service(home, "x")
    assert service is not None
    assert service.ready is not None
    assert (
        sum(v is not None for v in (service.ready.tcp, service.ready.http, service.ready.command))
        == 1
    )


# Each bad file, the key its error must name, and a word of the rule.
BAD_SERVICES = [
    ("user = 'x'\n", "command", "is required"),
    ('command = "/usr/bin/x"\n', "command", "non-empty list of strings"),
    ("command = []\n", "command", "non-empty list of strings"),
    ('command = ["/usr/bin/x", 3]\n', "command", "non-empty list of strings"),
    ('command = [""]\n', "command", "non-empty list of strings"),
    ('command = ["redis-server"]\n', "command", "absolute path"),
    ('command = ["./redis-server"]\n', "command", "absolute path"),
    ('command = ["/usr/bin/x"]\nstop_signal = "STOP"\n', "stop_signal", "one of TERM"),
    ('command = ["/usr/bin/x"]\nstop_signal = "SIGFOO"\n', "stop_signal", "one of TERM"),
    ('command = ["/usr/bin/x"]\nstop_signal = 15\n', "stop_signal", "string"),
    ('command = ["/usr/bin/x"]\nready = {}\n', "ready", "exactly one of tcp, http or command"),
    (
        'command = ["/usr/bin/x"]\nready = { tcp = "127.0.0.1:1", http = "http://a/" }\n',
        "ready",
        "exactly one of tcp, http or command",
    ),
    (
        'command = ["/usr/bin/x"]\nready = { tcp = "127.0.0.1:1", command = ["/bin/true"] }\n',
        "ready",
        "exactly one",
    ),
    ('command = ["/usr/bin/x"]\nready = "tcp"\n', "ready", "must be a table"),
    ('command = ["/usr/bin/x"]\nready = { tcp = "127.0.0.1" }\n', "ready.tcp", "HOST:PORT"),
    ('command = ["/usr/bin/x"]\nready = { tcp = "6379" }\n', "ready.tcp", "HOST:PORT"),
    ('command = ["/usr/bin/x"]\nready = { tcp = "a b:1" }\n', "ready.tcp", "HOST:PORT"),
    ('command = ["/usr/bin/x"]\nready = { tcp = "h:123456" }\n', "ready.tcp", "HOST:PORT"),
    ('command = ["/usr/bin/x"]\nready = { http = "https://a/" }\n', "ready.http", "http://"),
    ('command = ["/usr/bin/x"]\nready = { udp = "h:1" }\n', "ready.udp", "unknown key"),
    ('command = ["/usr/bin/x"]\nready = { command = "/bin/true" }\n', "ready.command", "list"),
    ('command = ["/usr/bin/x"]\ndirectory = "var/lib"\n', "directory", "absolute path"),
    ('command = ["/usr/bin/x"]\npidfile = "x.pid"\n', "pidfile", "absolute path"),
    ('command = ["/usr/bin/x"]\nenvironment = { A = 1 }\n', "environment", "string values"),
    ('command = ["/usr/bin/x"]\nuser = ""\n', "user", "non-empty string"),
    ('command = ["/usr/bin/x"]\nstop_command = []\n', "stop_command", "non-empty list"),
    ('command = ["/usr/bin/x"]\nrestart = "always"\n', "restart", "unknown key"),
]


@pytest.mark.parametrize(("text", "key", "rule"), BAD_SERVICES)
def test_service_errors_name_the_file_and_the_key(
    home: Home, text: str, key: str, rule: str
) -> None:
    message = service_error(home, text)
    assert message.startswith(f"{SERVICE_FILE}: ")
    assert f"'{key}'" in message
    assert rule in message


def test_unknown_service_key_lists_the_known_ones(home: Home) -> None:
    message = service_error(home, 'command = ["/usr/bin/x"]\nrestart = "always"\n')
    assert message.startswith(f"{SERVICE_FILE}: unknown key 'restart' (known keys: ")
    for key in ("command", "stop_signal", "ready", "description"):
        assert key in message


def test_service_bad_toml(home: Home) -> None:
    message = service_error(home, "command = [\n")
    assert message.startswith(f"{SERVICE_FILE}: not valid TOML")


@pytest.mark.parametrize("signal_name", SIGNALS)
def test_every_listed_stop_signal_is_accepted(home: Home, signal_name: str) -> None:
    write(home, SERVICE_FILE, f'command = ["/usr/bin/x"]\nstop_signal = "{signal_name}"\n')
    service = load_service(home, "x")
    assert service is not None
    assert service.stop_signal == signal_name


def test_ready_tcp_port_out_of_range_is_refused(home: Home) -> None:
    message = service_error(home, 'command = ["/usr/bin/x"]\nready = { tcp = "127.0.0.1:65536" }\n')
    assert message.startswith(f"{SERVICE_FILE}: key 'ready.tcp': ")


# --- groups: load_group (declarative watches) ----------------------------------------------

GROUP_FILE = "etc/groups/g/group.toml"


def group_error(home: Home, text: str) -> str:
    write(home, GROUP_FILE, text)
    with pytest.raises(ConfigError) as caught:
        load_group(home, "g")
    return str(caught.value)


def armload_error(args: list[str]) -> str:
    with pytest.raises(ArmUsageError) as caught:
        parse_armload(args)
    return str(caught.value)


def test_missing_group(home: Home) -> None:
    with pytest.raises(ConfigError, match="no group named 'nope'"):
        load_group(home, "nope")


@pytest.mark.parametrize("name", ["../etc", ".g", "a/b", "", "a b"])
def test_bad_group_names(home: Home, name: str) -> None:
    with pytest.raises(ConfigError, match="group name"):
        load_group(home, name)


def test_empty_group_has_defaults(home: Home) -> None:
    write(home, GROUP_FILE, "")
    assert load_group(home, "g") == GroupConfig(name="g")


def test_group_settings(home: Home) -> None:
    write(
        home,
        GROUP_FILE,
        'auto_start = false\nscript_timeout = 10\nstop_timeout = 0\ndescription = "web"\n',
    )
    assert load_group(home, "g") == GroupConfig(
        name="g", auto_start=False, script_timeout=10, stop_timeout=0, description="web"
    )


def test_declarative_watches_parse_like_armload(home: Home) -> None:
    write(
        home,
        GROUP_FILE,
        """\
[[watches]]
id = "WEB"
service = "Nginx"
adopt = true
retry = 3
hours = 1
interval = 5
wait = 30
script = true

[[watches]]
id = "worker"
command = ["/usr/bin/worker", "--queue", "/R", "jobs"]
user = "nobody"
""",
    )
    group = load_group(home, "g")
    assert group.watches == (
        LoadRequest(
            "WEB",
            RestartPolicy(retry=3, hours=1, interval=5, script=True),
            adopt=True,
            wait=30,
            service="nginx",
        ),
        LoadRequest(
            "worker",
            RestartPolicy(),
            argv=("/usr/bin/worker", "--queue", "/R", "jobs"),
            user="nobody",
        ),
    )
    # The same as the armload lines they stand for.
    assert group.watches[0] == parse_armload(
        ["WEB", "/S", "/A", "/R", "3", "/H", "1", "/INT", "5", "/WAIT", "30", "/SCR", "Nginx"]
    )


def test_declared_retry_out_of_range_gives_the_armload_message(home: Home) -> None:
    message = group_error(home, '[[watches]]\nid = "WEB"\ncommand = ["/usr/bin/x"]\nretry = 12\n')
    expected = armload_error(["WEB", "/R", "12", "/usr/bin/x"])
    assert expected == "/R 12: retry must be a whole number from 1 to 9"
    assert message == f"{GROUP_FILE}: watch 'WEB': {expected}"


@pytest.mark.parametrize(
    ("line", "armload_rule"),
    [
        ("hours = 25", "hour must be a whole number from 1 to 24"),
        ("interval = 3601", "time must be a whole number of seconds from 0 to 3600"),
        ("wait = -1", "time must be a whole number of seconds from 0 to 3600"),
        ("retry = 0", "retry must be a whole number from 1 to 9"),
    ],
)
def test_declared_values_follow_armload_ranges(home: Home, line: str, armload_rule: str) -> None:
    extra = "retry = 1\n" if not line.startswith("retry") else ""
    message = group_error(
        home, f'[[watches]]\nid = "WEB"\ncommand = ["/usr/bin/x"]\n{extra}{line}\n'
    )
    assert message.startswith(f"{GROUP_FILE}: watch 'WEB': ")
    assert armload_rule in message


def test_declared_hours_need_retry(home: Home) -> None:
    message = group_error(home, '[[watches]]\nid = "WEB"\ncommand = ["/usr/bin/x"]\nhours = 1\n')
    assert message.startswith(f"{GROUP_FILE}: watch 'WEB': /H needs /R")


@pytest.mark.parametrize(
    "body",
    [
        'service = "nginx"\ncommand = ["/usr/sbin/nginx"]\n',  # both
        "",  # neither
    ],
)
def test_declared_watch_needs_exactly_one_target(home: Home, body: str) -> None:
    message = group_error(home, f'[[watches]]\nid = "WEB"\n{body}')
    assert message.startswith(f"{GROUP_FILE}: key 'watches[0].service': ")
    assert "exactly one of service" in message


def test_duplicate_declared_ids_are_refused_case_insensitively(home: Home) -> None:
    message = group_error(
        home,
        '[[watches]]\nid = "web"\ncommand = ["/usr/bin/x"]\n'
        '[[watches]]\nid = "WEB"\nservice = "nginx"\n',
    )
    assert message == f"{GROUP_FILE}: watch ID 'WEB' is declared twice"


@pytest.mark.parametrize(
    ("watch", "key", "rule"),
    [
        ('command = ["/usr/bin/x"]\nretry = "3"', "watches[0].retry", "whole number"),
        ('command = ["/usr/bin/x"]\nretry = true', "watches[0].retry", "whole number"),
        ('command = ["/usr/bin/x"]\nrestart = 1', "watches[0].restart", "unknown key"),
        ('command = ["x"]', "watches[0].command", "absolute path"),
        ('command = ["/usr/bin/x"]\nadopt = "yes"', "watches[0].adopt", "true or false"),
    ],
)
def test_declared_watch_key_errors(home: Home, watch: str, key: str, rule: str) -> None:
    message = group_error(home, f'[[watches]]\nid = "WEB"\n{watch}\n')
    assert message.startswith(f"{GROUP_FILE}: ")
    assert f"'{key}'" in message
    assert rule in message


def test_declared_watch_without_id(home: Home) -> None:
    message = group_error(home, '[[watches]]\ncommand = ["/usr/bin/x"]\n')
    assert message == f"{GROUP_FILE}: key 'watches[0].id': is required"


def test_declared_reserved_id(home: Home) -> None:
    message = group_error(home, '[[watches]]\nid = "REARM_X"\ncommand = ["/usr/bin/x"]\n')
    assert "reserved" in message
    assert message.startswith(f"{GROUP_FILE}: watch 'REARM_X': ")


def test_declared_user_with_service_is_refused(home: Home) -> None:
    message = group_error(home, '[[watches]]\nid = "W"\nservice = "nginx"\nuser = "www"\n')
    assert "/U cannot be used with /S" in message


def test_unknown_group_key(home: Home) -> None:
    message = group_error(home, "autostart = true\n")
    assert message.startswith(f"{GROUP_FILE}: unknown key 'autostart'")


def test_group_bad_toml(home: Home) -> None:
    assert group_error(home, "[[watches]\n").startswith(f"{GROUP_FILE}: not valid TOML")


# --- groups: create_group, scripts ----------------------------------------------------------


def test_create_group_writes_config_and_executable_scripts(home: Home) -> None:
    folder = create_group(home, "web", description="front end")
    assert folder == home.group_dir("web")
    assert sorted(os.listdir(folder)) == ["group.toml", "start.sh", "stop.sh"]
    assert load_group(home, "web") == GroupConfig(name="web", description="front end")
    for which in ("start", "stop"):
        path = script_path(home, "web", which)
        assert path == os.path.join(folder, f"{which}.sh")
        assert check_script(path) is None
        mode = stat.S_IMODE(os.stat(path).st_mode)
        assert mode & 0o111 == 0o111
        assert read_bytes(path).startswith(b"#!/bin/sh\n")
    assert group_names(home) == ["web"]


def test_start_script_template_has_start_and_recover_sections(home: Home) -> None:
    create_group(home, "web")
    text = read_bytes(script_path(home, "web", "start")).decode()
    assert 'case "$REARM_EVENT" in' in text
    assert "\nSTART)\n" in text
    assert "\nRECOVER)\n" in text
    case = text.index('case "$REARM_EVENT" in')
    start, recover = text.index("\nSTART)\n"), text.index("\nRECOVER)\n")
    assert case < start < recover < text.index("\nesac\n")
    assert "armload" in text[start:recover]  # where the armload lines go
    stop = read_bytes(script_path(home, "web", "stop")).decode()
    assert 'case "$REARM_EVENT" in' in stop
    assert "\nSTOP)\n" in stop


def test_create_group_auto_start_off(home: Home) -> None:
    create_group(home, "batch", auto_start=False)
    assert load_group(home, "batch").auto_start is False


def test_create_group_twice_is_refused(home: Home) -> None:
    create_group(home, "web")
    start = script_path(home, "web", "start")
    with open(start, "a") as f:
        f.write("# edited\n")
    with pytest.raises(ConfigError, match="group 'web' already exists"):
        create_group(home, "web")
    assert read_bytes(start).endswith(b"# edited\n")


@pytest.mark.parametrize("name", ["../x", "", "a b", ".x"])
def test_create_group_refuses_bad_names(home: Home, name: str) -> None:
    with pytest.raises(ConfigError, match="group name"):
        create_group(home, name)
    assert group_names(home) == []


@pytest.mark.parametrize("description", ['say "hi"', "back\\slash", "two\nlines", "tab\there"])
def test_create_group_description_round_trips(home: Home, description: str) -> None:
    create_group(home, "web", description=description)
    assert load_group(home, "web").description == description


def test_create_group_description_with_a_control_character_round_trips(home: Home) -> None:
    create_group(home, "web", description="carriage\rreturn")
    assert load_group(home, "web").description == "carriage\rreturn"


def test_group_names_lists_only_folders_with_a_group_file(home: Home) -> None:
    assert group_names(home) == []
    create_group(home, "b")
    create_group(home, "a")
    os.makedirs(os.path.join(home.groups_dir, "stray"))
    assert group_names(home) == ["a", "b"]


def test_check_script_missing(home: Home) -> None:
    path = script_path(home, "web", "start")
    assert check_script(path) == f"{path} is missing"


def test_check_script_not_executable(tmp_path: Path) -> None:
    path = tmp_path / "start.sh"
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o644)
    message = check_script(str(path))
    assert message is not None
    assert message == f"{path} is not executable (chmod +x)"
    path.chmod(0o744)
    assert check_script(str(path)) is None


def test_check_script_directory(tmp_path: Path) -> None:
    assert check_script(str(tmp_path)) == f"{tmp_path} is not a regular file"
