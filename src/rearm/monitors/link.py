"""`link`: a network interface's carrier, from /sys/class/net (miiw).

    [[monitors]]
    name = "uplink"
    kind = "link"
    interface = "eth0"

OK while the interface is up with a carrier (the cable is in, the switch port is up); an error
when it is administratively down, has lost its carrier, or does not exist. A few bytes of
sysfs are read on the event loop: sysfs attributes never wait on a device.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass

from rearm.monitors import keys
from rearm.monitors.base import Options, Probe, ProbeEnv, Result, Target, error, ok
from rearm.validate import Table

IFNAME_RE = re.compile(r"^[^/\s:]{1,15}$")
SYS_NET = "/sys/class/net"


@dataclass(frozen=True)
class LinkOptions(Options):
    interface: str

    @property
    def default_failures(self) -> int:
        return 2

    def build(self, env: ProbeEnv) -> Probe:
        return LinkProbe(self)

    def describe(self) -> str:
        return f"link {self.interface}"


def parse(t: Table) -> LinkOptions:
    name = keys.text(t, "interface", required=True)
    assert name is not None
    if not IFNAME_RE.fullmatch(name) or name in (".", ".."):
        raise keys.bad(t, "interface", name, "must be an interface name (1-15 characters, no /)")
    return LinkOptions(interface=name)


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


def link_state(interface: str) -> Result:
    base = f"{SYS_NET}/{interface}"
    try:
        operstate = _read(f"{base}/operstate")
    except FileNotFoundError:
        return error(f"{interface}: no such interface")
    except OSError as e:
        return error(f"{interface}: {e.strerror}")
    try:
        carrier = _read(f"{base}/carrier")
    except OSError as e:
        if e.errno == errno.EINVAL:  # the kernel's answer while the interface is down
            return error(f"{interface}: administratively down (operstate {operstate})")
        return error(f"{interface}: cannot read its carrier: {e.strerror}")
    if carrier != "1":
        return error(f"{interface}: no carrier (operstate {operstate})")
    if operstate not in ("up", "unknown"):
        # "unknown": interfaces without a notion of it (loopback, some tunnels) that carry.
        return error(f"{interface}: carrier but operstate {operstate}")
    return ok(f"{interface}: carrier, operstate {operstate}")


class LinkProbe:
    def __init__(self, options: LinkOptions) -> None:
        self.options = options
        self.step = "reading sysfs"

    async def probe(self, target: Target, deadline: float) -> Result:
        return link_state(self.options.interface)

    async def close(self) -> None:
        return None
