"""`rearm`: the admin command. Parsing and printing only; the work is in config and the daemon.

Configuration commands (cluster, group create/delete/edit) write files themselves and then
ask a running daemon to reload; operations on live state (status, group start/stop, log) go
through the daemon's control API.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from typing import Any

from rearm.api.client import ApiFailure, DaemonNotRunning, call
from rearm.cli import (
    alert_cmd,
    completion,
    helptext,
    history_cmd,
    license_cmd,
    lifecycle_cmd,
    pacemaker_cmd,
    passwd_cmd,
    template_cmd,
)
from rearm.paths import Home
from rearm.validate import ConfigError


class CommandError(Exception):
    """A refusal from the admin CLI: one line on stderr, exit 1."""


def _home(args: argparse.Namespace) -> Home:
    return Home.from_env(args.home)


def _api(args: argparse.Namespace, op: str, payload: dict[str, Any] | None = None) -> Any:
    return call(_home(args).socket, op, payload or {})


def _reload_if_running(home: Home) -> str | None:
    try:
        result = call(home.socket, "reload")
    except DaemonNotRunning:
        return None
    needs = result.get("needs_restart") if isinstance(result, dict) else None
    if needs:
        return "applied; these need a daemon restart to take effect: " + ", ".join(needs)
    return "applied to the running daemon"


def _print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, sort_keys=False))


# --- cluster ----------------------------------------------------------------------------------
def cmd_cluster_create(args: argparse.Namespace) -> int:
    from rearm.config import (
        check_addresses,
        check_cluster_name,
        new_cluster_text,
        write_cluster_file,
    )
    from rearm.model import Cluster, FinalAction
    from rearm.paths import make_folders

    home = _home(args)
    if os.path.exists(home.cluster_file) and not args.force:
        raise CommandError(
            f"a cluster is already configured in {home.cluster_file} "
            "(use 'rearm cluster set', or --force to replace it)"
        )
    server = args.server or socket.gethostname()
    check_cluster_name(args.name, server)
    check_addresses(args.ip, args.interconnect)
    if not args.no_address_check:
        _check_local(args.ip, args.interconnect)
    cluster = Cluster(
        name=args.name,
        server=server,
        ip=args.ip,
        interconnect=args.interconnect,
        final_action=FinalAction(args.final_action),
    )
    write_cluster_file(home, new_cluster_text(cluster))  # 0600: it will hold alert secrets
    for folder in (home.groups_dir, home.services_dir):
        make_folders(folder)  # 0755 whatever the umask: the daemon refuses shared folders
    print(f"cluster {cluster.name} created on server {server} ({home.cluster_file})")
    return 0


def _check_local(*addresses: str | None) -> None:
    from rearm.netcheck import is_local_address

    for address in addresses:
        if address is not None and not is_local_address(address):
            raise CommandError(
                f"address '{address}' is not an address of this host (see 'ip addr'); add it "
                "to an interface first, or give --no-address-check to prepare a configuration "
                "for another machine"
            )


def cmd_cluster_show(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from rearm.config import load_cluster
    from rearm.web.settings import manager_url

    home = _home(args)
    cluster = asdict(load_cluster(home))
    cluster = {k: (v.value if hasattr(v, "value") else v) for k, v in cluster.items()}
    if os.environ.get("REARM_DRILL", "") not in ("", "0"):
        cluster["drill_forced_by_environment"] = True
    cluster["manager_url"] = manager_url(cluster["ip"], cluster["manager_port"])
    if args.json:
        _print_json(cluster)
    else:
        width = max(len(k) for k in cluster)
        for key, value in cluster.items():
            print(f"{key:<{width}}  {'' if value is None else value}")
    return 0


def cmd_cluster_set(args: argparse.Namespace) -> int:
    from rearm.config import set_cluster_keys

    assignments: dict[str, str] = {}
    for item in args.assignments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"'{item}': write KEY=VALUE, e.g. return_mode=manual")
        assignments[key.strip()] = value.strip()
    home = _home(args)
    if not args.no_address_check:
        _check_local(assignments.get("ip"), assignments.get("interconnect") or None)
    _, needs_restart = set_cluster_keys(home, assignments)
    print("saved: " + ", ".join(f"{k}={v}" for k, v in assignments.items()))
    applied = _reload_if_running(home)
    if applied:
        print(applied)
    elif needs_restart:
        print("the daemon is not running; the change applies when it starts")
    return 0


# --- groups -----------------------------------------------------------------------------------
def cmd_group_create(args: argparse.Namespace) -> int:
    from rearm.config import create_group, load_cluster

    home = _home(args)
    load_cluster(home)  # a group belongs to a cluster: refuse clearly before there is one
    folder = create_group(
        home, args.name, auto_start=not args.no_auto_start, description=args.description or ""
    )
    print(
        f"group {args.name} created: edit {folder}/start.sh and stop.sh "
        f"('rearm group edit {args.name} start')"
    )
    return 0


def _group_state(home: Home, name: str) -> str | None:
    try:
        status = call(home.socket, "status")
    except DaemonNotRunning:
        return None
    for group in status["groups"]:
        if group["name"] == name:
            return str(group["state"])
    return None


def cmd_group_delete(args: argparse.Namespace) -> int:
    from rearm.config import load_group

    home = _home(args)
    load_group(home, args.name)
    state = _group_state(home, args.name)
    if state not in (None, "offline"):
        raise CommandError(
            f"group '{args.name}' is {state}: stop it first ('rearm group stop {args.name}')"
        )
    from rearm import uses

    only = [
        s
        for s in uses.only_used_by(uses.services_by_group(home), args.name)
        if os.path.exists(home.service_file(s))
    ]
    try:
        live = uses.live_users(call(home.socket, "status"), home)
    except DaemonNotRunning:
        live = {}
    shutil.rmtree(home.group_dir(args.name))
    print(f"group {args.name} deleted")
    _reload_if_running(home)  # the daemon forgets it now
    kept = [s for s in only if home.service_file(s) in live]
    for s in kept:
        print(f"kept etc/services/{s}.toml: used by {live[home.service_file(s)]}")
    only = [s for s in only if s not in kept]
    if only and args.purge:
        for s in only:
            os.unlink(home.service_file(s))
            print(f"removed etc/services/{s}.toml (only group {args.name} used it)")
    elif only:
        names = ", ".join(f"etc/services/{s}.toml" for s in only)
        print(
            f"service definitions only group {args.name} used: {names} "
            f"(remove them with 'rearm group delete {args.name} --purge' next time, or by hand)"
        )
    return 0


def cmd_group_start(args: argparse.Namespace) -> int:
    result = _api(args, "group_start", {"group": args.name})
    print(result.get("message") or f"group {args.name} is {result['state']}")
    return 0


def cmd_group_stop(args: argparse.Namespace) -> int:
    result = _api(args, "group_stop", {"group": args.name})
    print(result.get("message") or f"group {args.name} is {result['state']}")
    return 0


def cmd_group_restart(args: argparse.Namespace) -> int:
    """Stop, then start: the guide's offline-online, in one command."""
    cmd_group_stop(args)
    return cmd_group_start(args)


