"""The one source of what `rearm --help`, the man pages and shell completion say beyond the
options themselves: each command's description and examples, and the exit status table.

`decorate(parser)` puts them on the argparse parsers (rearm.cli.main.build_parser calls it);
rearm.manpages renders the same parsers and this text as groff; rearm.cli.completion walks the
same parsers. A unit test holds every command and subcommand to a description and an example.
"""

from __future__ import annotations

import argparse
import textwrap

# (status, meaning) -- SPEC addition "Exit status" (docs/spec-additions.md) says the same.
EXIT_STATUS = (
    (
        "0",
        "success; also when what was asked is already so (a group already online, "
        "already offline: the command says so)",
    ),
    (
        "1",
        "refused or failed: one line on stderr says what was wrong and what is allowed "
        "(a failed group start adds the last lines of its script's output); `rearm doctor`: "
        "a check FAILed",
    ),
    (
        "2",
        "a bad command line (unknown option, missing argument, value out of range); "
        "`rearm daemon`: the configuration cannot be read",
    ),
    (
        "3",
        "the daemon is not running (no answer on the control socket), or the caller may "
        "not reach it",
    ),
    ("10", "`rearm daemon` only: stopped by `rearm shutdown` (systemd does not restart it)"),
    ("130", "interrupted (Ctrl-C)"),
)

DESCRIPTION = (
    "Application recovery for one Linux server. A daemon brings recovery groups online; each "
    "group's start script starts services and applications with armload and watches them. "
    "When a watched process dies, rearm restarts it after /INT seconds, as long as it has not "
    "failed more than /R times within /H hours; beyond that the final action fires (armem /M). "
    "Everything lives under $REARM_HOME (or --home), else /etc/rearm, /var/lib/rearm and "
    "/run/rearm."
)

