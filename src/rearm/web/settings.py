"""The Manager's own settings: the optional [manager] table of cluster.toml.

    [manager]
    enabled = true              # false: only /metrics is served on the management address
    allowed_hosts = ["sre.example.com"]   # more names the browser may use in the address bar
    tls_proxy = false           # true when a TLS proxy serves the Manager as https://

The Manager itself speaks plain HTTP on the management address (127.0.0.1 by default). Put a
TLS-terminating proxy in front of it for anything but loopback, and set tls_proxy: the session
cookie is then Secure, and the browser's https:// origin counts as the Manager's own.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from rearm.config import address_only, read_toml
from rearm.model import Cluster
from rearm.paths import Home
from rearm.validate import ConfigError, Table

HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$")


@dataclass(frozen=True)
class ManagerSettings:
    enabled: bool = True
    allowed_hosts: tuple[str, ...] = ()
    tls_proxy: bool = False


def load_settings(home: Home) -> ManagerSettings:
    try:
        data = read_toml(home, home.cluster_file)
    except FileNotFoundError:
        return ManagerSettings()
    manager = Table(data, "cluster.toml").table("manager")
    if manager is None:
        return ManagerSettings()
    hosts = manager.raw("allowed_hosts") or []
    if not isinstance(hosts, list) or not all(
        isinstance(h, str) and HOST_RE.fullmatch(h) for h in hosts
    ):
        raise manager.error("allowed_hosts", 'must be a list of host names, e.g. ["sre.example"]')
    settings = ManagerSettings(
        enabled=manager.bool_("enabled", True),
        allowed_hosts=tuple(h.lower() for h in hosts),
        tls_proxy=manager.bool_("tls_proxy", False),
    )
    manager.finish()
    return settings


def manager_url(address: str, port: int) -> str:
    host = address_only(address)
    if ipaddress.ip_address(host).version == 6:
        host = f"[{host}]"
    return f"http://{host}:{port}/"


def host_names(cluster: Cluster, settings: ManagerSettings) -> frozenset[str]:
    """The names a browser may put in the Host header (without the port).

    Anything else is refused: a page on another site whose name an attacker points at this
    machine (DNS rebinding) is then not served, so it cannot read the Manager's pages.
    """
    names = {address_only(cluster.ip), "localhost", "127.0.0.1", "::1", cluster.server.lower()}
    names.update(settings.allowed_hosts)
    return frozenset(n.lower() for n in names)


def settings_or_problem(home: Home) -> tuple[ManagerSettings | None, str | None]:
    """The settings, or None and why the [manager] table is not usable."""
    try:
        return load_settings(home), None
    except ConfigError as e:
        return None, str(e)
