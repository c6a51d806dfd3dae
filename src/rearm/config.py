"""Configuration files <-> model: loading with validation, and atomic, comment-keeping writes.

Reads use tomllib; writes use tomlkit so an admin's comments and layout survive `cluster set`.
The daemon only reads configuration; the admin CLI (and armem) write it, then ask the daemon to
reload. That keeps one writer per file and lets an admin edit the files by hand as well.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import stat
import tempfile
import tomllib
from typing import Any

from rearm.limits import limits_from
from rearm.model import (
    Cluster,
    FinalAction,
    GroupConfig,
    HeartbeatAction,
    LoadRequest,
    ReadyCheck,
    ReturnMode,
    ServiceDef,
)
from rearm.monitors.config import check_targets, monitors_from
from rearm.paths import Home, make_folders
from rearm.trust import check as check_trusted
from rearm.validate import ConfigError, Table, check_name

CLUSTER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,14}$")
SERVICE_NAME_RE = re.compile(r"^[a-z0-9_@:][a-z0-9_.@:-]{0,254}$")
SIGNALS = ("TERM", "INT", "QUIT", "HUP", "KILL", "USR1", "USR2", "WINCH")


def _display(home: Home, path: str) -> str:
    """Paths in messages are shown relative to REARM_HOME when there is one (shorter, clearer)."""
    if home.root and path.startswith(home.root + os.sep):
        return os.path.relpath(path, home.root)
    return path


def read_toml(home: Home, path: str, *, trust: bool = True) -> dict[str, Any]:
    """The parsed file. With `trust` (the default: every file of etc/ decides what root runs),
    a file that an untrusted user could change is refused with UntrustedFile (rearm.trust)."""
    try:
        if trust:
            check_trusted(path, _display(home, path))
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{_display(home, path)}: not valid TOML: {e}") from None
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{_display(home, path)}: not UTF-8 text (byte {e.start}): TOML files are UTF-8"
        ) from None
    except RecursionError:  # tomllib parses nested arrays and tables by recursion
        raise ConfigError(f"{_display(home, path)}: not valid TOML: nested too deeply") from None
    except OSError as e:
        raise ConfigError(f"{_display(home, path)}: cannot read: {e.strerror}") from None


def write_atomic(path: str, text: str, mode: int = 0o644, group: int | None = None) -> None:
    """Write-then-rename, fsynced: a crash leaves the old file or the new one, never half.
    The file has exactly `mode` (and group `group`, when given), whatever the umask: it is
    created 0600 and given them before it takes the place of the old one."""
    folder = os.path.dirname(path)
    make_folders(folder)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            if group is not None:
                os.fchown(f.fileno(), -1, group)
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dfd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


# --- cluster ---------------------------------------------------------------------------------

# cluster.toml may hold alert secrets (SNMPv3 keys, a webhook secret, a mail password).
CLUSTER_MODE = 0o600


def write_cluster_file(home: Home, text: str) -> None:
    """Write cluster.toml: a new one owner-only (0600); a rewrite keeps the mode and group the
    administrator gave the file (say 0640 for a trusted group), never wider than before and
    never writable by group or others."""
    path = home.cluster_file
    try:
        st = os.stat(path)
    except FileNotFoundError:
        write_atomic(path, text, CLUSTER_MODE)
        return
    write_atomic(path, text, stat.S_IMODE(st.st_mode) & 0o755, group=st.st_gid)


def check_cluster_name(name: str, server: str) -> str:
    if not CLUSTER_NAME_RE.fullmatch(name):
        raise ConfigError(
            f"cluster name '{name}': use 1-15 characters of A-Z, a-z, 0-9, _ and -, "
            "starting with a letter or digit"
        )
    if name.lower() == server.lower():
        raise ConfigError(
            f"cluster name '{name}' equals the server's hostname: choose a different name "
            "(the cluster and the server must be told apart)"
        )
    return name


def _network(address: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The network of ADDR or ADDR/PREFIX; a bare address is taken as a /24 (IPv4) or /64."""
    try:
        iface = ipaddress.ip_interface(address)
    except ValueError:
        raise ConfigError(
            f"address '{address}': not an IP address (write e.g. 10.123.187.1 or 10.123.187.1/24)"
        ) from None
    if "/" not in address:
        prefix = 24 if iface.version == 4 else 64
        return ipaddress.ip_interface(f"{iface.ip}/{prefix}").network
    return iface.network


