"""The [limits] table of a service definition: parsing, errors and prlimit's options."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from rearm.backends import process
from rearm.config import load_service
from rearm.limits import MAX_VALUE, Limit, limits_from, prlimit_options
from rearm.paths import Home
from rearm.validate import ConfigError, Table


def parse(text: str) -> tuple[Limit, ...]:
    t = Table(tomllib.loads(text), "etc/services/web.toml")
    return limits_from(t)


def test_no_table_no_limits() -> None:
    assert parse('command = ["/bin/true"]') == ()


def test_numbers_unlimited_and_soft_hard_pairs() -> None:
    limits = parse(
        "[limits]\n"
        "nofile = { soft = 1024, hard = 4096 }\n"
        "core = 0\n"
        'cpu = "unlimited"\n'
        'stack = { soft = 8388608, hard = "unlimited" }\n'
        "as = 1073741824\n"
    )
    assert limits == (
        Limit("nofile", 1024, 4096),
        Limit("core", 0, 0),
        Limit("stack", 8388608, None),
        Limit("as", 1073741824, 1073741824),
        Limit("cpu", None, None),
    )
    assert prlimit_options(limits) == [
        "--nofile=1024:4096",
        "--core=0:0",
        "--stack=8388608:unlimited",
        "--as=1073741824:1073741824",
        "--cpu=unlimited:unlimited",
    ]


def test_every_kind_is_one_of_prlimits_options() -> None:
    text = "[limits]\n" + "".join(
        f"{k} = 1\n" for k in ("nofile", "nproc", "core", "memlock", "stack", "as", "cpu", "fsize")
    )
    assert len(parse(text)) == 8


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nofiles = 10", "unknown key 'limits.nofiles' (known keys: as, core, cpu, fsize,"),
        ("nofile = -1", "key 'limits.nofile': must be a whole number from 0 to"),
        (f"nofile = {MAX_VALUE + 1}", "key 'limits.nofile': must be a whole number"),
        ('nofile = "lots"', '"unlimited", or { soft = ..., hard = ... }'),
        ("nofile = true", "key 'limits.nofile': must be"),
        ("nofile = 1.5", "key 'limits.nofile': must be"),
        ("nofile = { soft = 10 }", "key 'limits.nofile': give both soft and hard"),
        ("nofile = { soft = 10, hard = 20, max = 3 }", "unknown key 'limits.nofile.max'"),
        ("nofile = { soft = 20, hard = 10 }", "the soft limit (20) is above the hard limit (10)"),
        ('nofile = { soft = "unlimited", hard = 10 }', "soft limit (unlimited) is above"),
        ("nofile = { soft = -2, hard = 10 }", "key 'limits.nofile.soft': must be"),
    ],
)
def test_bad_limits_name_the_key_and_the_rule(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse("[limits]\n" + text)
    assert str(e.value).startswith("etc/services/web.toml: ")
    assert message in str(e.value)


def test_limits_must_be_a_table() -> None:
    with pytest.raises(ConfigError, match="key 'limits': must be a table"):
        parse("limits = 3")


def test_load_service_reads_limits(tmp_path: Path) -> None:
    home = Home.from_env(str(tmp_path / "home"))
    path = Path(home.service_file("web"))
    path.parent.mkdir(parents=True)
    path.write_text('command = ["/bin/sleep", "9"]\n[limits]\nnofile = 512\n')
    service = load_service(home, "web")
    assert service is not None and service.limits == (Limit("nofile", 512, 512),)


def test_spawn_puts_prlimit_first_so_limits_are_set_before_the_user_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []

    def fake_spawn(path: str, argv: list[str], env: dict[str, str], **kw: object) -> int:
        seen.append(argv)
        raise OSError(1, "stop here")

    monkeypatch.setattr(process.os, "posix_spawn", fake_spawn)
    with pytest.raises(process.SpawnError):
        process.spawn(
            ["/bin/true", "x"],
            {},
            str(tmp_path / "log"),
            cwd="/",
            user="nobody",
            limits=(Limit("nofile", 10, 20), Limit("core", 0, None)),
        )
    [argv] = seen
    assert argv[:4] == [process.PRLIMIT, "--nofile=10:20", "--core=0:unlimited", "--"]
    assert argv[4] == process.SETPRIV and argv[-2:] == ["/bin/true", "x"]
