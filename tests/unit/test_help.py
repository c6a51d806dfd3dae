"""Every command and subcommand of `rearm` has a description and examples in --help, from one
source (rearm.cli.helptext), and `rearm --help` carries the exit status table (issue 13)."""

from __future__ import annotations

from rearm.cli import helptext
from rearm.cli.main import build_parser


def test_every_command_has_a_description_and_examples() -> None:
    missing = []
    for path, p in helptext.walk(build_parser()):
        name = " ".join(path) or "rearm"
        if not p.description or "examples:\n  " not in (p.epilog or "") or "rearm" not in p.epilog:
            missing.append(name)
        if path:
            assert " ".join(path) in helptext.COMMANDS, name
    assert missing == []


def test_the_text_source_names_only_commands_that_exist() -> None:
    paths = {" ".join(path) for path, _ in helptext.walk(build_parser())}
    assert set(helptext.COMMANDS) <= paths


def test_help_shows_the_exit_status_table_and_each_command_its_examples() -> None:
    text = build_parser().format_help()
    for code, _ in helptext.EXIT_STATUS:
        assert f"\n  {code:<5} " in text
    assert "130" in text and "daemon is not running" in text
    parser = build_parser()
    group = helptext.subcommands(parser)["group"]
    start = helptext.subcommands(group)["start"].format_help()
    assert "Already online: nothing is done" in start and "rearm group start SRE-GRP" in start
    assert "exit status: 0 done, 1 refused or failed" in start
