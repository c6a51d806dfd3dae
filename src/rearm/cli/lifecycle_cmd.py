"""`rearm install`, `rearm uninstall` and `rearm doctor`: parsing and printing only.

The work is in rearm.install (the systemd unit) and rearm.doctor (the checks). `register` adds
the three commands to the `rearm` parser; `python -m rearm.cli.lifecycle_cmd` runs them on
their own, with the same global --home and the same exit statuses.
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from rearm.paths import Home

if TYPE_CHECKING:
    from rearm.install import Runner


def _add_unit_dir(p: argparse.ArgumentParser) -> None:
    from rearm.install import DEFAULT_UNIT_DIR

    p.add_argument(
        "--unit-dir",
        default=DEFAULT_UNIT_DIR,
        metavar="DIR",
        help=f"where the systemd unit lives (default {DEFAULT_UNIT_DIR})",
    )


def _runner(args: argparse.Namespace) -> Runner | None:
    from rearm.install import run_systemctl

    return None if args.no_systemctl else run_systemctl


def cmd_install(args: argparse.Namespace) -> int:
    from rearm.config import load_cluster
    from rearm.install import UnitParams, find_rearm_script, install

    home = Home.from_env(args.home)
    # The daemon cannot start without a cluster, and the watchdog period comes from it: an
    # install before 'rearm cluster create' would only leave a unit restarting in a loop.
    cluster = load_cluster(home)
    params = UnitParams(
        rearm=find_rearm_script(), home=home.root, heartbeat_timeout=cluster.heartbeat_timeout
    )
    install(params, args.unit_dir, _runner(args), print)
    return 0


def cmd_uninstall(args: argparse.Namespace) -> int:
    from rearm.install import uninstall

    uninstall(args.unit_dir, _runner(args), print)
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from rearm.doctor import exit_status, render_text, run_checks, to_json

    checks = run_checks(Home.from_env(args.home), args.unit_dir)
    if args.json:
        print(json.dumps(to_json(checks), indent=2))
    else:
        print(render_text(checks))
    return exit_status(checks)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add install, uninstall and doctor to the `rearm` command's subparsers."""
    p = subparsers.add_parser(
        "install",
        help="install the systemd unit that starts the daemon at boot (no questions asked)",
    )
    _add_unit_dir(p)
    p.add_argument(
        "--no-systemctl",
        action="store_true",
        help="only write the unit file; print the systemctl commands instead of running them",
    )
    p.set_defaults(func=cmd_install)

    p = subparsers.add_parser(
        "uninstall",
        help="stop the daemon and remove its systemd unit (services keep running)",
    )
    _add_unit_dir(p)
    p.add_argument(
        "--no-systemctl",
        action="store_true",
        help="only remove the unit file; print the systemctl commands instead of running them",
    )
    p.set_defaults(func=cmd_uninstall)

    p = subparsers.add_parser(
        "doctor",
        help="check prerequisites: kernel, permissions, addresses, alert targets, unit",
    )
    _add_unit_dir(p)
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.set_defaults(func=cmd_doctor)