# command path -> (description, examples)
COMMANDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "daemon": (
        "Run the server service in the foreground (systemd's Type=notify; logs to stderr). At "
        "start it re-adopts the services of a previous daemon and brings online every group "
        "whose auto_start is true. With --wait-ready it starts in the background instead and "
        "returns once it answers on its control socket.",
        (
            "rearm daemon",
            "rearm daemon --wait-ready",
            "rearm daemon --wait-ready 60 --log /tmp/d.log",
        ),
    ),
    "cluster": (
        "Create, show or change the cluster configuration (etc/cluster.toml).",
        (
            "rearm cluster create --name SRE-VCC --ip 192.168.0.10",
            "rearm cluster show",
            "rearm cluster set final_action=stopgroup",
        ),
    ),
    "cluster create": (
        "Create the cluster configuration: a name of 1-15 characters that is not the host "
        "name, and the management address. It starts in drill mode (drill = true).",
        (
            "rearm cluster create --name SRE-VCC --ip 192.168.0.10",
            "rearm cluster create --name SRE-VCC --ip 192.168.0.10 --interconnect 10.0.0.10",
        ),
    ),
    "cluster show": (
        "Print the cluster configuration, with the Manager's configured URL.",
        ("rearm cluster show", "rearm cluster show --json"),
    ),
    "cluster set": (
        "Change cluster properties (return_mode, heartbeat_timeout, heartbeat_action, "
        "max_reboots, reboot_window, drill, manager_port, ...). A running daemon takes them at "
        "once, or the command says which need a daemon restart.",
        ("rearm cluster set max_reboots=3 reboot_window=3600", "rearm cluster set drill=false"),
    ),
    "group": (
        "Create, delete, start, stop, restart, show or edit recovery groups (the guide's "
        "failover groups): one folder each under etc/groups/.",
        ("rearm group create SRE-GRP", "rearm group start SRE-GRP", "rearm group show"),
    ),
    "group create": (
        'Create a group with template scripts whose case "$REARM_EVENT" has a START) section '
        "for the armload lines (the guide's :Normal section).",
        (
            "rearm group create SRE-GRP",
            "rearm group create WEB --no-auto-start --description 'web tier'",
        ),
    ),
    "group delete": (
        "Delete an offline group's folder. It says which service definitions only this group "
        "used; --purge removes them too (never one a live watch runs).",
        ("rearm group delete SRE-GRP", "rearm group delete SRE-GRP --purge"),
    ),
    "group start": (
        "Bring a group online: its declared watches, then its start script (REARM_EVENT=START). "
        "Already online: nothing is done and it says so (exit 0). A failed start shows the last "
        "lines of the script's output.",
        ("rearm group start SRE-GRP",),
    ),
    "group stop": (
        "Take a group offline: its stop script (REARM_EVENT=STOP), then every watch of the group "
        "that is still alive is ended as armkill would. Already offline: it says so (exit 0).",
        ("rearm group stop SRE-GRP",),
    ),
    "group restart": (
        "Take a group offline, then bring it online again.",
        ("rearm group restart SRE-GRP",),
    ),
    "group show": (
        "Show groups (one, or all) with their settings and watches.",
        ("rearm group show", "rearm group show SRE-GRP --json"),
    ),
    "group edit": (
        "Edit a group's start or stop script in $VISUAL or $EDITOR (the group must be offline). "
        "The edited script must parse (sh -n) before it is saved; if it does not, you may edit "
        "it again, discard it, or save it all the same (as visudo).",
        ("rearm group edit SRE-GRP start", "EDITOR=nano rearm group edit SRE-GRP stop"),
    ),
    "group template": (
        "Import a template's start and stop scripts (the old ones kept as .bak) and its service "
        "definitions into etc/services/ (the group must be offline). A definition another "
        "group uses is named; one a live watch runs is never replaced: import under other names "
        "with --set watch_id=... --set service=... .",
        (
            "rearm group template DB postgresql",
            "rearm group template APPS generic --set port=8080 "
            "--set command='/usr/bin/python3 -m http.server 8080'",
            "rearm group template APPS2 generic --set watch_id=APP2 --set service=app2 ...",
        ),
    ),
    "status": (
        "The cluster, its server, groups and watches (Online, Offline, Error), laid out like "
        "the original Manager's tree; or one group or watch. --json prints the status object "
        "of SPEC §9.",
        ("rearm status", "rearm status SRE-GRP", "rearm status TEL --json"),
    ),
    "restart": (
        "Stop a watch's target (its stop command or signal, SIGKILL after --timeout) and start "
        "it again. An operator's restart is not a fault: nothing counts toward /R. It also "
        "starts again a watch that has ended (stopped, failed, escalated), e.g. after its "
        "configuration was fixed.",
        ("rearm restart TEL", "rearm restart TEL --timeout 10"),
    ),
    "log": (
        "The event log: state changes, faults, restarts, final actions, operator commands. Read "
        "from the daemon, or, when none runs, from var/state.db read-only.",
        (
            "rearm log -n 20",
            "rearm log --group SRE-GRP --kind fault --since 2h",
            "rearm log --watch TEL --since 2024-05-01T08:00 --until 2024-05-01T09:00 --json",
            "rearm log --follow --kind final_action",
        ),
    ),
    "reboots": (
        "The reboot-loop guard's counter (cluster properties max_reboots and reboot_window): "
        "how many reboots and panics fell within the window, each with its cause. Drill "
        "reboots are counted apart from real ones. --clear sets the counter back to zero (the "
        "original's reboot-count control command); the history stays.",
        ("rearm reboots", "rearm reboots --json", "rearm reboots --clear"),
    ),
    "reload": (
        "Re-read cluster.toml and the alert sinks (also SIGHUP); on an error the running "
        "configuration is kept. Groups deleted on disk leave the daemon's state.",
        ("rearm reload", "kill -HUP $(cat /run/rearm/rearm.pid)"),
    ),
    "shutdown": (
        "Stop the daemon. Services keep running (a restarted daemon re-adopts them) unless "
        "--stop-groups takes every group offline first.",
        ("rearm shutdown", "rearm shutdown --stop-groups"),
    ),
    "license": (
        "License keys are signed offline: checking one needs no network. A server trusts the "
        "vendor public keys installed with 'rearm license trust' (none is built in).",
        (
            "rearm license trust rearm-vendor.pub",
            "rearm license list",
            "rearm license register --serial S --key K",
        ),
    ),
    "license trust": (
        "Trust a vendor's public key (PEM, Ed25519): it is copied to etc/license-keys/. Check "
        "its key ID with the vendor: whoever's key is trusted can license this server.",
        ("rearm license trust rearm-vendor.pub",),
    ),
    "license register": (
        "Check a license key and register it on this server.",
        ("rearm license register --serial SRE-0001 --key KEY",),
    ),
    "license list": ("Registered licenses and whether they are valid.", ("rearm license list",)),
    "license issue": (
        "Sign a license key (vendors; needs the private key).",
        ("rearm license issue --help",),
    ),
    "license keygen": ("Make a vendor keypair (vendors).", ("rearm license keygen --help",)),
    "install": (
        "Write rearm.service (Type=notify, watchdog, Restart=always, KillMode=process), then "
        "'systemctl daemon-reload' and 'systemctl enable --now rearm.service'. Run it again to "
        "update the unit; it says what changed.",
        ("rearm install",),
    ),
    "uninstall": (
        "'systemctl disable --now rearm.service', then remove the unit file. The services the "
        "daemon watched keep running, unwatched.",
        ("rearm uninstall",),
    ),
    "doctor": (
        "Check prerequisites and print each check as ok, warn or FAIL with its fix: kernel, "
        "permissions, addresses, alert targets, the unit, and that every group script parses "
        "(sh -n). Exit status 1 when a check FAILs. Run it as the user that runs the daemon.",
        ("rearm doctor", "rearm doctor --json"),
    ),
    "reprep": (
        "Re-bind the configuration to the current hostname (the guide's sreprep).",
        ("rearm reprep",),
    ),
    "demo": (
        "A whole cluster in a temporary home, in drill mode: a group watching a small web "
        "server, crashed once to show the recovery; Ctrl-C ends it and removes everything.",
        ("rearm demo", "rearm demo --seconds 30"),
    ),
    "alert": (
        "Test the alert sinks ([[alerts]] in cluster.toml), list them, print the MIB.",
        ("rearm alert test", "rearm alert list"),
    ),
    "alert test": (
        "Send a test alert to each sink (or SINK) now, without the daemon.",
        ("rearm alert test", "rearm alert test ops-mail"),
    ),
    "alert list": ("The configured sinks: name, type, target, filter.", ("rearm alert list",)),
    "alert mib": (
        "Print REARM-MIB (for the trap receiver's MIB directory).",
        ("rearm alert mib > /usr/share/snmp/mibs/REARM-MIB.txt",),
    ),
    "template": (
        "Ready-made start/stop scripts and service definitions for common servers, imported "
        "into a group with 'rearm group template GROUP TEMPLATE'.",
        ("rearm template list", "rearm template show redis"),
    ),
    "template list": (
        "The templates rearm ships.",
        ("rearm template list", "rearm template list --json"),
    ),
    "template show": (
        "A template's variables, scripts and service definitions, filled in.",
        ("rearm template show postgresql", "rearm template show generic --set port=8080"),
    ),
    "passwd": (
        "Set the password of a Manager user (default: admin), stored as an argon2id hash in "
        "etc/manager-users.toml (mode 0600). A new user is an admin unless --read-only.",
        (
            "rearm passwd",
            "rearm passwd viewer --read-only",
            "rearm passwd admin --password-stdin < pw.txt",
        ),
    ),
    "ocf": (
        "Install or remove the Pacemaker resource agent ocf:rearm:group (docs/pacemaker.md).",
        ("rearm ocf install", "rearm ocf uninstall"),
    ),
    "ocf install": (
        "Install the agent into /usr/lib/ocf/resource.d/rearm/ (or under --prefix DIR).",
        ("rearm ocf install", "rearm ocf install --prefix /tmp/stage"),
    ),
    "ocf uninstall": ("Remove the agent.", ("rearm ocf uninstall",)),
    "export": (
        "The groups as another cluster manager's configuration.",
        ("rearm export pacemaker > rearm.xml",),
    ),
    "export pacemaker": (
        "One ocf:rearm:group primitive per group, the management address as an "
        "ocf:heartbeat:IPaddr2 primitive with its constraints (docs/pacemaker.md); --check runs "
        "crm_verify on the result merged into the cluster's CIB.",
        (
            "rearm export pacemaker --check > rearm.xml",
            "rearm export pacemaker SRE-GRP --format crm > rearm.crm",
        ),
    ),
    "bundle": (
        "Collect what a support case needs into one tar.gz (the original's log collection): "
        "the configuration with every secret masked (passwords, keys, hashes, communities), "
        "the event log, the status JSON, the recent watch and group logs, versions.",
        ("rearm bundle", "rearm bundle -o /tmp/case-1234.tar.gz"),
    ),
    "completion": (
        "Print a completion script for bash or zsh.",
        (
            "source <(rearm completion bash)",
            "rearm completion bash > /etc/bash_completion.d/rearm",
            'rearm completion zsh > "${fpath[1]}/_rearm"',
        ),
    ),
}

