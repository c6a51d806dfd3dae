"""REARM-MIB, shipped in the package (rearm/mib/REARM-MIB.txt), and the same module moved under
another enterprise arc for sites that set `enterprise_oid`."""

from __future__ import annotations

from importlib.resources import files

from rearm.alerts.snmp import DEFAULT_ENTERPRISE_OID, ENTERPRISES, OID_RE

MODULE = "REARM-MIB"
DEFAULT_PLACEMENT = "::= { enterprises 32473 }"


def mib_text(enterprise_oid: str = DEFAULT_ENTERPRISE_OID) -> str:
    """The MIB module, with rearmMIB registered at `enterprise_oid` (1.3.6.1.4.1.N[.M...])."""
    if not OID_RE.fullmatch(enterprise_oid):
        raise ValueError(f"'{enterprise_oid}' is no OID under enterprises (1.3.6.1.4.1.N...)")
    text = files("rearm").joinpath("mib", f"{MODULE}.txt").read_text(encoding="ascii")
    arcs = enterprise_oid[len(ENTERPRISES) + 1 :].replace(".", " ")
    assert DEFAULT_PLACEMENT in text
    return text.replace(DEFAULT_PLACEMENT, f"::= {{ enterprises {arcs} }}")
