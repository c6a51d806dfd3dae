"""`rearm doctor`: the prerequisites of a working rearm, each checked and reported with its fix.

Every check is a small function returning `Check(status, name, detail, fix)`. The decisions
(which mode bits are a problem, how an alert target is reached, what a kernel release means)
are pure functions of plain values and are unit-tested; the functions around them only stat,
bind or connect. Statuses:

- FAIL: rearm cannot work correctly, or is unsafe, until this is fixed (exit status 1);
- warn: rearm works, but something is degraded, off, or could not be verified;
- ok.

What doctor never does: open the watchdog device (opening one arms it: the machine would reset
unless something keeps writing to it), send anything to an address that is neither loopback nor
one of this host's own, resolve host names, or change a file.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import pwd
import re
import socket
import stat
import sys
import urllib.parse
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from rearm.model import Cluster, ServiceDef
from rearm.paths import Home
from rearm.validate import ConfigError


class Status(enum.StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"


class Check(NamedTuple):
    status: Status
    name: str
    detail: str
    fix: str = ""


# --- platform ---------------------------------------------------------------------------------

# pidfd_open came with Linux 5.3, but the daemon also reaps its children with
# waitid(P_PIDFD, ...), which came with 5.4: that is the real minimum.
MIN_KERNEL = (5, 4)
MIN_PYTHON = (3, 11)
SETPRIV = "/usr/bin/setpriv"  # the same program backends/process.py runs for /U and `user`
WATCHDOG_DEVICE = "/dev/watchdog"


def kernel_version(release: str) -> tuple[int, int] | None:
    """(major, minor) of a kernel release such as '6.1.0-18-amd64'; None if unreadable."""
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else None


def check_kernel(release: str, pidfd_error: str | None) -> Check:
    """The kernel must give pidfds: exits are seen through them (no polling)."""
    need = ".".join(map(str, MIN_KERNEL))
    fix = f"run a kernel >= {need} (Debian 11 and later have one)"
    if pidfd_error is not None:
        return Check(Status.FAIL, "kernel pidfd", f"kernel {release}: {pidfd_error}", fix)
    version = kernel_version(release)
    if version is not None and version < MIN_KERNEL:
        return Check(Status.FAIL, "kernel pidfd", f"kernel {release} is older than {need}", fix)
    return Check(Status.OK, "kernel pidfd", f"pidfd_open and waitid(P_PIDFD) work ({release})")


def probe_pidfd() -> str | None:
    """Try the two pidfd calls the daemon needs, on this process itself; None when both work."""
    if not hasattr(os, "pidfd_open"):
        return "this Python has no os.pidfd_open"
    try:
        fd = os.pidfd_open(os.getpid())
    except OSError as e:
        return f"pidfd_open failed: {e.strerror}"
    try:
        os.waitid(os.P_PIDFD, fd, os.WEXITED | os.WNOHANG)
    except ChildProcessError:
        pass  # ECHILD: the call exists; a process is simply not its own child
    except OSError as e:
        return f"waitid(P_PIDFD) failed: {e.strerror}"
    finally:
        os.close(fd)
    return None


def check_python(version: Sequence[int], executable: str) -> Check:
    shown = ".".join(map(str, version[:3]))
    if tuple(version[:2]) < MIN_PYTHON:
        need = ".".join(map(str, MIN_PYTHON))
        return Check(
            Status.FAIL,
            "python",
            f"{executable} is Python {shown}",
            f"install rearm into a Python >= {need} (Debian 12: python3)",
        )
    return Check(Status.OK, "python", f"Python {shown} ({executable})")


def check_setpriv(present: bool, needed_by: Sequence[str]) -> Check:
    """setpriv runs targets as another user (armload /U, a service's user/group)."""
    if present:
        return Check(Status.OK, "setpriv", f"{SETPRIV} present (armload /U, service user)")
    fix = "apt-get install util-linux"
    if needed_by:
        return Check(
            Status.FAIL,
            "setpriv",
            f"{SETPRIV} is missing and these services run as another user: " + ", ".join(needed_by),
            fix,
        )
    return Check(Status.WARN, "setpriv", f"{SETPRIV} is missing: armload /U will fail", fix)


# --- configuration ----------------------------------------------------------------------------


def check_configuration(home: Home) -> tuple[list[Check], Cluster | None, list[ServiceDef]]:
    """Load cluster.toml, every group and every service definition as the daemon would."""
    from rearm.config import check_script, group_names, load_cluster, load_group, load_service
    from rearm.config import script_path as group_script

    checks: list[Check] = []
    cluster: Cluster | None = None
    try:
        # trust=False here and below: check_permissions reports untrusted files, once each.
        cluster = load_cluster(home, trust=False)
    except ConfigError as e:
        fix = (
            "rearm cluster create --name NAME --ip ADDR"
            if not os.path.exists(home.cluster_file)
            else "correct it ('rearm cluster set KEY=VALUE' or by hand), then 'rearm reload'"
        )
        checks.append(Check(Status.FAIL, "cluster", str(e), fix))
    else:
        checks.append(Check(Status.OK, "cluster", f"{cluster.name} on server {cluster.server}"))
    groups = 0
    for name in group_names(home):
        try:
            load_group(home, name, trust=False)
        except ConfigError as e:
            checks.append(Check(Status.FAIL, f"group {name}", str(e), "correct group.toml"))
            continue
        groups += 1
        for which in ("start", "stop"):
            problem = check_script(group_script(home, name, which))
            if problem is not None:
                checks.append(
                    Check(
                        Status.FAIL,
                        f"group {name}",
                        f"{which} script: {problem}",
                        f"rearm group edit {name} {which}",
                    )
                )
    services: list[ServiceDef] = []
    for service_name in _service_names(home):
        try:
            service = load_service(home, service_name, trust=False)
        except ConfigError as e:
            checks.append(Check(Status.FAIL, f"service {service_name}", str(e), "correct the file"))
            continue
        if service is not None:
            services.append(service)
    if not any(c.status is Status.FAIL for c in checks):
        checks.append(
            Check(
                Status.OK,
                "configuration",
                f"{groups} group(s) and {len(services)} service definition(s) load",
            )
        )
    return checks, cluster, services


def _service_names(home: Home) -> list[str]:
    try:
        entries = sorted(os.listdir(home.services_dir))
    except FileNotFoundError:
        return []
    return [e.removesuffix(".toml") for e in entries if e.endswith(".toml")]


# --- permissions ------------------------------------------------------------------------------


def file_problems(
    path: str, mode: int, uid: int, owners: Iterable[int], strict: bool
) -> list[Check]:
    """What is wrong with the mode and owner of one configuration path.

    Everything under etc/ decides what root runs: nobody else may write there. `strict` paths
    (group scripts and group.toml, service definitions) are run or read by the daemon as they
    stand, so they must also belong to root or the daemon's user and not be group-writable.
    """
    problems: list[Check] = []
    if strict and uid not in set(owners):
        problems.append(
            Check(
                Status.FAIL,
                "permissions",
                f"{path} belongs to uid {uid}, not to root or the daemon's user",
                f"chown root {path}",
            )
        )
    bits = mode & (0o022 if strict else 0o002)
    if bits:
        who = ("g" if bits & 0o020 else "") + ("o" if bits & 0o002 else "")
        whom = {"g": "its group", "o": "others", "go": "its group and others"}[who]
        problems.append(
            Check(
                Status.FAIL,
                "permissions",
                f"{path} is writable by {whom} (mode {stat.S_IMODE(mode):04o})",
                f"chmod {who}-w {path}",
            )
        )
    return problems


def writable_by(mode: int, uid: int, gid: int, user: int, groups: Iterable[int]) -> bool:
    """Whether user (with these groups) may create files in a directory of this mode/owner."""
    if user == 0:
        return True
    if uid == user:
        return mode & 0o300 == 0o300
    if gid in set(groups):
        return mode & 0o030 == 0o030
    return mode & 0o003 == 0o003


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def check_permissions(home: Home, user: int, groups: Sequence[int]) -> list[Check]:
    from rearm import trust
    from rearm.config import group_names
    from rearm.config import script_path as group_script
    from rearm.web.users import users_file

    owners = {0, user}
    loose = [home.etc, home.groups_dir, home.services_dir]
    if home.root is not None:
        loose.insert(0, home.root)
    strict: list[str] = [home.cluster_file]
    for name in group_names(home):
        loose.append(home.group_dir(name))
        strict += [
            os.path.join(home.group_dir(name), "group.toml"),
            group_script(home, name, "start"),
            group_script(home, name, "stop"),
        ]
    strict += [home.service_file(name) for name in _service_names(home)]
    strict.append(users_file(home))  # the Manager's users: who may edit the scripts
    checks: list[Check] = []
    reported: set[str] = set()
    seen = 0
    for path in loose:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue  # what is missing is reported by the configuration checks
        seen += 1
        found_here = file_problems(path, st.st_mode, st.st_uid, owners, strict=False)
        if found_here:
            reported.add(path)
        checks += found_here
    name = _user_name(user)
    # What the daemon reads or runs is judged as the daemon judges it (rearm.trust): the file
    # and every folder above it. A folder shared by many files is reported once.
    for path in strict:
        try:
            found = trust.findings(trust.chain_of(path), owners, name)
        except FileNotFoundError:
            continue
        seen += 1
        for f in found:
            if f.path not in reported:
                reported.add(f.path)
                checks.append(Check(Status.FAIL, "permissions", f.problem, f.fix))
    for folder in (home.var, home.run):
        try:
            st = os.stat(folder)
        except FileNotFoundError:
            checks.append(
                Check(
                    Status.WARN,
                    "permissions",
                    f"{folder} does not exist yet (the daemon creates it when it starts)",
                    f"mkdir -p {folder}",
                )
            )
            continue
        seen += 1
        if not writable_by(st.st_mode, st.st_uid, st.st_gid, user, groups):
            checks.append(
                Check(
                    Status.FAIL,
                    "permissions",
                    f"{folder} is not writable by {name}, the daemon's user",
                    f"chown {name} {folder}",
                )
            )
        elif os.statvfs(folder).f_flag & os.ST_RDONLY:
            checks.append(
                Check(
                    Status.FAIL,
                    "permissions",
                    f"{folder} is on a read-only file system",
                    "mount it read-write, or give REARM_HOME a writable place",
                )
            )
    if not any(c.status is not Status.OK for c in checks):
        checks.append(
            Check(
                Status.OK,
                "permissions",
                f"{seen} paths: etc/ not writable by others, scripts and configuration files "
                f"(and every folder above them) writable only by their owner (root or {name}), "
                f"var/ and run/ writable by {name}",
            )
        )
    return checks


# --- the daemon -------------------------------------------------------------------------------


def check_daemon(socket_path: str, timeout: float = 2.0) -> Check:
    """Ping the daemon. Not running is a warning (doctor is also run before the first start);
    a socket that accepts but does not answer is a hung daemon: that fails."""
    from rearm.api.client import ApiFailure, DaemonNotRunning, call

    start = "systemctl start rearm (or 'rearm daemon' by hand)"
    if not os.path.exists(socket_path):
        return Check(Status.WARN, "daemon", f"not running (no control socket {socket_path})", start)
    try:
        result = call(socket_path, "ping", timeout=timeout)
    except DaemonNotRunning as e:
        return Check(Status.WARN, "daemon", str(e), start)
    except TimeoutError:
        return Check(
            Status.FAIL,
            "daemon",
            f"{socket_path} accepts but the daemon did not answer within {timeout:g} s: hung",
            "journalctl -u rearm; systemctl restart rearm (its services keep running)",
        )
    except (ApiFailure, OSError, ValueError) as e:
        return Check(Status.FAIL, "daemon", f"{socket_path}: {e}", "journalctl -u rearm")
    pid = result.get("pid") if isinstance(result, dict) else None
    version = result.get("version") if isinstance(result, dict) else None
    return Check(Status.OK, "daemon", f"running (pid {pid}, version {version}), answers ping")


# --- addresses --------------------------------------------------------------------------------


def check_addresses(
    cluster: Cluster, is_local: Callable[[str], bool], nonlocal_bind: Callable[[int], bool]
) -> list[Check]:
    """The management address and the interconnect must be addresses of this host.

    `is_local` binds a socket to the address (nothing is sent); with ip_nonlocal_bind set the
    kernel lets any address bind, so the answer means nothing and the check says so.
    """
    from rearm.config import address_only
    from rearm.config import check_addresses as separate_networks

    checks: list[Check] = []
    for label, key, address in (
        ("management address", "ip", cluster.ip),
        ("interconnect", "interconnect", cluster.interconnect),
    ):
        if address is None:
            continue
        ip = address_only(address)
        version = ipaddress.ip_address(ip).version
        if nonlocal_bind(version):
            checks.append(
                Check(
                    Status.WARN,
                    label,
                    f"{ip}: not checked (net.ipv{version}.ip_nonlocal_bind=1 lets any "
                    "address bind)",
                    "ip -brief address  # see that it is listed",
                )
            )
        elif is_local(ip):
            checks.append(Check(Status.OK, label, f"{ip} is an address of this host"))
        else:
            checks.append(
                Check(
                    Status.FAIL,
                    label,
                    f"{ip} is not an address of this host",
                    f"add it to an interface (ip address add {address} dev IFACE), or "
                    f"'rearm cluster set {key}=ADDR' with an address from 'ip -brief address'",
                )
            )
    if cluster.interconnect is not None:
        try:
            separate_networks(cluster.ip, cluster.interconnect)
        except ConfigError as e:
            checks.append(
                Check(Status.FAIL, "interconnect", str(e), "rearm cluster set interconnect=ADDR")
            )
        else:
            checks.append(
                Check(
                    Status.OK,
                    "interconnect",
                    "in a network of its own (not the management address's)",
                )
            )
    return checks


def nonlocal_bind_enabled(version: int) -> bool:
    try:
        with open(f"/proc/sys/net/ipv{version}/ip_nonlocal_bind") as f:
            return f.read().strip() == "1"
    except OSError:
        return False


# --- alert targets ----------------------------------------------------------------------------

# The receivers' default ports, as the alert sinks read their tables (rearm/alerts/).
DEFAULT_PORTS = {"snmp": 162, "syslog": 514, "webhook": 80}
MAIL_PORTS = {"starttls": 587, "tls": 465, "none": 25}  # by the mail table's `security`
SYSLOG_DEFAULT = "/dev/log"  # a syslog table without a target writes to the local socket
UDP_TYPES = frozenset({"snmp", "syslog"})
URL_SCHEMES: dict[str, tuple[str, int | None]] = {
    "http": ("tcp", 80),
    "https": ("tcp", 443),
    "smtp": ("tcp", 25),
    "smtps": ("tcp", 465),
    "tcp": ("tcp", None),
    "udp": ("udp", None),
}


@dataclass(frozen=True)
class Endpoint:
    """Where an alert goes: a TCP or UDP host and port, or a Unix socket path."""

    transport: str  # "tcp", "udp" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""

    def __str__(self) -> str:
        if self.transport == "unix":
            return self.path
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport} {host}:{self.port}"


