"""`rearm completion bash|zsh`: a completion script made from the very parsers `rearm` runs, so
it never lists a command or option that does not exist (rearm.cli.helptext.walk).

Bash: one function, `_rearm`, with the tree as associative arrays (bash >= 4). zsh: the same
function through zsh's bashcompinit (so no variable of it may be named like one of zsh's
specials: path, words...). Group names are completed from the groups folder of the
home in use (--home, else $REARM_HOME, else /etc/rearm).
"""

from __future__ import annotations

import argparse
import shlex

from rearm.cli.helptext import walk

GROUPS = "@groups"  # a positional that is a group name


def _tree(
    parser: argparse.ArgumentParser,
) -> tuple[dict[str, str], dict[str, str], set[str], dict[str, str]]:
    """For each command path ("rearm", "rearm group", "rearm group start"...): its subcommands,
    its options and what its positionals take; and every option that takes a value."""
    subs: dict[str, str] = {}
    opts: dict[str, str] = {}
    takes: set[str] = set()
    positional: dict[str, str] = {}
    for path, p in walk(parser):
        key = " ".join(("rearm", *path))  # bash arrays take no empty key
        names: list[str] = []
        options: list[str] = []
        values: list[str] = []
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction):
                names += list(action.choices)
            elif action.option_strings:
                options += action.option_strings
                if action.nargs != 0:
                    takes.update(action.option_strings)
            elif action.choices:
                values += [str(c) for c in action.choices]
            elif action.dest == "name" and (path[:1] == ("group",) or path == ("status",)):
                values.append(GROUPS)
        subs[key] = " ".join(names)
        opts[key] = " ".join(options)
        if values:
            positional[key] = " ".join(values)
    return subs, opts, takes, positional


def _array(name: str, items: dict[str, str]) -> str:
    body = " ".join(f"[{shlex.quote(k)}]={shlex.quote(v)}" for k, v in sorted(items.items()))
    return f"    local -A {name}=({body})"


BASH = r"""# bash completion for rearm: source <(rearm completion bash)
_rearm_groups() {
    local folder=/etc/rearm/groups
    [ -n "$1" ] && folder="$1/etc/groups"
    [ -d "$folder" ] && (cd "$folder" && for g in */; do printf "%s\n" "${g%/}"; done)
}
_rearm() {
@SUBS@
@OPTS@
@TAKES@
@POSITIONAL@
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local cmd=rearm w i skip=0 home="${REARM_HOME:-}" next
    for ((i = 1; i < COMP_CWORD; i++)); do
        w="${COMP_WORDS[i]}"
        if ((skip)); then
            skip=0
            [ "${COMP_WORDS[i-1]}" = --home ] && home="$w"
            continue
        fi
        if [ -n "${takes[$w]:-}" ]; then skip=1; continue; fi
        case "$w" in -*) continue ;; esac
        next="$cmd $w"
        if [ -n "${sub[$next]+x}" ]; then cmd="$next"; fi
    done
    if [ -n "${takes[$prev]:-}" ]; then
        COMPREPLY=($(compgen -f -- "$cur"))
        return
    fi
    local offer
    case "$cur" in
    -*) offer="${opt[$cmd]}" ;;
    *)
        offer="${sub[$cmd]} ${positional[$cmd]:-}"
        if [ "${offer#*@groups}" != "$offer" ]; then
            offer="${offer//@groups/} $(_rearm_groups "$home")"
        fi
        ;;
    esac
    COMPREPLY=($(compgen -W "$offer" -- "$cur"))
}
complete -F _rearm rearm
complete -W '/M reboot shutdown panic stopgroup none' armem
complete -W '/C /T' armkill
complete -W '/S /A /R /H /SCR /INT /WAIT /U' -o default armload
"""


def bash_script(parser: argparse.ArgumentParser) -> str:
    subs, opts, takes, positional = _tree(parser)
    return (
        BASH.replace("@SUBS@", _array("sub", subs))
        .replace("@OPTS@", _array("opt", opts))
        .replace("@TAKES@", _array("takes", {o: "1" for o in takes}))
        .replace("@POSITIONAL@", _array("positional", positional))
    )


def zsh_script(parser: argparse.ArgumentParser) -> str:
    return (
        "#compdef rearm armload armkill armem\n"
        "# zsh completion for rearm: the bash completion through bashcompinit\n"
        "autoload -U +X bashcompinit && bashcompinit\n" + bash_script(parser)
    )


def cmd_completion(args: argparse.Namespace) -> int:
    from rearm.cli.main import build_parser

    parser = build_parser()
    print(bash_script(parser) if args.shell == "bash" else zsh_script(parser), end="")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser("completion", help="print a bash or zsh completion script")
    p.add_argument("shell", choices=["bash", "zsh"])
    p.set_defaults(func=cmd_completion)