WIDTH = 78


def exit_status_text() -> str:
    lines = ["exit status:"]
    for code, meaning in EXIT_STATUS:
        wrapped = textwrap.wrap(meaning, WIDTH - 8)
        lines.append(f"  {code:<5} {wrapped[0]}")
        lines += [f"        {more}" for more in wrapped[1:]]
    return "\n".join(lines)


def examples_text(examples: tuple[str, ...]) -> str:
    return "examples:\n" + "\n".join(f"  {e}" for e in examples)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """A parser's subcommands by name (none: {})."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def walk(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser of the tree with its command path, depth first."""
    out = [(path, parser)]
    for name, sub in subcommands(parser).items():
        out += walk(sub, (*path, name))
    return out


def decorate(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every parser of the tree its description and examples; the top one the exit
    status table."""
    for path, p in walk(parser):
        p.formatter_class = argparse.RawDescriptionHelpFormatter
        if not path:
            p.description = textwrap.fill(DESCRIPTION, WIDTH)
            p.epilog = (
                examples_text(("rearm status", "rearm group start SRE-GRP", "rearm log --follow"))
                + "\n\n"
                + exit_status_text()
                + "\n\nSee rearm COMMAND --help, and the man pages rearm(8), armload(1), "
                "armkill(1), armem(1) and rearm.toml(5)."
            )
            continue
        known = COMMANDS.get(" ".join(path))
        if known is None:  # a command added without its text: keep its own (a test says so)
            continue
        description, examples = known
        p.description = textwrap.fill(description, WIDTH)
        p.epilog = examples_text(examples) + "\n\n" + SHORT_EXIT_STATUS
    return parser


SHORT_EXIT_STATUS = (
    "exit status: 0 done, 1 refused or failed, 2 bad command line, 3 daemon not running\n"
    "(all of them: rearm --help)"
)
