"""`rearm alert test|list|mib`: check alert sinks without the daemon, and print REARM-MIB.

`rearm alert test [SINK]` reads etc/cluster.toml itself and sends one test alert to each sink (or
to SINK) directly, so a receiver can be checked before the daemon runs or while it is down. One
line per sink: name, ok or failed, and the receiver's answer or the reason. Exit 1 if any failed.

Cheap to import (cli/main.py registers it on every run): the alerts package is imported only
when one of these commands runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rearm.paths import Home


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    alert = subparsers.add_parser(
        "alert", help="test the alert sinks ([[alerts]] in cluster.toml), print the MIB"
    )
    sub = alert.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = sub.add_parser(
        "test", help="send a test alert to each sink (or SINK) now, without the daemon"
    )
    p.add_argument("sink", nargs="?", metavar="SINK", help="only this sink (its name)")
    p.add_argument("--json", action="store_true", help="one JSON object per sink")
    p.set_defaults(func=cmd_alert_test)
    p = sub.add_parser("list", help="the configured sinks: name, type, target, filter")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_alert_list)
    p = sub.add_parser("mib", help="print REARM-MIB (for the receiver's MIB directory)")
    p.add_argument(
        "--oid",
        help="register the module at this OID under enterprises (default: the snmp sinks' "
        "enterprise_oid, else 1.3.6.1.4.1.32473)",
    )
    p.set_defaults(func=cmd_alert_mib)


def _home(args: argparse.Namespace) -> Home:
    return Home.from_env(getattr(args, "home", None))


def cmd_alert_test(args: argparse.Namespace) -> int:
    import asyncio

    from rearm.alerts import load_sinks, send_test
    from rearm.config import load_cluster

    home = _home(args)
    cluster = load_cluster(home)
    sinks = load_sinks(home)
    if not sinks:
        print(
            "rearm: no alert sinks configured: add [[alerts]] tables to "
            f"{home.cluster_file} (see docs/alerts.md)",
            file=sys.stderr,
        )
        return 1
    if args.sink is not None:
        chosen = [s for s in sinks if s.name == args.sink]
        if not chosen:
            names = ", ".join(s.name for s in sinks)
            print(f"rearm: no alert sink '{args.sink}' (configured: {names})", file=sys.stderr)
            return 1
        sinks = chosen
    results = asyncio.run(send_test(sinks, cluster.name, cluster.server))
    width = max(len(r.name) for r in results)
    for r in results:
        if args.json:
            print(
                json.dumps(
                    {
                        "name": r.name,
                        "type": r.type,
                        "ok": r.ok,
                        "detail": r.detail,
                        "seconds": round(r.seconds, 3),
                    }
                )
            )
        else:
            outcome = "ok" if r.ok else "failed"
            print(f"{r.name:<{width}}  {r.type:<7}  {outcome:<6}  {r.detail} ({r.seconds:.2f} s)")
    return 0 if all(r.ok for r in results) else 1


def cmd_alert_list(args: argparse.Namespace) -> int:
    from rearm.alerts import load_sinks

    sinks = load_sinks(_home(args))
    rows: list[dict[str, Any]] = [
        {
            "name": s.name,
            "type": s.type,
            "target": s.describe(),
            "kinds": list(s.filter.kinds),
            "min_severity": s.filter.min_severity,
            "timeout": s.timeout,
            "retries": s.retries,
        }
        for s in sinks
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no alert sinks configured ([[alerts]] in cluster.toml; see docs/alerts.md)")
    for r in rows:
        print(f"{r['name']}: {r['target']}")
        print(f"    kinds {', '.join(r['kinds'])}; severity {r['min_severity']} and above")
    return 0


def cmd_alert_mib(args: argparse.Namespace) -> int:
    from rearm.alerts.mib import mib_text

    oid = args.oid
    if oid is None:
        oid = _configured_oid(_home(args))
    try:
        text = mib_text(oid) if oid else mib_text()
    except ValueError as e:
        print(f"rearm: --oid: {e}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


def _configured_oid(home: Home) -> str | None:
    """The snmp sinks' enterprise_oid when they agree on one; None without a usable config."""
    from rearm.alerts import load_sinks
    from rearm.alerts.snmp import SnmpSettings
    from rearm.validate import ConfigError

    try:
        sinks = load_sinks(home)
    except ConfigError:
        return None
    oids = {s.settings.enterprise_oid for s in sinks if isinstance(s.settings, SnmpSettings)}
    return oids.pop() if len(oids) == 1 else None