def cmd_restart(args: argparse.Namespace) -> int:
    result = _api(args, "restart", {"watch_id": args.watch_id, "timeout": args.timeout})
    print(result["message"])
    return 0


def cmd_group_show(args: argparse.Namespace) -> int:
    from rearm.config import group_names, load_group

    home = _home(args)
    names = [args.name] if args.name else group_names(home)
    try:
        live = {g["name"]: g for g in call(home.socket, "status")["groups"]}
    except DaemonNotRunning:
        live = {}
    shown = []
    for name in names:
        config = load_group(home, name)
        shown.append(
            {
                "name": name,
                "state": live.get(name, {}).get("state", "unknown (daemon not running)"),
                "auto_start": config.auto_start,
                "script_timeout": config.script_timeout,
                "description": config.description,
                "folder": home.group_dir(name),
                "declared_watches": [w.watch_id for w in config.watches],
                "watches": live.get(name, {}).get("watches", []),
            }
        )
    if args.json:
        _print_json(shown)
        return 0
    for g in shown:
        print(
            f"{g['name']}: {g['state']}  (auto_start={str(g['auto_start']).lower()}, {g['folder']})"
        )
        for w in g["watches"]:
            print(f"    {_watch_line(w)}")
    if not shown:
        print("no groups (create one with 'rearm group create NAME')")
    return 0


