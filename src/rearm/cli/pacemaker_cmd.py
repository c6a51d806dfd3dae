"""`rearm ocf install|uninstall` and `rearm export pacemaker`: moving groups onto Pacemaker.

`rearm ocf install` copies the resource agent shipped in the package (rearm/ocf/group) to
`/usr/lib/ocf/resource.d/rearm/group`, where Pacemaker finds `ocf:rearm:group`; `--prefix DIR`
puts it under DIR instead (a staged install, and the tests). `rearm export pacemaker` prints
the groups as a CIB fragment (rearm.pacemaker) and with `--check` runs crm_verify on it.
See docs/pacemaker.md.

Cheap to import (cli/main.py registers it on every run): the work is imported when a command runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

from rearm.paths import Home
from rearm.validate import ConfigError  # a refusal: one line on stderr, exit 1

if TYPE_CHECKING:
    from rearm.pacemaker import Export

OCF_ROOT = "/usr/lib/ocf"
AGENT_PATH = ("resource.d", "rearm", "group")
SHIPPED_SHEBANG = "#!/usr/bin/python3 -IS\n"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ocf = subparsers.add_parser("ocf", help="install the Pacemaker resource agent ocf:rearm:group")
    sub = ocf.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, text in (
        ("install", "install the agent into /usr/lib/ocf/resource.d/rearm/"),
        ("uninstall", "remove the agent"),
    ):
        p = sub.add_parser(action, help=text)
        p.add_argument(
            "--prefix",
            default="/",
            metavar="DIR",
            help="install under DIR (DIR/usr/lib/ocf/...) instead of / (staged installs, tests)",
        )
        p.set_defaults(func=cmd_ocf_install if action == "install" else cmd_ocf_uninstall)

    export = subparsers.add_parser("export", help="the groups as another manager's configuration")
    esub = export.add_subparsers(dest="target", required=True, metavar="TARGET")
    p = esub.add_parser(
        "pacemaker",
        help="the groups as Pacemaker resources (CIB XML, or crm shell syntax)",
    )
    p.add_argument("groups", nargs="*", metavar="GROUP", help="only these groups (default: all)")
    p.add_argument("--format", choices=("xml", "crm"), default="xml")
    p.add_argument(
        "--check",
        action="store_true",
        help="run crm_verify on the result merged into the cluster's CIB (--cib FILE, else "
        "the running cluster's, else an empty one); exit 1 when it finds errors",
    )
    p.add_argument("--cib", metavar="FILE", help="the CIB to check against (with --check)")
    p.set_defaults(func=cmd_export_pacemaker)


def _home(args: argparse.Namespace) -> Home:
    return Home.from_env(getattr(args, "home", None))


# --- rearm ocf -----------------------------------------------------------------------------
def agent_python() -> str:
    """The interpreter named on the agent's #! line: the system's python3 (which any user may
    run: ocf-tester checks the meta-data as nobody), else the one rearm runs on, without its
    virtualenv (-I -S: the agent needs only the standard library)."""
    if os.access("/usr/bin/python3", os.X_OK):
        return "/usr/bin/python3"
    return os.path.realpath(sys.executable)


def agent_text(python: str) -> str:
    """The shipped agent, run by `python`."""
    from importlib.resources import files

    text = files("rearm").joinpath("ocf", "group").read_text(encoding="utf-8")
    if not text.startswith(SHIPPED_SHEBANG):
        raise ConfigError("the packaged resource agent rearm/ocf/group is damaged")
    if any(c.isspace() for c in python) or len(python) > 200:
        raise ConfigError(f"the interpreter {python!r} cannot be named on a #! line")
    return f"#!{python} -IS\n" + text[len(SHIPPED_SHEBANG) :]


def agent_path(prefix: str) -> str:
    return os.path.join(os.path.abspath(prefix), OCF_ROOT.lstrip("/"), *AGENT_PATH)


def cmd_ocf_install(args: argparse.Namespace) -> int:
    from rearm.config import write_atomic

    path = agent_path(args.prefix)
    text = agent_text(agent_python())
    folder = os.path.dirname(path)
    os.makedirs(folder, mode=0o755, exist_ok=True)
    os.chmod(folder, 0o755)  # Pacemaker's executor and `ocf-tester` (as nobody) read it
    write_atomic(path, text, mode=0o755)
    print(f"installed ocf:rearm:group as {path}")
    return 0


def cmd_ocf_uninstall(args: argparse.Namespace) -> int:
    path = agent_path(args.prefix)
    try:
        os.unlink(path)
    except FileNotFoundError:
        print(f"ocf:rearm:group is not installed ({path})")
        return 0
    print(f"removed {path}")
    return 0


# --- rearm export pacemaker ----------------------------------------------------------------
def cmd_export_pacemaker(args: argparse.Namespace) -> int:
    from rearm import pacemaker
    from rearm.config import group_names, load_cluster, load_group, read_toml, script_path

    home = _home(args)
    cluster = load_cluster(home)
    names = args.groups or group_names(home)
    if not names:
        raise ConfigError(f"no groups to export ({home.groups_dir} holds none)")
    groups = []
    for name in names:
        config = load_group(home, name)
        toml_path = os.path.join(home.group_dir(name), "group.toml")
        settings = pacemaker.parse_settings(read_toml(home, toml_path).get("pacemaker"), toml_path)
        watches = list(config.watches)
        try:
            with open(script_path(home, name, "start"), encoding="utf-8") as f:
                watches += pacemaker.script_watches(f.read())
        except FileNotFoundError:
            pass
        groups.append(pacemaker.ExportGroup(config, settings, tuple(watches)))
    export = pacemaker.build(cluster, groups, home.root)
    text = pacemaker.to_crm(export) if args.format == "crm" else pacemaker.to_xml(export)
    sys.stdout.write(text)
    sys.stdout.flush()
    if args.check:
        return _check(export, args.cib)
    return 0


def _check(export: Export, cib_file: str | None) -> int:
    from rearm import pacemaker

    verify = shutil.which("crm_verify")
    if verify is None:
        raise ConfigError("crm_verify is not installed (Debian: pacemaker-cli-utils)")
    if cib_file is not None:
        with open(cib_file, encoding="utf-8") as f:
            base, against = f.read(), cib_file
    else:
        live = _live_cib()
        if live is not None:
            base, against = live, "the running cluster's CIB"
        else:
            base, against = pacemaker.EMPTY_CIB, "an empty CIB (fencing not checked)"
    merged = pacemaker.merge(base, export)
    result = subprocess.run(
        [verify, "--xml-pipe", "--verbose"],
        input=merged,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = (result.stdout + result.stderr).strip()
    if result.returncode != 0:
        print(f"rearm: crm_verify found errors (against {against}):\n{report}", file=sys.stderr)
        return 1
    print(
        f"crm_verify: the export is valid (against {against})" + (f"\n{report}" if report else ""),
        file=sys.stderr,
    )
    return 0


def _live_cib() -> str | None:
    cibadmin = shutil.which("cibadmin")
    if cibadmin is None:
        return None
    try:
        result = subprocess.run([cibadmin, "--query"], capture_output=True, text=True, timeout=15)
    except subprocess.TimeoutExpired:
        return None
    return result.stdout if result.returncode == 0 and result.stdout.strip() else None
