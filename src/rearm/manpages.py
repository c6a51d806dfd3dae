"""The man pages -- rearm(8), armload(1), armkill(1), armem(1), rearm.toml(5) -- made from the
same source as `--help`: the argparse parsers and rearm.cli.helptext for rearm, the usage texts
of rearm.arm for the arm commands, and FILES below for rearm.toml(5).

The groff output ships as package data (rearm/man/) and is installed into share/man by the
package; a test renders each with `man -l` and checks the shipped files equal what this module
makes now. After changing a command: `python -m rearm.manpages --write src/rearm/man`.
"""

from __future__ import annotations

import argparse
import os
import sys

from rearm.cli import helptext

DATE = "2025"
SOURCE = "rearm"
MANUAL = "rearm manual"

# rearm.toml(5): one entry per file, then its keys as (key, value, meaning).
FILES: tuple[tuple[str, str, tuple[tuple[str, str, str], ...]], ...] = (
    (
        "etc/cluster.toml",
        "The cluster: this server's recovery configuration. Written by rearm cluster create, "
        "changed with rearm cluster set (comments are kept); a running daemon takes changes at "
        "rearm reload or SIGHUP.",
        (
            ("name", "1-15 characters", "the cluster's name; not the host name"),
            ("server", "host name", "the server it is bound to (rearm reprep re-binds it)"),
            ("ip", "ADDR[/PREFIX]", "the management address; the Manager listens on it"),
            ("interconnect", "ADDR[/PREFIX]", "the heartbeat address, in another network"),
            ("final_action", "reboot|shutdown|panic|stopgroup|none", "armem /M (default none)"),
            (
                "drill",
                "true|false",
                "record reboot, shutdown and panic instead of doing them "
                "(default true; REARM_DRILL=1 forces it)",
            ),
            ("return_mode", "auto|manual", "bring auto_start groups online at boot (auto)"),
            ("heartbeat_timeout", "2-3600", "seconds without a heartbeat before its action (90)"),
            ("heartbeat_action", "panic|reboot|none", "what a stuck daemon gets (none)"),
            ("max_reboots", "1-100", "the reboot-loop guard: reboots or panics allowed (3)..."),
            (
                "reboot_window",
                "60-604800",
                "...within this many seconds (3600); then stopgroup (see rearm reboots)",
            ),
            ("manager_port", "1-65535", "the Manager's and /metrics' port (8470)"),
            ("admin_group", "group name", "its members may change things on the control socket"),
            ("read_access", "admin|everyone", "who may read status and events (admin)"),
            ("watchdog_device", "path", "a watchdog device the keeper feeds (off by default)"),
            (
                "[[alerts]]",
                "table",
                "alert sinks: type = snmp|mail|webhook|syslog, with "
                'their keys; a secret may be given as KEY_file = "PATH" instead (docs/alerts.md)',
            ),
        ),
    ),
    (
        "etc/groups/NAME/group.toml",
        "One recovery group; start.sh and stop.sh beside it are run with REARM_EVENT "
        "(START, RECOVER, STOP), REARM_GROUP, REARM_CLUSTER, REARM_SERVER and REARM_HOME.",
        (
            ("auto_start", "true|false", "bring it online when the daemon starts (true)"),
            ("description", "text", "shown in rearm group show and the Manager"),
            ("script_timeout", "1-86400", "seconds a script may run (300)"),
            ("stop_timeout", "0-3600", "armkill /T for the watches left at stop (40)"),
            (
                "[[watches]]",
                "table",
                'a declarative watch: id, service = "NAME" or command = '
                "[...], retry, hours, interval, wait, adopt, script, user -- an armload line "
                "written as a table",
            ),
        ),
    ),
    (
        "etc/services/NAME.toml",
        "A service definition: what armload /S NAME starts. Only command is required.",
        (
            (
                "command",
                "[argv]",
                "the program (an absolute path) and its arguments; never a shell",
            ),
            ("user, group", "names", "run as this user (and its groups)"),
            ("directory", "path", "working directory"),
            ("environment", '{ NAME = "value" }', "its environment, beside PATH and LANG"),
            ("pidfile", "path", "the command forks: watch the pid written here"),
            ("stop_signal", "TERM|INT|QUIT|...", "sent to the process group by armkill (TERM)"),
            ("stop_command", "[argv]", "run instead of the signal"),
            ("ready", "{ tcp | http | command }", "how armload /WAIT knows it started"),
            ("limits", "table", "resource limits (nofile, nproc, core, ...)"),
        ),
    ),
)