def cmd_group_edit(args: argparse.Namespace) -> int:
    from rearm.config import load_group

    home = _home(args)
    load_group(home, args.name)
    state = _group_state(home, args.name)
    if state not in (None, "offline"):
        # As the original guide asks: stop the group before changing its scripts.
        raise CommandError(f"group '{args.name}' is {state}: stop it before editing its scripts")
    return edit_script(home, args.name, args.which)


EDIT_CHOICES = "What now? (e)dit again, e(x)it without saving, (Q)uit and save anyway [e]: "


def edit_script(home: Home, group: str, which: str) -> int:
    """As visudo: the editor works on a copy; after it closes the copy must parse (sh -n), or
    the operator chooses to edit again, to discard it, or to save it all the same."""
    import shlex
    import tempfile

    from rearm.config import script_path, write_atomic
    from rearm.scriptcheck import syntax_problem

    path = script_path(home, group, which)
    try:
        with open(path, encoding="utf-8") as f:
            original = f.read()
    except FileNotFoundError:
        original = "#!/bin/sh\n"
    editor = shlex.split(os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi")
    fd, copy = tempfile.mkstemp(dir=os.path.dirname(path), prefix=f".{which}.", suffix=".sh")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(original)
        while True:
            code = subprocess.call([*editor, copy])
            if code != 0:
                print(f"the editor exited with status {code}: {which}.sh not changed")
                return 1
            problem = syntax_problem(copy)
            if problem is None:
                break
            shown = problem.replace(copy, f"{which}.sh")
            print(f"{which}.sh of group {group} does not parse:\n{shown}")
            answer = _ask(EDIT_CHOICES)
            if answer in ("", "e"):
                continue
            if answer == "Q":
                print(f"saving {which}.sh with the error: its group will fail to start")
                break
            print(f"{which}.sh not changed")
            return 1
        with open(copy, encoding="utf-8") as f:
            edited = f.read()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(copy)
    if edited == original:
        print(f"{which}.sh not changed")
        return 0
    write_atomic(path, edited, 0o755)
    print(f"{which}.sh of group {group} saved")
    return 0


def _ask(question: str) -> str:
    """One answer from the operator; end of input (no one there) is "x": nothing is saved."""
    print(question, end="", flush=True)
    line = sys.stdin.readline()
    if not line:
        print()
        return "x"
    return line.strip()


# --- status and log ---------------------------------------------------------------------------
def _watch_line(w: dict[str, Any]) -> str:
    from rearm.cli.status_text import watch_line

    return watch_line(w)


def cmd_status(args: argparse.Namespace) -> int:
    from rearm.cli import status_text

    status = _api(args, "status")
    if args.name:
        chosen = status_text.select(status, args.name)
        if chosen is None:
            raise CommandError(f"no group or watch named '{args.name}' (see 'rearm status')")
        if args.json:
            _print_json(chosen.get("watch") or chosen["group"])
        elif "watch" in chosen:
            where = f"group {chosen['group']}" if chosen["group"] else "no group"
            print(f"{_watch_line(chosen['watch'])}  ({where})")
        else:
            print("\n".join(status_text.group_lines(chosen["group"], indent="")))
        return 0
    if args.json:
        _print_json(status)
        return 0
    print("\n".join(status_text.render(status)))
    return 0


# --- daemon -----------------------------------------------------------------------------------
def cmd_daemon(args: argparse.Namespace) -> int:
    if args.wait_ready is not None:
        return start_and_wait(_home(args), args.home, args.wait_ready, args.log)
    from rearm.daemon.main import run

    return run(_home(args))


def start_and_wait(home: Home, home_arg: str | None, seconds: float, log_path: str | None) -> int:
    """`rearm daemon --wait-ready`: start the daemon in the background (its own session, its
    log in a file) and return once it answers on its control socket -- no race with the next
    command. Fails, with the end of its log, if it exits or does not answer in time."""
    try:
        answer = call(home.socket, "ping", timeout=5)
        print(f"the daemon is already running (pid {answer['pid']})")
        return 0
    except DaemonNotRunning:
        pass
    from rearm.logtail import tail

    log_path = log_path or os.path.join(home.var, "log", "daemon.log")
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    command = [sys.executable, "-m", "rearm.cli.main"]
    command += ["--home", home_arg] if home_arg else []
    with open(log_path, "ab") as log:
        daemon = subprocess.Popen(
            [*command, "daemon"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # not ended by the terminal's Ctrl-C or hang-up
        )
    deadline = time.monotonic() + seconds
    while True:
        code = daemon.poll()
        if code is not None:
            raise CommandError(
                f"the daemon exited with status {code} before it answered; the end of its log "
                f"({log_path}):\n" + "\n".join(f"  | {line}" for line in tail(log_path))
            )
        try:
            answer = call(home.socket, "ping", timeout=5)
            if answer.get("pid") == daemon.pid:
                break
        except (DaemonNotRunning, ApiFailure, OSError):
            pass
        if time.monotonic() > deadline:
            raise CommandError(
                f"the daemon (pid {daemon.pid}) did not answer within {seconds:g} s; it goes on "
                f"starting: see {log_path}"
            )
        time.sleep(0.05)
    print(f"the daemon is ready (pid {daemon.pid}; its log: {log_path})")
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    result = _api(args, "reload")
    print(result["message"])
    return 0


def cmd_shutdown(args: argparse.Namespace) -> int:
    result = _api(args, "shutdown", {"stop_groups": args.stop_groups})
    print(result["message"])
    return 0


def cmd_reprep(args: argparse.Namespace) -> int:
    """The guide's sreprep: after a hostname change, bind the cluster to the new name."""
    from rearm.config import load_cluster, set_cluster_keys

    home = _home(args)
    cluster = load_cluster(home)
    hostname = socket.gethostname()
    if cluster.name.lower() == hostname.lower():
        raise CommandError(
            f"the cluster name '{cluster.name}' now equals the hostname: rename the cluster "
            f"first ('rearm cluster set name=NEWNAME'), then run 'rearm reprep' again"
        )
    if cluster.server == hostname:
        print(f"cluster {cluster.name} is already bound to server {hostname}")
        return 0
    set_cluster_keys(home, {"server": hostname})
    print(f"cluster {cluster.name}: server {cluster.server} -> {hostname}")
    applied = _reload_if_running(home)
    if applied:
        print(applied)
    return 0


def cmd_bundle(args: argparse.Namespace) -> int:
    """The support bundle (rearm.bundle): the status from the daemon when one runs."""
    from rearm import bundle
    from rearm.config import load_cluster

    home = _home(args)
    try:
        cluster_name = load_cluster(home).name
    except ConfigError:
        cluster_name = "unconfigured"

    def status() -> dict[str, Any] | None:
        try:
            return dict(call(home.socket, "status"))
        except (DaemonNotRunning, ApiFailure):
            return None

    name = f"rearm-bundle-{cluster_name}-{time.strftime('%Y%m%dT%H%M%S')}"
    out = args.output or os.path.abspath(name + ".tar.gz")
    made = bundle.collect(home, status, name)
    made.write(out)
    print(
        f"wrote {out}: {len(made.files)} files, secrets masked; {len(made.left_out)} left out "
        "(see its MANIFEST.txt)"
    )
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from rearm.cli.demo import run_demo

    return run_demo(args.home, args.seconds)


# --- parser -----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rearm", description="Application recovery for one Linux server."
    )
    parser.add_argument(
        "--home",
        metavar="DIR",
        help="put etc/, var/ and run/ under DIR (default: $REARM_HOME, "
        "else /etc/rearm, /var/lib/rearm, /run/rearm)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("daemon", help="run the server service in the foreground")
    p.add_argument(
        "--wait-ready",
        nargs="?",
        type=float,
        const=30.0,
        metavar="SECONDS",
        help="start it in the background instead and return once it answers "
        "(default: wait up to 30 s)",
    )
    p.add_argument(
        "--log",
        metavar="FILE",
        help="with --wait-ready: its log (default: var/log/daemon.log under the home)",
    )
    p.set_defaults(func=cmd_daemon)

    cluster = sub.add_parser("cluster", help="create, show or change the cluster configuration")
    csub = cluster.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = csub.add_parser("create", help="create the cluster configuration")
    p.add_argument("--name", required=True, help="1-15 characters, not the hostname")
    p.add_argument("--ip", required=True, help="management address (ADDR or ADDR/PREFIX)")
    p.add_argument("--interconnect", help="heartbeat address, in a different network")
    p.add_argument("--server", help="server name (default: this host's name)")
    p.add_argument(
        "--final-action",
        default="none",
        choices=["reboot", "shutdown", "panic", "stopgroup", "none"],
    )
    p.add_argument("--force", action="store_true", help="replace an existing configuration")
    p.add_argument(
        "--no-address-check",
        action="store_true",
        help="accept addresses that are not (yet) on this host",
    )
    p.set_defaults(func=cmd_cluster_create)
    p = csub.add_parser("show", help="print the cluster configuration")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_cluster_show)
    p = csub.add_parser("set", help="change properties: KEY=VALUE ...")
    p.add_argument("assignments", nargs="+", metavar="KEY=VALUE")
    p.add_argument(
        "--no-address-check",
        action="store_true",
        help="accept addresses that are not (yet) on this host",
    )
    p.set_defaults(func=cmd_cluster_set)

    group = sub.add_parser("group", help="create, delete, start, stop, show or edit groups")
    gsub = group.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = gsub.add_parser("create", help="create a group with template scripts")
    p.add_argument("name", metavar="GROUP", help="the new group's name")
    p.add_argument(
        "--no-auto-start", action="store_true", help="do not bring it online when the daemon starts"
    )
    p.add_argument("--description")
    p.set_defaults(func=cmd_group_create)
    p = gsub.add_parser("delete", help="delete an offline group")
    p.add_argument("name", metavar="GROUP", help="the group to delete")
    p.add_argument(
        "--purge",
        action="store_true",
        help="also remove the service definitions only this group's scripts use",
    )
    p.set_defaults(func=cmd_group_delete)
    for action, func, text in (
        ("start", cmd_group_start, "bring a group online"),
        ("stop", cmd_group_stop, "take a group offline"),
        ("restart", cmd_group_restart, "take a group offline, then bring it online"),
    ):
        p = gsub.add_parser(action, help=text)
        p.add_argument("name", metavar="GROUP", help="the group")
        p.set_defaults(func=func)
    p = gsub.add_parser("show", help="show groups and their watches")
    p.add_argument("name", nargs="?", metavar="GROUP", help="only this group")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_group_show)
    p = gsub.add_parser("edit", help="edit a start or stop script (group must be offline)")
    p.add_argument("name", metavar="GROUP", help="the group (offline)")
    p.add_argument("which", choices=["start", "stop"])
    p.set_defaults(func=cmd_group_edit)
    template_cmd.add_group_template(gsub)

    p = sub.add_parser("status", help="cluster, groups and watches")
    p.add_argument("name", nargs="?", metavar="WATCHID|GROUP", help="show only this one")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("restart", help="stop a watch's target and start it again (no fault)")
    p.add_argument("watch_id", metavar="WATCHID")
    p.add_argument(
        "--timeout",
        "-t",
        type=int,
        default=40,
        metavar="SECONDS",
        help="kill it (SIGKILL) when it has not stopped by then (as armkill /T; default 40)",
    )
    p.set_defaults(func=cmd_restart)

    history_cmd.register(sub)

    p = sub.add_parser("reload", help="re-read the configuration (also SIGHUP)")
    p.set_defaults(func=cmd_reload)
    p = sub.add_parser("shutdown", help="stop the daemon (services keep running)")
    p.add_argument(
        "--stop-groups",
        action="store_true",
        help="take every group offline first (stops their services)",
    )
    p.set_defaults(func=cmd_shutdown)
    license_cmd.register(sub)
    lifecycle_cmd.register(sub)
    p = sub.add_parser("reprep", help="re-bind the configuration to the current hostname")
    p.set_defaults(func=cmd_reprep)
    p = sub.add_parser("demo", help="a demo cluster in a temporary home, in drill mode")
    p.add_argument(
        "--seconds",
        type=float,
        default=0,
        help="stop by itself after this many seconds (default: run until Ctrl-C)",
    )
    p.set_defaults(func=cmd_demo)
    alert_cmd.register(sub)
    template_cmd.register(sub)
    passwd_cmd.register(sub)
    pacemaker_cmd.register(sub)
    p = sub.add_parser("bundle", help="one tar.gz for a support case (secrets masked)")
    p.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="where to write it (default: ./rearm-bundle-CLUSTER-TIME.tar.gz)",
    )
    p.set_defaults(func=cmd_bundle)
    completion.register(sub)
    return helptext.decorate(parser)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (CommandError, ConfigError, ApiFailure) as e:
        print(f"rearm: {e}", file=sys.stderr)
        return 1
    except DaemonNotRunning as e:
        print(f"rearm: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