def address_only(address: str) -> str:
    return str(ipaddress.ip_interface(address).ip)


def check_addresses(ip: str, interconnect: str | None) -> None:
    net = _network(ip)
    if interconnect is None:
        return
    inter = _network(interconnect)
    if net.overlaps(inter):
        raise ConfigError(
            f"interconnect address '{interconnect}' is in the same network as the management "
            f"address '{ip}' ({net}): the interconnect needs a network of its own"
        )


def load_cluster(home: Home, *, trust: bool = True) -> Cluster:
    path = home.cluster_file
    try:
        data = read_toml(home, path, trust=trust)
    except FileNotFoundError:
        raise ConfigError(
            f"no cluster configured ({_display(home, path)} is missing): "
            "run 'rearm cluster create --name NAME --ip ADDR' first"
        ) from None
    return cluster_from_table(Table(data, _display(home, path)))


def cluster_from_table(t: Table) -> Cluster:
    server = t.req_str("server")
    name = t.req_str("name")
    try:
        check_cluster_name(name, server)
    except ConfigError as e:
        raise t.error("name", str(e)) from None
    ip = t.req_str("ip")
    interconnect = t.str_("interconnect")
    for key, address in (("ip", ip), ("interconnect", interconnect)):
        if address is not None:
            try:
                _network(address)
            except ConfigError as e:
                raise t.error(key, str(e)) from None
    try:
        check_addresses(ip, interconnect)
    except ConfigError as e:
        raise t.error("interconnect", str(e)) from None
    cluster = Cluster(
        name=name,
        server=server,
        ip=ip,
        interconnect=interconnect,
        final_action=t.choice("final_action", FinalAction, FinalAction.NONE),
        drill=t.bool_("drill", True),
        return_mode=t.choice("return_mode", ReturnMode, ReturnMode.AUTO),
        heartbeat_timeout=t.int_("heartbeat_timeout", 90, 2, 3600),
        heartbeat_action=t.choice("heartbeat_action", HeartbeatAction, HeartbeatAction.NONE),
        max_reboots=t.int_("max_reboots", 3, 1, 100),
        reboot_window=t.int_("reboot_window", 3600, 60, 7 * 24 * 3600),
        admin_group=t.str_("admin_group"),
        manager_port=t.int_("manager_port", 8470, 1, 65535),
        watchdog_device=t.str_("watchdog_device"),
        read_access=t.str_("read_access", "admin") or "admin",
        pacemaker=t.bool_("pacemaker", False),
    )
    if cluster.read_access not in ("admin", "everyone"):
        raise t.error(
            "read_access",
            'must be "admin" (only admins reach the control socket) '
            'or "everyone" (other users may read status and events)',
        )
    if cluster.watchdog_device is not None and not os.path.isabs(cluster.watchdog_device):
        raise t.error("watchdog_device", "must be an absolute path, e.g. /dev/watchdog")
    # Sections owned by later parts (alerts, manager, licenses) are read by their own loaders.
    t.finish(frozenset({"alerts", "manager", "license", "require_license", "retention"}))
    return cluster


# Keys `rearm cluster set` accepts, with how to turn the command-line text into a TOML value.
def _as_bool(text: str) -> bool:
    low = text.lower()
    if low in ("true", "yes", "on", "1"):
        return True
    if low in ("false", "no", "off", "0"):
        return False
    raise ValueError("must be true or false")


def _as_int(text: str) -> int:
    if not re.fullmatch(r"[0-9]+", text):
        raise ValueError("must be a whole number")
    return int(text)


SETTABLE: dict[str, Any] = {
    "name": str,
    "server": str,
    "ip": str,
    "interconnect": str,
    "final_action": str.lower,
    "drill": _as_bool,
    "return_mode": str.lower,
    "heartbeat_timeout": _as_int,
    "heartbeat_action": str.lower,
    "max_reboots": _as_int,
    "reboot_window": _as_int,
    "admin_group": str,
    "manager_port": _as_int,
    "watchdog_device": str,
    "read_access": str.lower,
    "pacemaker": _as_bool,
}
# What a running daemon cannot take over without a restart.
NEEDS_RESTART = frozenset({"admin_group", "read_access", "ip", "manager_port"})