def _port(value: object) -> int | None:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 65535:
        return value
    return None


def _split_host_port(text: str) -> tuple[str, str | None]:
    """'h:p', '[v6]:p', 'h' or a bare IPv6 address -> (host, port text or None)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, rest[1:] if rest.startswith(":") else None
    try:
        ipaddress.IPv6Address(text)
        return text, None
    except ValueError:
        pass
    host, sep, port = text.rpartition(":")
    return (host, port) if sep else (text, None)


def alert_endpoint(alert: Mapping[str, Any]) -> Endpoint | str:
    """How one [[alerts]] table is reached, or a string saying why that cannot be told."""
    kind = str(alert.get("type", "")).lower()
    transport = "udp" if kind in UDP_TYPES else "tcp"
    default_port = DEFAULT_PORTS.get(kind)
    if kind == "mail":
        default_port = MAIL_PORTS.get(str(alert.get("security", "starttls")).lower())
    url, target, host = alert.get("url"), alert.get("target"), alert.get("host")
    if kind == "syslog" and url is None and target is None and host is None:
        target = SYSLOG_DEFAULT
    if isinstance(target, str) and target.startswith("/"):
        return Endpoint("unix", path=target)
    if isinstance(target, str) and "://" in target:
        url = target
    if isinstance(url, str):
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in URL_SCHEMES:
            return f"{url}: scheme '{scheme}' is not one doctor can check"
        transport, scheme_port = URL_SCHEMES[scheme]
        try:
            port = parts.port or scheme_port or default_port
        except ValueError:
            return f"{url}: the port is not a number from 1 to 65535"
        if not parts.hostname or port is None:
            return f"{url}: no host or port in it"
        return Endpoint(transport, parts.hostname, port)
    if isinstance(target, str):
        host_text, port_text = _split_host_port(target)
        port = _port(port_text) if port_text is not None else default_port
    elif isinstance(host, str):
        host_text = host
        port = _port(alert["port"]) if "port" in alert else default_port
    else:
        return "no target, url or host to check"
    if not host_text or port is None:
        return f"'{target or host}': give HOST:PORT (port 1-65535)"
    return Endpoint(transport, host_text, port)


def local_ip(host: str, is_local: Callable[[str], bool]) -> str | None:
    """The address to talk to when `host` is loopback or one of this host's, else None.

    Names other than localhost are not resolved: a DNS query could leave the machine.
    """
    if host.lower() == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return str(ip) if ip.is_loopback or is_local(str(ip)) else None


def udp_bound(table: Iterable[str], v6: bool) -> set[tuple[str, int]]:
    """(address, port) of every socket in the text of /proc/net/udp (or udp6)."""
    bound: set[tuple[str, int]] = set()
    for line in table:
        fields = line.split()
        if len(fields) < 2 or ":" not in fields[1] or fields[0] == "sl":
            continue
        hex_ip, _, hex_port = fields[1].partition(":")
        try:
            raw = bytes.fromhex(hex_ip)
            port = int(hex_port, 16)
        except ValueError:
            continue
        # The kernel prints each 32-bit word of the address in host (little-endian) order.
        words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
        try:
            address = ipaddress.IPv6Address(words) if v6 else ipaddress.IPv4Address(words)
        except ValueError:
            continue
        bound.add((str(address), port))
    return bound


def _udp_listening(ip: str, port: int) -> bool:
    bound: set[tuple[str, int]] = set()
    for path, v6 in (("/proc/net/udp", False), ("/proc/net/udp6", True)):
        try:
            with open(path) as f:
                bound |= udp_bound(f, v6)
        except OSError:
            continue
    wildcard = "::" if ipaddress.ip_address(ip).version == 6 else "0.0.0.0"
    return any(candidate in bound for candidate in ((ip, port), (wildcard, port), ("::", port)))


def check_alert(
    label: str,
    alert: Mapping[str, Any],
    is_local: Callable[[str], bool],
    timeout: float = 2.0,
) -> Check:
    endpoint = alert_endpoint(alert)
    if isinstance(endpoint, str):
        return Check(Status.WARN, label, endpoint, "correct the [[alerts]] table in cluster.toml")
    fix = f"start the receiver on {endpoint}, or correct the alert's target in cluster.toml"
    if endpoint.transport == "unix":
        try:
            is_socket = stat.S_ISSOCK(os.stat(endpoint.path).st_mode)
        except OSError as e:
            return Check(Status.WARN, label, f"{endpoint.path}: {e.strerror}", fix)
        if not is_socket:
            return Check(Status.WARN, label, f"{endpoint.path} is not a socket", fix)
        return Check(Status.OK, label, f"{endpoint.path} is a socket")
    ip = local_ip(endpoint.host, is_local)
    if ip is None:
        why = "a host name, not resolved" if _is_name(endpoint.host) else "not on this host"
        return Check(
            Status.WARN,
            label,
            f"{endpoint}: not checked ({why}; rearm doctor only talks to loopback and this "
            "host's own addresses)",
        )
    if endpoint.transport == "udp":
        # UDP has no handshake: see whether a socket is bound there, without sending anything.
        if _udp_listening(ip, endpoint.port):
            return Check(Status.OK, label, f"{endpoint}: a socket is bound to it")
        return Check(Status.WARN, label, f"{endpoint}: nothing listens there", fix)
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((ip, endpoint.port))
        except TimeoutError:
            return Check(Status.WARN, label, f"{endpoint}: no answer within {timeout:g} s", fix)
        except OSError as e:
            return Check(Status.WARN, label, f"{endpoint}: {e.strerror or e}", fix)
    return Check(Status.OK, label, f"{endpoint} accepts connections")


def _is_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return True
    return False


def check_alerts(home: Home, is_local: Callable[[str], bool]) -> list[Check]:
    from rearm.config import read_toml

    try:
        data = read_toml(home, home.cluster_file, trust=False)
    except (FileNotFoundError, ConfigError):
        return []  # the cluster check has said what is wrong with the file
    alerts = data.get("alerts")
    if alerts is None:
        return [Check(Status.OK, "alerts", "no alert targets configured")]
    if not isinstance(alerts, list) or not all(isinstance(a, dict) for a in alerts):
        return [
            Check(
                Status.WARN,
                "alerts",
                "'alerts' in cluster.toml is not an array of tables",
                "write each alert target as an [[alerts]] table",
            )
        ]
    return [
        check_alert(f"alert {i} ({a.get('type', '?')})", a, is_local)
        for i, a in enumerate(alerts, 1)
    ]


# --- watchdog, drill, unit --------------------------------------------------------------------


def check_watchdog(configured: str | None, mode_of: Callable[[str], int | None]) -> Check:
    """Is there a watchdog device? `mode_of` is a stat: a watchdog is NEVER opened here, since
    opening one arms it and the machine resets unless something keeps writing to it."""
    path = configured or WATCHDOG_DEVICE
    mode = mode_of(path)
    present = mode is not None and stat.S_ISCHR(mode)
    if configured is not None:
        if present:
            return Check(Status.OK, "watchdog", f"{path} present (watchdog_device; not opened)")
        return Check(
            Status.FAIL,
            "watchdog",
            f"watchdog_device {path} "
            + ("does not exist" if mode is None else "is not a character device")
            + ": the daemon cannot start its heartbeat",
            "modprobe softdog (or the board's watchdog driver), or correct or remove "
            "watchdog_device in cluster.toml",
        )
    if present:
        return Check(
            Status.OK,
            "watchdog",
            f"{path} present, not used (set watchdog_device={path} to have a hung machine reset)",
        )
    return Check(
        Status.WARN,
        "watchdog",
        f"no {path}: a machine that hangs hard is not reset by itself",
        "modprobe softdog (or the board's driver), then "
        f"'rearm cluster set watchdog_device={path}'",
    )


def stat_mode(path: str) -> int | None:
    try:
        return os.stat(path).st_mode
    except OSError:
        return None


def check_drill(cluster_drill: bool, env_forced: bool, final_action: str) -> Check:
    """Drill on is the safe state; OFF is a warning so that nobody is surprised by a reboot."""
    if cluster_drill:
        return Check(
            Status.OK, "drill", "on: reboot, shutdown and panic are recorded, not executed"
        )
    detail = f"OFF: final actions are real (final action now: {final_action})"
    if env_forced:
        detail += "; REARM_DRILL is set in this shell, but a daemon started by systemd lacks it"
    return Check(
        Status.WARN,
        "drill",
        detail,
        "intended for production; for a rehearsal: rearm cluster set drill=true",
    )


def check_unit(unit_dir: str, expected: str | None) -> Check:
    """Is rearm.service installed and enabled, and is it what `rearm install` writes now?"""
    from rearm.install import UNIT_NAME, describe_changes, is_enabled, unit_path

    path = unit_path(unit_dir)
    try:
        with open(path, encoding="utf-8") as f:
            current = f.read()
    except FileNotFoundError:
        return Check(
            Status.WARN,
            "systemd unit",
            f"not installed (no {path}): the daemon does not start at boot",
            "rearm install",
        )
    except OSError as e:
        return Check(Status.WARN, "systemd unit", f"{path}: {e.strerror}", "rearm install")
    if expected is not None and current != expected:
        changes = "; ".join(describe_changes(current, expected))
        return Check(
            Status.WARN,
            "systemd unit",
            f"{path} differs from what 'rearm install' writes now: {changes}",
            "rearm install  # then: systemctl restart rearm (services keep running)",
        )
    if not is_enabled(unit_dir):
        return Check(
            Status.WARN,
            "systemd unit",
            f"{path} installed but not enabled: the daemon does not start at boot",
            f"systemctl enable --now {UNIT_NAME}",
        )
    return Check(Status.OK, "systemd unit", f"{path} installed and enabled")


def _expected_unit(home: Home, cluster: Cluster | None) -> str | None:
    from rearm.install import UnitParams, find_rearm_script, unit_text

    if cluster is None:
        return None
    try:
        return unit_text(UnitParams(find_rearm_script(), home.root, cluster.heartbeat_timeout))
    except ConfigError:
        return None


# --- all of them ------------------------------------------------------------------------------


def check_scripts(home: Home, problem_of: Callable[[str], str | None]) -> list[Check]:
    """Every group script parses (`sh -n`, rearm.scriptcheck): a syntax error found now is not
    a group in error at the next boot."""
    from rearm.config import group_names, script_path

    failed: list[Check] = []
    checked = 0
    for group in group_names(home):
        for which in ("start", "stop"):
            path = script_path(home, group, which)
            if not os.path.exists(path):
                continue
            checked += 1
            problem = problem_of(path)
            if problem is not None:
                failed.append(
                    Check(
                        Status.FAIL,
                        "scripts",
                        f"{which}.sh of group {group} does not parse: "
                        + " / ".join(problem.replace(path, f"{which}.sh").splitlines()),
                        f"rearm group edit {group} {which}",
                    )
                )
    if failed:
        return failed
    return [Check(Status.OK, "scripts", f"{checked} group script(s) parse (sh -n)")]


def _unreadable(name: str, e: OSError) -> Check:
    where = f" ({e.filename})" if e.filename else ""
    return Check(
        Status.WARN,
        name,
        f"could not be checked: {e.strerror or e}{where}",
        "run rearm doctor as root (or as the daemon's user)",
    )


def _guarded(name: str, run: Callable[[], list[Check]]) -> list[Check]:
    """A check that cannot read what it needs says so, instead of ending doctor."""
    try:
        return run()
    except OSError as e:
        return [_unreadable(name, e)]


def run_checks(home: Home, unit_dir: str) -> list[Check]:
    from rearm.daemon.actions import drill_forced_by_env
    from rearm.netcheck import is_local_address
    from rearm.scriptcheck import syntax_problem

    user = os.geteuid()
    groups = sorted({os.getegid(), *os.getgroups()})
    checks = [
        check_python(tuple(sys.version_info[:3]), sys.executable),
        check_kernel(os.uname().release, probe_pidfd()),
    ]
    cluster: Cluster | None = None
    services: list[ServiceDef] = []
    try:
        config_checks, cluster, services = check_configuration(home)
    except OSError as e:
        config_checks = [_unreadable("configuration", e)]
    checks += config_checks
    needs_setpriv = [s.name for s in services if s.user is not None or s.group is not None]
    checks.append(check_setpriv(os.access(SETPRIV, os.X_OK), needs_setpriv))
    checks += _guarded("permissions", lambda: check_permissions(home, user, groups))
    checks += _guarded("scripts", lambda: check_scripts(home, syntax_problem))
    checks.append(check_daemon(home.socket))
    if cluster is not None:
        c = cluster
        checks += check_addresses(c, is_local_address, nonlocal_bind_enabled)
        checks += _guarded("alerts", lambda: check_alerts(home, is_local_address))
        checks.append(check_watchdog(c.watchdog_device, stat_mode))
        checks.append(check_drill(c.drill, drill_forced_by_env(), c.final_action.value))
    checks.append(check_unit(unit_dir, _expected_unit(home, cluster)))
    return checks


def exit_status(checks: Iterable[Check]) -> int:
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


def _summary(checks: Sequence[Check]) -> tuple[int, int]:
    return (
        sum(c.status is Status.FAIL for c in checks),
        sum(c.status is Status.WARN for c in checks),
    )


def render_text(checks: Sequence[Check]) -> str:
    width = max((len(c.name) for c in checks), default=0)
    lines = []
    for c in checks:
        lines.append(f"{c.status.value:<4}  {c.name:<{width}}  {c.detail}")
        if c.fix:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {c.fix}")
    failures, warnings = _summary(checks)
    if failures:
        lines.append(
            f"{failures} check(s) FAILED, {warnings} warning(s): rearm cannot work correctly "
            "until the failures are fixed"
        )
    else:
        lines.append(f"no failures, {warnings} warning(s)")
    return "\n".join(lines)


def to_json(checks: Sequence[Check]) -> dict[str, Any]:
    failures, warnings = _summary(checks)
    return {
        "checks": [
            {"status": c.status.value, "name": c.name, "detail": c.detail, "fix": c.fix}
            for c in checks
        ],
        "failures": failures,
        "warnings": warnings,
    }
