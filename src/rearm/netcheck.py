"""Is an address one of this host's? Binding a socket to it answers without sending anything."""

from __future__ import annotations

import ipaddress
import socket


def is_local_address(address: str) -> bool:
    """True when `address` (ADDR or ADDR/PREFIX) is configured on this host."""
    ip = ipaddress.ip_interface(address).ip
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind((str(ip), 0))
        except OSError:
            return False
    return True
