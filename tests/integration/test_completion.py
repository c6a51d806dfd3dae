"""`rearm completion bash|zsh` in real shells (issue 13): `complete -p` shows it registered,
and the completion function, driven as bash drives it, offers commands, subcommands, options
and the group names of the home in use."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from .harness import BIN, Cluster


def _bash(script: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": f"{BIN}:/usr/bin:/bin", "HOME": "/nonexistent"}
    if home is not None:
        env["REARM_HOME"] = str(home)
    return subprocess.run(
        [
            "bash",
            "--norc",
            "--noprofile",
            "-c",
            f"source <(rearm completion bash) || exit 9\n{script}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _complete(*words: str, home: Path | None = None) -> set[str]:
    """What completing the last of `words` offers."""
    quoted = " ".join(f"'{w}'" for w in words)
    r = _bash(
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}; _rearm; "
        'printf "%s\\n" "${COMPREPLY[@]}"',
        home,
    )
    assert r.returncode == 0 and r.stderr == "", r.stderr
    return {line for line in r.stdout.splitlines() if line}


def test_bash_registers_the_completion() -> None:
    r = _bash("complete -p rearm; complete -p armem; complete -p armload")
    assert r.returncode == 0, r.stderr
    assert "complete -F _rearm rearm" in r.stdout
    assert "armem" in r.stdout and "armload" in r.stdout


def test_bash_completes_commands_options_and_groups(offline_cluster: Cluster) -> None:
    home = offline_cluster.home
    for name in ("SRE-GRP", "WEB"):
        offline_cluster.rearm("group", "create", name)
    assert {"group", "status", "reboots", "restart", "bundle"} <= _complete("rearm", "")
    assert _complete("rearm", "gr") == {"group"}
    assert _complete("rearm", "group", "st") == {"start", "stop"}
    assert _complete("rearm", "group", "start", "", home=home) == {"SRE-GRP", "WEB"}
    assert _complete("rearm", "--home", str(home), "group", "stop", "S") == {"SRE-GRP"}
    assert _complete("rearm", "group", "edit", "WEB", "", home=home) >= {"start", "stop"}
    assert {"--follow", "--group", "--watch", "--kind", "--since", "--until"} <= _complete(
        "rearm", "log", "--"
    )
    assert _complete("rearm", "completion", "") == {"bash", "zsh"}
    assert _complete("rearm", "status", "W", home=home) == {"WEB"}


def test_zsh_loads_the_completion_and_offers_the_same(offline_cluster: Cluster) -> None:
    offline_cluster.rearm("group", "create", "SRE-GRP")
    script = (
        "autoload -U compinit && compinit -u -D\n"
        "source <(rearm completion zsh)\n"
        "print -r -- ${_comps[rearm]}\n"
        # zsh's own matching filters what compgen offers: the function offers all of a level.
        "setopt ksharrays; COMP_WORDS=(rearm group start ''); COMP_CWORD=3; _rearm\n"
        "print -r -- ${COMPREPLY[@]}\n"
        "COMP_WORDS=(rearm group ''); COMP_CWORD=2; _rearm\n"
        "print -r -- ${COMPREPLY[@]}\n"
    )
    r = subprocess.run(
        ["zsh", "-f", "-c", script],
        env={
            "PATH": f"{BIN}:/usr/bin:/bin",
            "HOME": os.environ.get("TMPDIR", "/tmp"),
            "REARM_HOME": str(offline_cluster.home),
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    registered, groups, subcommands = r.stdout.splitlines()
    assert registered == "_bash_complete -F _rearm"
    assert groups.split() == ["SRE-GRP"]
    assert {"create", "start", "stop", "restart", "edit"} <= set(subcommands.split())
