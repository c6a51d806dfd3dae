"""The Manager's own settings: the optional [manager] table of cluster.toml.

    [manager]
    enabled = true              # false: only /metrics is served on the management address
    allowed_hosts = ["sre.example.com"]   # more names the browser may use in the address bar
    tls_proxy = false           # true when a TLS proxy serves the Manager as https://
    trusted_proxies = ["127.0.0.1"]  # proxies whose X-Forwarded-For names the client

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
    # Peers whose X-Forwarded-For is believed: the login throttle and the event log then see
    # the real client, not the proxy (every client would otherwise share the proxy's address).
    trusted_proxies: frozenset[str] = frozenset()


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
    proxies = manager.raw("trusted_proxies") or []
    if not isinstance(proxies, list) or not all(
        isinstance(p, str) and ip_or_none(p) is not None for p in proxies
    ):
        raise manager.error(
            "trusted_proxies", 'must be a list of IP addresses of proxies, e.g. ["127.0.0.1"]'
        )
    settings = ManagerSettings(
        enabled=manager.bool_("enabled", True),
        allowed_hosts=tuple(h.lower() for h in hosts),
        tls_proxy=manager.bool_("tls_proxy", False),
        trusted_proxies=frozenset(str(ip_or_none(p)) for p in proxies),
    )
    manager.finish()
    return settings


def ip_or_none(text: str) -> str | None:
    """The address in its canonical form, or None when `text` is not an IP address."""
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def client_address(peer: str | None, forwarded: list[str], proxies: frozenset[str]) -> str:
    """Who is on the other end: the peer itself, unless it is a trusted proxy; then the last
    address of X-Forwarded-For that is not itself a trusted proxy (a proxy appends the address
    it saw; whatever comes before it, the client may have written itself)."""
    address = ip_or_none(peer or "") or peer or "unknown"
    if address not in proxies:
        return address
    hops = [hop.strip() for value in forwarded for hop in value.split(",") if hop.strip()]
    for hop in reversed(hops):
        ip = ip_or_none(hop)
        if ip is None:
            return address  # the proxy sent something that is not an address: trust none of it
        if ip not in proxies:
            return ip
    return address


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