ARM_EXAMPLES = {
    "armload": (
        "armload TEL /S /A /R 2 /H 1 /INT 5 tel",
        "armload WEB /R 3 /H 1 /INT 5 /WAIT 30 /usr/bin/python3 -m http.server 8080",
        "armload JOB /U nobody /usr/local/bin/job --once",
    ),
    "armkill": ("armkill TEL", "armkill TEL /T 10", "armkill TEL /C"),
    "armem": ("armem /M reboot", "armem /M stopgroup", "armem"),
}
ARM_SUMMARY = {
    "armload": "start a service or an application and watch it",
    "armkill": "stop a watched target and end its watch",
    "armem": "set or print the final action",
}


# --- groff --------------------------------------------------------------------------------------
def esc(text: str) -> str:
    """Text as groff reads it literally: backslashes and minus signs escaped, and a line that
    would start with a control character protected."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join(("\\&" + line) if line[:1] in (".", "'") else line for line in out.split("\n"))


def _para(text: str) -> str:
    return ".PP\n" + esc(" ".join(text.split()))


def _literal(lines: list[str]) -> str:
    return ".PP\n.nf\n.RS 4\n" + "\n".join(esc(line) for line in lines) + "\n.RE\n.fi"


def _head(name: str, section: str, summary: str) -> list[str]:
    return [
        f'.TH {name.upper()} {section} "{DATE}" "{SOURCE}" "{MANUAL}"',
        ".SH NAME",
        f"{esc(name)} \\- {esc(summary)}",
    ]


def _exit_status() -> list[str]:
    out = [".SH EXIT STATUS"]
    for code, meaning in helptext.EXIT_STATUS:
        out += [".TP", f".B {code}", esc(meaning)]
    return out


def _options(p: argparse.ArgumentParser) -> list[str]:
    out: list[str] = []
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        if action.option_strings:
            shown = ", ".join(action.option_strings)
            if action.nargs != 0:
                shown += " " + str(action.metavar or action.dest.upper())
        else:
            shown = str(action.metavar or action.dest)
        out += [".TP", f".B {esc(shown)}", esc(action.help or "")]
    return out


def _usage(p: argparse.ArgumentParser) -> str:
    return " ".join(p.format_usage().removeprefix("usage: ").split())


def rearm_page(parser: argparse.ArgumentParser) -> str:
    lines = _head("rearm", "8", "application recovery for one Linux server")
    lines += [".SH SYNOPSIS", ".B rearm", "[\\-\\-home DIR] COMMAND [ARGS]"]
    lines += [".SH DESCRIPTION", _para(helptext.DESCRIPTION)]
    lines += [".SH OPTIONS", *_options(parser)]
    lines.append(".SH COMMANDS")
    for path, p in helptext.walk(parser):
        if not path or helptext.subcommands(p):
            continue  # the leaves: each is a command one types
        description, examples = helptext.COMMANDS.get(" ".join(path), (p.description or "", ()))
        lines += [".SS " + esc(" ".join(path)), _literal([_usage(p)]), _para(description)]
        lines += _options(p)
        if examples:
            lines += [".PP", "Examples:", _literal(list(examples))]
    lines += _exit_status()
    lines += [
        ".SH ENVIRONMENT",
        ".TP",
        ".B REARM_HOME",
        esc("put etc/, var/ and run/ under this folder (as --home)"),
        ".TP",
        ".B REARM_DRILL",
        esc("1: drill mode whatever cluster.toml says (final actions recorded, not executed)"),
        ".SH FILES",
        ".TP",
        ".B /etc/rearm",
        esc("configuration (see rearm.toml(5)); $REARM_HOME/etc"),
        ".TP",
        ".B /var/lib/rearm",
        esc("state.db (watches, faults, events, reboots) and log/; $REARM_HOME/var"),
        ".TP",
        ".B /run/rearm",
        esc("rearm.sock, the control socket; rearm.pid; bin/ (armload launchers)"),
        ".SH SEE ALSO",
        "armload(1), armkill(1), armem(1), rearm.toml(5)",
    ]
    return "\n".join(lines) + "\n"


def arm_page(name: str, usage: str) -> str:
    text = usage.removeprefix("usage: ")
    synopsis, _, rest = text.partition("\n\n")
    lines = _head(name, "1", ARM_SUMMARY[name])
    lines += [".SH SYNOPSIS", _literal([line.strip() for line in synopsis.splitlines()])]
    paragraphs = [p for p in rest.split("\n\n") if p.strip()]
    lines.append(".SH DESCRIPTION")
    for p in paragraphs:
        if p.startswith("  "):  # an option table, two columns
            lines.append(_literal(p.splitlines()))
        else:
            lines.append(_para(p))
    lines += [".SH EXAMPLES", _literal(list(ARM_EXAMPLES[name]))]
    lines += [
        ".SH EXIT STATUS",
        ".TP",
        ".B 0",
        "success",
        ".TP",
        ".B 1",
        esc("refused or failed: one line on stderr says what was wrong and what is allowed"),
        ".TP",
        ".B 2",
        "a bad command line",
        ".TP",
        ".B 3",
        "the daemon is not running",
        ".SH SEE ALSO",
        ", ".join(f"{n}(1)" for n in ARM_SUMMARY if n != name) + ", rearm(8), rearm.toml(5)",
    ]
    return "\n".join(lines) + "\n"


def toml_page() -> str:
    lines = _head("rearm.toml", "5", "the configuration files of rearm")
    lines += [
        ".SH DESCRIPTION",
        _para(
            "rearm's configuration is TOML, under /etc/rearm (or $REARM_HOME/etc). A file "
            "that other users could change is refused. Values are checked when read; an error "
            "names the file, the key and the rule."
        ),
    ]
    for path, about, keys in FILES:
        lines += [".SH " + esc(path.upper().replace("ETC/", "")), _para(f"{path}: {about}")]
        for key, value, meaning in keys:
            lines += [".TP", f".B {esc(key)}", f"{esc(value)}: {esc(meaning)}"]
    lines += [".SH SEE ALSO", "rearm(8), armload(1)"]
    return "\n".join(lines) + "\n"


def pages() -> dict[str, str]:
    """File name -> groff text, for every page."""
    from rearm.arm import ARMEM_USAGE, ARMKILL_USAGE, ARMLOAD_USAGE
    from rearm.cli.main import build_parser

    return {
        "rearm.8": rearm_page(build_parser()),
        "armload.1": arm_page("armload", ARMLOAD_USAGE),
        "armkill.1": arm_page("armkill", ARMKILL_USAGE),
        "armem.1": arm_page("armem", ARMEM_USAGE),
        "rearm.toml.5": toml_page(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rearm.manpages", description=__doc__)
    parser.add_argument("--write", metavar="DIR", help="write the pages into DIR")
    args = parser.parse_args(argv)
    made = pages()
    if args.write is None:
        sys.stdout.write("\n".join(made.values()))
        return 0
    for name, text in made.items():
        with open(os.path.join(args.write, name), "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {os.path.join(args.write, name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