def new_cluster_text(cluster: Cluster) -> str:
    """The first cluster.toml, commented, so that editing it by hand is easy."""
    lines = [
        "# rearm cluster configuration (SPEC §8). Edit with 'rearm cluster set KEY=VALUE'",
        "# or by hand, then 'rearm reload'.",
        f'name = "{cluster.name}"',
        f'server = "{cluster.server}"',
        "# management address: where the Manager and the remote API listen",
        f'ip = "{cluster.ip}"',
    ]
    if cluster.interconnect:
        lines.append(f'interconnect = "{cluster.interconnect}"')
    lines += [
        "# final action when a watch fails more than /R times in /H hours:",
        "# reboot, shutdown, panic, stopgroup or none (armem /M MODE)",
        f'final_action = "{cluster.final_action.value}"',
        "# drill = true records reboot/shutdown/panic as events and never executes them.",
        "# Real final actions need drill = false here, explicitly.",
        f"drill = {'true' if cluster.drill else 'false'}",
        f'return_mode = "{cluster.return_mode.value}"',
        f"heartbeat_timeout = {cluster.heartbeat_timeout}",
        f'heartbeat_action = "{cluster.heartbeat_action.value}"',
        "# reboot-loop guard: more than max_reboots within reboot_window seconds -> stopgroup",
        f"max_reboots = {cluster.max_reboots}",
        f"reboot_window = {cluster.reboot_window}",
        "",
    ]
    return "\n".join(lines)


def set_cluster_keys(home: Home, assignments: dict[str, str]) -> tuple[Cluster, list[str]]:
    """Apply KEY=VALUE changes to cluster.toml (validated as a whole, written atomically).

    Returns the new cluster and the keys whose change needs a daemon restart.
    """
    import tomlkit  # only the admin CLI writes configuration

    path = home.cluster_file
    try:
        with open(path, encoding="utf-8") as f:
            doc = tomlkit.parse(f.read())
    except FileNotFoundError:
        load_cluster(home)  # raises the "no cluster configured" message
        raise
    except RecursionError:
        raise ConfigError(f"{_display(home, path)}: not valid TOML: nested too deeply") from None
    for key, text in assignments.items():
        convert = SETTABLE.get(key)
        if convert is None:
            raise ConfigError(
                f"unknown cluster property '{key}' (settable: {', '.join(sorted(SETTABLE))})"
            )
        try:
            value = convert(text)
        except ValueError as e:
            raise ConfigError(f"cluster property '{key}': {e}") from None
        if key == "interconnect" and value == "":
            doc.pop(key, None)
        else:
            doc[key] = value
    rendered = tomlkit.dumps(doc)
    cluster = cluster_from_table(Table(tomllib.loads(rendered), _display(home, path)))
    write_cluster_file(home, rendered)
    return cluster, sorted(set(assignments) & NEEDS_RESTART)


# --- services ---------------------------------------------------------------------------------


def _host_port(text: str) -> bool:
    match = re.fullmatch(r"\[?[0-9A-Za-z.:-]+\]?:([0-9]{1,5})", text)
    return match is not None and 1 <= int(match.group(1)) <= 65535


def check_service_name(name: str) -> str:
    low = name.lower()
    if not SERVICE_NAME_RE.fullmatch(low):
        raise ConfigError(
            f"service name '{name}': use 1-255 characters of a-z, 0-9, _ . @ : and -, "
            "not starting with . or -"
        )
    return low


