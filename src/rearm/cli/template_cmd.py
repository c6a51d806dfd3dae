"""`rearm template list|show` and `rearm group template NAME TEMPLATE` (SPEC §8).

Parsing and printing only: templates are found, filled in and checked by rearm.templates.
Refusals raise ConfigError, which `rearm` prints as one line on stderr with exit status 1.
`python -m rearm.cli.template_cmd [--home DIR] template ...|group template ...` runs these
commands on their own.
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from rearm import templates, uses
from rearm.paths import Home
from rearm.validate import ConfigError


def _home(args: argparse.Namespace) -> Home:
    return Home.from_env(args.home)


def _variables(template: templates.Template, values: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {
            "name": v.name,
            "kind": v.kind,
            "value": values.get(v.name),
            "required": v.name not in values,
            "help": v.help,
        }
        for v in template.variables
    ]


def cmd_list(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    for name in templates.available():
        t = templates.load(name)
        values, _ = templates.resolve(t, {}, partial=True)
        rows.append(
            {
                "name": name,
                "description": t.description,
                "services": t.services,
                "watches": t.watches,
                "extends": t.extends,
                "variables": _variables(t, values),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['description']}")
    print("\nsee one: rearm template show NAME; import one: rearm group template GROUP NAME")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    t = templates.load(args.template)
    given = templates.parse_assignments(args.set or [])
    values, missing = templates.resolve(t, given, partial=True)
    rendered = templates.render(t, values, given)
    if args.json:
        out = {
            "name": t.name,
            "description": t.description,
            "services": t.services,
            "watches": t.watches,
            "extends": t.extends,
            "variables": _variables(t, values),
            "files": rendered.files,
        }
        print(json.dumps(out, indent=2))
        return 0
    print(f"template {t.name}: {t.description}")
    print(f"import it: rearm group template GROUP {t.name} [--set KEY=VALUE ...]\n")
    print("variables (the value shown is what the import uses unless --set):")
    width = max(len(v.name) for v in t.variables)
    for v in t.variables:
        value = values.get(v.name, "(required)")
        print(f"  {v.name:<{width}}  {value:<28} {v.help}")
    order = {"start.sh": "0", "stop.sh": "1"}
    for path, text in sorted(rendered.files.items(), key=lambda kv: order.get(kv[0], kv[0])):
        target = (
            f"etc/services/{path.removeprefix('services/')}"
            if path.startswith("services/")
            else f"etc/groups/GROUP/{path}"
        )
        print(f"\n==> {path}  (imported as {target}) <==")
        print(text, end="" if text.endswith("\n") else "\n")
    if missing:
        print(f"\n(give {', '.join(missing)} with --set at import: shown above as ${{name}})")
    return 0


def _live_status(home: Home) -> dict[str, Any] | None:
    """The daemon's status, or None when no daemon runs."""
    from rearm.api.client import DaemonNotRunning, call

    try:
        status = call(home.socket, "status")
    except DaemonNotRunning:
        return None
    return dict(status)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        return None


def cmd_group_template(args: argparse.Namespace) -> int:
    from rearm.config import load_group, write_atomic

    home = _home(args)
    load_group(home, args.name)  # the group must exist: its folder holds the scripts
    status = _live_status(home)
    state = None
    if status is not None:
        state = next((str(g["state"]) for g in status["groups"] if g["name"] == args.name), None)
    if state not in (None, "offline"):
        # As the guide asks before replacing start.bat: take the group offline first.
        shown = "in error" if state == "error" else state
        raise ConfigError(
            f"group '{args.name}' is {shown}: stop it first ('rearm group stop {args.name}'), "
            "then import the template"
        )
    t = templates.load(args.template)
    given = templates.parse_assignments(args.set or [])
    values, _ = templates.resolve(t, given)
    rendered = templates.render(t, values, given)
    templates.check_rendered(rendered)
    plan = templates.plan_install(
        home,
        args.name,
        rendered,
        _read,
        force=args.force,
        in_use=uses.live_users(status, home) if status is not None else {},
        users=_users(home),
    )
    for w in plan.writes:
        if w.backup is not None:
            old = _read(w.path)
            if old is not None:
                write_atomic(w.backup, old, os.stat(w.path).st_mode & 0o7777)
        write_atomic(w.path, w.text, w.mode)
        kept = f" (the old one is kept as {os.path.basename(w.backup)})" if w.backup else ""
        print(f"wrote {templates.shown_path(home, w.path)}{kept}")
    for path in plan.unchanged:
        print(f"unchanged {templates.shown_path(home, path)}")
    print(
        f"group {args.name}: template {t.name} imported (watches {', '.join(t.watches)}); "
        f"bring it online with 'rearm group start {args.name}'"
    )
    return 0


def _users(home: Home) -> dict[str, list[str]]:
    """Service name -> the groups whose scripts use it."""
    by_group = uses.services_by_group(home)
    names = {s for used in by_group.values() for s in used}
    return {name: uses.groups_using(by_group, name) for name in names}


def _add_set(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help="a variable's value (repeatable); see 'rearm template show TEMPLATE'",
    )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `template list|show` to the `rearm` command's subparsers."""
    parser = subparsers.add_parser(
        "template",
        help="script templates for common services (PostgreSQL, Redis, nginx, mail...)",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = actions.add_parser("list", help="the templates rearm ships")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = actions.add_parser("show", help="a template's variables, scripts and service definitions")
    p.add_argument("template", metavar="TEMPLATE")
    _add_set(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)


def add_group_template(
    group_subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add `template` to `rearm group`'s subparsers."""
    p = group_subparsers.add_parser(
        "template",
        help="import a template's scripts and service definitions (group must be offline)",
    )
    p.add_argument("name", metavar="NAME", help="the group (create it with 'rearm group create')")
    p.add_argument("template", metavar="TEMPLATE", help="see 'rearm template list'")
    _add_set(p)
    p.add_argument(
        "--force",
        action="store_true",
        help="replace service definitions that exist with other content (kept as .bak); "
        "never one that a live watch runs",
    )
    p.set_defaults(func=cmd_group_template)
