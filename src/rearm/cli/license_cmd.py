"""`rearm license`: trust a vendor's public key, register and list license keys on a server;
make a vendor keypair and issue keys with it (vendors, offline).

Parsing and printing only: the rules and the messages live in rearm.license. Refusals raise
ConfigError, which `rearm` prints as one line on stderr with exit status 1. Nothing here needs
the daemon. `python -m rearm.cli.license_cmd [--home DIR] license ...` runs the command on its own.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import time
from typing import TYPE_CHECKING, Any

from rearm.paths import Home
from rearm.validate import ConfigError

if TYPE_CHECKING:
    from rearm import license as licenses

# rearm.license (and cryptography with it) is imported inside the commands: `rearm` registers
# this command on every run, and only the license actions should pay for loading it.


def _home(args: argparse.Namespace) -> Home:
    return Home.from_env(args.home)


def cmd_register(args: argparse.Namespace) -> int:
    from rearm import license as licenses

    home = _home(args)
    # The key may be given as several words (blocks separated by spaces, unquoted).
    lic, previous = licenses.register(home, args.serial, " ".join(args.key), time.time())
    print("The license was registered.")  # the original product's words
    print(f"  {lic.describe()}")
    if previous is not None:
        when = f" on {previous.registered}" if previous.registered else ""
        was = "valid" if previous.status == "valid" else previous.reason
        print(f"  it replaces the key registered for {lic.serial}{when} ({was})")
    return 0


def _row(r: licenses.Registered) -> dict[str, Any]:
    lic = r.license
    return {
        "serial": r.serial,
        "product": lic.product if lic else None,
        "nodes": lic.nodes if lic else None,
        "issued": lic.issued.isoformat() if lic else None,
        "expires": lic.expires.isoformat() if lic and lic.expires else None,
        "status": r.status,
        "reason": r.reason,
        "registered": r.registered,
        "key_id": lic.key_id if lic else None,
        "file": r.file,
    }


def cmd_list(args: argparse.Namespace) -> int:
    from rearm import license as licenses

    home = _home(args)
    now = time.time()
    found = licenses.registered_licenses(home, now)
    problem = licenses.problem_of(found)
    required = licenses.license_required(home)
    rows = [_row(r) for r in found]
    if args.json:
        report = {
            "require_license": required,
            "licensed": problem is None,
            "problem": problem,
            "licenses": rows,
        }
        print(json.dumps(report, indent=2))
        return 0
    if rows:
        table = [("SERIAL", "PRODUCT", "NODES", "ISSUED", "EXPIRES", "STATUS")]
        for row, r in zip(rows, found, strict=True):
            # "valid", "expired on DATE", or "invalid: why"
            status = r.status if r.status == "valid" else f"invalid: {r.reason}"
            if r.status == "expired":
                status = r.reason or "expired"
            table.append(
                (
                    row["serial"],
                    row["product"] or "-",
                    str(row["nodes"] or "-"),
                    row["issued"] or "-",
                    row["expires"] or ("never" if r.license else "-"),
                    status,
                )
            )
        widths = [max(len(line[i]) for line in table) for i in range(len(table[0]) - 1)]
        for line in table:
            cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
            print("  ".join([*cells, line[-1]]))
    else:
        print(f"no licenses registered ({licenses.REGISTER_HINT})")
    if not required:
        print("enforcement: off (require_license = true in cluster.toml turns it on)")
    elif problem is None:
        print("enforcement: on; licensed: groups may go online")
    else:
        print(f"enforcement: on; groups will not go online: {problem}")
    return 0


def _expiry(text: str, today: dt.date) -> dt.date | None:
    if text.lower() == "never":
        return None
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            raise ValueError
        when = dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--expires '{text}': give a date as YYYY-MM-DD, or never") from None
    # A key that is dead on arrival is always a typo of the year.
    if when < today:
        raise ConfigError(f"--expires {when} is in the past (today is {today}, UTC)")
    return when


def _nodes(text: str) -> int:
    from rearm.license import MAX_NODES

    if not re.fullmatch(r"[0-9]{1,6}", text) or not 1 <= int(text) <= MAX_NODES:
        raise ConfigError(f"--nodes '{text}': must be a whole number from 1 to {MAX_NODES}")
    return int(text)


def cmd_issue(args: argparse.Namespace) -> int:
    from rearm import license as licenses

    today = licenses.utc_date(time.time())
    nodes = _nodes(args.nodes)
    expires = _expiry(args.expires, today)
    private = licenses.load_private_key(args.private_key)
    key = licenses.issue(
        private,
        serial=args.serial,
        issued=today,
        nodes=nodes,
        expires=expires,
        product=args.product or licenses.PRODUCT,
    )
    print(key)  # alone on stdout, so that a script can take it as it is
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from rearm import license as licenses

    private_path, public_path, kid = licenses.write_keypair(args.out, args.name)
    print(f"private key: {private_path} (mode 0600: keep it secret and offline; it signs licenses)")
    print(
        f"public key:  {public_path} (key ID {kid}: on each server that should trust it, "
        f"'rearm license trust {os.path.basename(public_path)}')"
    )
    return 0


def cmd_trust(args: argparse.Namespace) -> int:
    from rearm import license as licenses

    path, key = licenses.install_public_key(_home(args), args.public_key)
    print(f"trusted: vendor key {key.key_id.hex()} ({path})")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `license` and its actions to the `rearm` command's subparsers."""
    parser = subparsers.add_parser(
        "license",
        help="register and list license keys; issue them (vendors)",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    p = actions.add_parser(
        "trust", help="trust a vendor's public key (copies it to etc/license-keys/)"
    )
    p.add_argument("public_key", metavar="FILE.pub", help="the vendor's public key, PEM")
    p.set_defaults(func=cmd_trust)

    p = actions.add_parser("register", help="check a license key and register it on this server")
    p.add_argument("--serial", required=True, help="the serial number, e.g. AA000001")
    p.add_argument(
        "--key",
        required=True,
        nargs="+",
        help="the key: blocks of 8 characters; case, spaces and dashes do not matter",
    )
    p.set_defaults(func=cmd_register)

    p = actions.add_parser("list", help="registered licenses and whether they are valid")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = actions.add_parser("issue", help="sign a license key (vendors; needs the private key)")
    p.add_argument("--private-key", required=True, metavar="FILE", help="the vendor's .key file")
    p.add_argument("--serial", required=True, help="the serial it is for, e.g. AA000001")
    p.add_argument("--nodes", default="1", metavar="N", help="licensed nodes (default 1)")
    p.add_argument(
        "--expires",
        default="never",
        metavar="YYYY-MM-DD|never",
        help="last valid day, UTC (default: never)",
    )
    p.add_argument("--product", help="default: rearm")
    p.set_defaults(func=cmd_issue)

    p = actions.add_parser("keygen", help="make a vendor keypair (vendors)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for NAME.key and NAME.pub")
    p.add_argument("--name", default="rearm-vendor", help="file name (default rearm-vendor)")
    p.set_defaults(func=cmd_keygen)