def load_service(home: Home, name: str, *, trust: bool = True) -> ServiceDef | None:
    """The definition of service NAME, or None when there is no file for it."""
    name = check_service_name(name)
    path = home.service_file(name)
    try:
        data = read_toml(home, path, trust=trust)
    except FileNotFoundError:
        return None
    t = Table(data, _display(home, path))
    command = t.argv("command", required=True)
    assert command is not None
    if not os.path.isabs(command[0]):
        raise t.error("command", f"the program '{command[0]}' must be an absolute path")
    stop_signal = (t.str_("stop_signal", "TERM") or "TERM").upper().removeprefix("SIG")
    if stop_signal not in SIGNALS:
        raise t.error("stop_signal", "must be one of " + ", ".join(SIGNALS))
    ready = None
    rt = t.table("ready")
    if rt is not None:
        ready = ReadyCheck(tcp=rt.str_("tcp"), http=rt.str_("http"), command=rt.argv("command"))
        rt.finish()
        chosen = [k for k in ("tcp", "http", "command") if getattr(ready, k) is not None]
        if len(chosen) != 1:
            raise t.error("ready", "give exactly one of tcp, http or command")
        if ready.tcp is not None and not _host_port(ready.tcp):
            raise rt.error("tcp", "must be HOST:PORT, port 1-65535, e.g. 127.0.0.1:6379")
        if ready.http is not None and not ready.http.startswith("http://"):
            raise rt.error("http", "must be an http:// URL, e.g. http://127.0.0.1/")
    directory = t.str_("directory")
    if directory is not None and not os.path.isabs(directory):
        raise t.error("directory", "must be an absolute path")
    pidfile = t.str_("pidfile")
    if pidfile is not None and not os.path.isabs(pidfile):
        raise t.error("pidfile", "must be an absolute path")
    service = ServiceDef(
        name=name,
        command=command,
        user=t.str_("user"),
        group=t.str_("group"),
        directory=directory,
        environment=t.environment("environment"),
        pidfile=pidfile,
        stop_signal=stop_signal,
        stop_command=t.argv("stop_command"),
        ready=ready,
        limits=limits_from(t),
        monitors=monitors_from(t, in_service=True),
    )
    t.finish(frozenset({"description"}))
    return service


# --- groups -----------------------------------------------------------------------------------

START_TEMPLATE = """#!/bin/sh
# Start script of group {name}. rearm runs it with REARM_EVENT set to:
#   START    the group is being brought online
#   RECOVER  a watch started with /SCR failed: REARM_WATCH names it
# armload lines go in the START) section (the original guide's :Normal section).
case "$REARM_EVENT" in
START)
    # armload WATCHID /R 3 /H 1 /INT 5 /path/to/program args...
    # armload WATCHID /S /A /R 3 /H 1 /INT 5 servicename
    ;;
RECOVER)
    # Recovery of $REARM_WATCH: restart what it needs. By default, run the START lines again.
    REARM_EVENT=START exec "$0" "$@"
    ;;
esac
exit 0
"""

STOP_TEMPLATE = """#!/bin/sh
# Stop script of group {name}. rearm runs it with REARM_EVENT=STOP, then ends any watch
# of the group still alive (as armkill would), so nothing is left behind.
case "$REARM_EVENT" in
STOP)
    # armkill WATCHID
    ;;
esac
exit 0
"""


def group_names(home: Home) -> list[str]:
    try:
        entries = sorted(os.listdir(home.groups_dir))
    except FileNotFoundError:
        return []
    return [e for e in entries if os.path.isfile(os.path.join(home.groups_dir, e, "group.toml"))]


def load_group(home: Home, name: str, *, trust: bool = True) -> GroupConfig:
    check_name("group", name)
    path = os.path.join(home.group_dir(name), "group.toml")
    try:
        data = read_toml(home, path, trust=trust)
    except FileNotFoundError:
        raise ConfigError(f"no group named '{name}' (see 'rearm group show')") from None
    where = _display(home, path)
    t = Table(data, where)
    watches = tuple(_watch_decl(w, where) for w in t.tables("watches"))
    keys = [w.watch_id.upper() for w in watches]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise ConfigError(f"{where}: watch ID '{dup}' is declared twice")
    group = GroupConfig(
        name=name,
        auto_start=t.bool_("auto_start", True),
        script_timeout=t.int_("script_timeout", 300, 1, 86400),
        stop_timeout=t.int_("stop_timeout", 40, 0, 3600),
        description=t.str_("description", "", empty_ok=True) or "",
        watches=watches,
        monitors=monitors_from(t, in_service=False),
    )
    t.finish(frozenset({"pacemaker"}))  # read by `rearm export pacemaker` (rearm.pacemaker)
    # A monitor's target is one of the group's watches: declared above, or armloaded by start.sh.
    check_targets(group.monitors, [w.watch_id for w in watches] + _script_watches(home, name))
    return group


