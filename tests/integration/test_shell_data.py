"""No user string ever reaches a shell: armload's arguments reach the program as exact argv.

The program writes the argv it got to a file; the test compares it with what was given, and
checks that none of the side effects the arguments ask a shell for happened. Watch IDs may only
hold A-Z a-z 0-9 _ (SPEC §4): anything else is refused with a clear error, never interpreted.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest

from rearm.api.client import ApiFailure, call

from .harness import Cluster, wait_for

# Writes its arguments (after the output path) as JSON, atomically, then exits.
RECORDER = (
    "import json, os, sys\n"
    "out = sys.argv[1]\n"
    "with open(out + '.tmp', 'w') as f:\n"
    "    json.dump(sys.argv[2:], f)\n"
    "os.replace(out + '.tmp', out)\n"
)


def hostile(marker: Path) -> list[str]:
    """Arguments a shell would act on: each asks it to create `marker` or to expand something."""
    m = str(marker)
    return [
        f"$(touch {m})",
        f"`touch {m}`",
        f"; touch {m}",
        f"&& touch {m} &&",
        f"| touch {m}",
        f"> {m}",
        f"x\ntouch {m}\n",
        f"'; touch {m}; '",
        f'"; touch {m}; "',
        "*",
        "/*",
        "?",
        "[a-z]*",
        "~",
        "~root",
        "$HOME",
        "${PATH}",
        "$0 $1 $@",
        "\\",
        "a b\tc",
        "",
        "-c",
        "/R",
        "--",
        "# not a comment",
        "{a,b}",
        "ünïcödé ☃",
    ]


def recorded(out: Path) -> list[str]:
    wait_for(f"{out} to be written", out.exists)
    return list(json.loads(out.read_text()))


def test_arguments_reach_the_program_unchanged_from_the_command_line(
    cluster: Cluster, tmp_path: Path
) -> None:
    marker, out = tmp_path / "pwned", tmp_path / "argv.json"
    args = hostile(marker)
    cluster.ok("armload", "DIRECT", sys.executable, "-c", RECORDER, str(out), *args)
    assert recorded(out) == args
    assert not marker.exists()
    w = cluster.watch("DIRECT")
    assert w is None or w["target"].startswith(sys.executable)


def test_arguments_reach_the_program_unchanged_from_a_start_script(
    cluster: Cluster, tmp_path: Path
) -> None:
    """The script quotes them as any shell script must; armload and the daemon add nothing."""
    marker, out = tmp_path / "pwned", tmp_path / "argv.json"
    args = hostile(marker)
    line = shlex.join(["armload", "SCRIPTED", sys.executable, "-c", RECORDER, str(out), *args])
    cluster.write_group("G", line)
    cluster.rearm("group", "start", "G")
    assert recorded(out) == args
    assert not marker.exists()


def test_arguments_of_a_declarative_watch_reach_the_program_unchanged(
    cluster: Cluster, tmp_path: Path
) -> None:
    marker, out = tmp_path / "pwned", tmp_path / "argv.json"
    args = hostile(marker)
    # JSON strings are TOML basic strings (the same escapes).
    command = ", ".join(json.dumps(a) for a in [sys.executable, "-c", RECORDER, str(out), *args])
    cluster.write_group("G", "", extra=f'\n[[watches]]\nid = "DECL"\ncommand = [{command}]\n')
    cluster.rearm("group", "start", "G")
    assert recorded(out) == args
    assert not marker.exists()


def test_a_service_definitions_command_is_argv_not_a_shell_line(
    cluster: Cluster, tmp_path: Path
) -> None:
    marker, out = tmp_path / "pwned", tmp_path / "argv.json"
    args = hostile(marker)
    command = ", ".join(json.dumps(a) for a in [sys.executable, "-c", RECORDER, str(out), *args])
    cluster.write_service("rec", f"command = [{command}]\n")
    cluster.ok("armload", "SVC", "/S", "rec")
    assert recorded(out) == args
    assert not marker.exists()


def hostile_ids(marker: Path) -> list[str]:
    m = str(marker)
    return [
        f"$(touch {m})",
        f"`touch {m}`",
        f"A;touch {m}",
        f"A|touch {m}",
        f"A&&touch {m}",
        "A B",
        "A\nB",
        "A'B",
        'A"B',
        "A*",
        "A?",
        "../A",
        "A-B",
        "A.B",
        "ÄÖÜ",
    ]


def test_watch_ids_with_shell_characters_are_refused_with_the_rule(
    cluster: Cluster, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    for watch_id in hostile_ids(marker):
        r = cluster.run("armload", watch_id, "/bin/sleep", "1000")
        assert r.returncode != 0, watch_id
        [line] = r.stderr.strip().splitlines()
        assert "use 1-255 characters of A-Z, a-z, 0-9 and _" in line, line
        r = cluster.run("armkill", watch_id)
        assert r.returncode != 0 and "A-Z, a-z, 0-9 and _" in r.stderr, watch_id
    assert not marker.exists()
    assert cluster.watches() == {}


def _api(cluster: Cluster, op: str, args: dict[str, Any]) -> str:
    try:
        call(str(cluster.home / "run" / "rearm.sock"), op, args)
    except ApiFailure as e:
        return str(e)
    raise AssertionError(f"{op} {args} was accepted")


@pytest.mark.parametrize("field", ["watch_id", "user", "service"])
def test_hand_made_requests_meet_the_same_rules(
    cluster: Cluster, tmp_path: Path, field: str
) -> None:
    """The socket re-checks what armload checked: a hand-made request cannot slip past."""
    marker = tmp_path / "pwned"
    evil = f"$(touch {marker})"
    request: dict[str, Any] = {"watch_id": "OK1", "argv": ["/bin/sleep", "1000"]}
    if field == "service":
        request = {"watch_id": "OK1", "service": evil}
    else:
        request[field] = evil
    error = _api(cluster, "armload", {"request": request})
    rule = {"watch_id": "0-9 and _", "user": "user must be", "service": "service name"}[field]
    assert rule in error
    assert not marker.exists() and cluster.watches() == {}


def test_a_user_name_with_shell_characters_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    r = cluster.run("armload", "U1", "/U", f"root;touch {marker}", "/bin/sleep", "1000")
    assert r.returncode != 0 and "user must be a user name" in r.stderr
    assert not marker.exists() and cluster.watch("U1") is None