ARMLOAD_ID_RE = re.compile(r"^\s*armload\s+([A-Za-z0-9_]+)", re.MULTILINE)


def _script_watches(home: Home, group: str) -> list[str]:
    """The watch IDs the start script's armload lines name (a line per watch, as in the
    guide's start.bat; an ID made up at run time cannot be known here)."""
    try:
        with open(script_path(home, group, "start"), encoding="utf-8", errors="replace") as f:
            return ARMLOAD_ID_RE.findall(f.read())
    except OSError:
        return []


def _watch_decl(t: Table, where: str) -> LoadRequest:
    """A declarative watch is an armload line written as a table: parse it with the same rules."""
    from rearm.arm import ArmUsageError, parse_armload

    args: list[str] = [t.req_str("id")]
    service = t.str_("service")
    command = t.argv("command")
    if (service is None) == (command is None):
        raise t.error("service", 'give exactly one of service = "NAME" or command = [...]')
    if service is not None:
        args.append("/S")
    if t.bool_("adopt", False):
        args.append("/A")
    for key, option in (("retry", "/R"), ("hours", "/H"), ("interval", "/INT"), ("wait", "/WAIT")):
        value = t.raw(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int):
                raise t.error(key, "must be a whole number")
            args += [option, str(value)]
    if t.bool_("script", False):
        args.append("/SCR")
    user = t.str_("user")
    if user is not None:
        args += ["/U", user]
    t.finish()
    if service is not None:
        args.append(service)
    else:
        assert command is not None
        if not os.path.isabs(command[0]):
            raise t.error("command", f"the program '{command[0]}' must be an absolute path")
        args += list(command)
    try:
        return parse_armload(args)
    except ArmUsageError as e:
        raise ConfigError(f"{where}: watch '{args[0]}': {e}") from None


def create_group(home: Home, name: str, auto_start: bool = True, description: str = "") -> str:
    check_name("group", name)
    folder = home.group_dir(name)
    if os.path.exists(os.path.join(folder, "group.toml")):
        raise ConfigError(f"group '{name}' already exists")
    make_folders(folder)
    text = (
        f"# Recovery group {name}: start.sh brings it online, stop.sh takes it offline.\n"
        f"auto_start = {'true' if auto_start else 'false'}   # online when the daemon starts\n"
        "script_timeout = 300   # seconds a start or stop script may run\n"
        "stop_timeout = 40      # armkill /T for watches still alive after stop.sh\n"
        f"description = {_toml_str(description)}\n"
        "# Declarative watches, started before start.sh (same meaning as armload options):\n"
        "# [[watches]]\n"
        '# id = "WEB"\n'
        '# command = ["/usr/sbin/nginx", "-g", "daemon off;"]   # or service = "nginx"\n'
        "# retry = 3\n# hours = 1\n# interval = 5\n"
    )
    write_atomic(os.path.join(folder, "group.toml"), text)
    write_atomic(os.path.join(folder, "start.sh"), START_TEMPLATE.format(name=name), 0o755)
    write_atomic(os.path.join(folder, "stop.sh"), STOP_TEMPLATE.format(name=name), 0o755)
    return folder


def _toml_str(text: str) -> str:
    """A TOML basic string holding `text` exactly: control characters are escaped as well."""
    out = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append({"\n": "\\n", "\t": "\\t"}.get(ch, f"\\u{ord(ch):04X}"))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def script_path(home: Home, group: str, which: str) -> str:
    return os.path.join(home.group_dir(group), f"{which}.sh")


def check_script(path: str) -> str | None:
    """Why the script at `path` cannot be run, or None when it can."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"{path} is missing"
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file"
    if not st.st_mode & 0o111:
        return f"{path} is not executable (chmod +x)"
    return None


def script_refusal(path: str, what: str) -> str | None:
    """Why the daemon will not run the script at `path` (named `what` in the message): it
    cannot be run (check_script), or an untrusted user could change it (rearm.trust)."""
    problem = check_script(path)
    if problem is not None:
        return problem
    try:
        check_trusted(path, what)
    except FileNotFoundError:
        return f"{path} is missing"
    except ConfigError as e:
        return str(e)
    return None
