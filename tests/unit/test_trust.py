"""rearm.trust: which files the daemon may act on, decided from stat facts alone (no I/O)."""

from __future__ import annotations

import json
import os
import pwd
import stat
from pathlib import Path

import pytest

from rearm import trust
from rearm.backends import process
from rearm.trust import Entry, findings, refusal

TRUSTED = frozenset({0, 990})  # root and the daemon's user
SCRIPT = "/etc/rearm/groups/web/start.sh"


def node(path: str, mode: int, uid: int = 0, kind: int = stat.S_IFDIR) -> Entry:
    names = {0: "root", 990: "rearm", 1000: "alice", 65534: "nobody"}
    return Entry(path, kind | mode, uid, names.get(uid, str(uid)))


def chain(
    file_mode: int = 0o755,
    file_uid: int = 0,
    folders: dict[str, tuple[int, int]] | None = None,
    path: str = SCRIPT,
) -> list[Entry]:
    """The file, then each folder up to / (0755 root unless `folders` says otherwise)."""
    folders = folders or {}
    out = [node(path, file_mode, file_uid, stat.S_IFREG)]
    current = os.path.dirname(path)
    while True:
        mode, uid = folders.get(current, (0o755, 0))
        out.append(node(current, mode, uid))
        if current == "/":
            return out
        current = os.path.dirname(current)


def test_a_root_owned_file_in_root_owned_folders_is_trusted() -> None:
    assert findings(chain(), TRUSTED, "root") == []
    assert findings(chain(0o700, 990), TRUSTED, "root") == []  # the daemon's own user


@pytest.mark.parametrize(
    ("mode", "writers", "fix"),
    [
        (0o757, "others", "chmod o-w"),
        (0o775, "its group", "chmod g-w"),
        (0o777, "its group and others", "chmod go-w"),
        (0o666, "its group and others", "chmod go-w"),
    ],
)
def test_a_file_writable_by_others_is_refused_with_its_fix(
    mode: int, writers: str, fix: str
) -> None:
    [f] = findings(chain(mode), TRUSTED, "root")
    assert f.path == SCRIPT
    assert f.problem == f"{SCRIPT} is writable by {writers} (mode {mode:04o}, owner root)"
    assert f.fix == f"{fix} {SCRIPT}"


def test_a_file_owned_by_another_user_is_refused_even_when_only_its_owner_writes() -> None:
    [f] = findings(chain(0o644, 65534), TRUSTED, "root")
    assert "belongs to uid 65534 (nobody)" in f.problem and "mode 0644" in f.problem
    assert f.fix == f"chown root {SCRIPT}"


def test_the_fix_hands_the_file_to_the_daemons_user_when_it_is_not_root() -> None:
    [f] = findings(chain(0o644, 1000), frozenset({0, 990}), "rearm")
    assert f.fix == f"chown rearm {SCRIPT}"


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o777])
def test_a_folder_writable_by_others_makes_every_file_in_it_unsafe(mode: int) -> None:
    folder = "/etc/rearm/groups/web"
    [f] = findings(chain(folders={folder: (mode, 0)}), TRUSTED, "root")
    assert f.path == folder
    assert f"{folder} is a folder writable by" in f.problem and "replace start.sh" in f.problem
    assert f"(mode {mode:04o}, owner root)" in f.problem
    assert f.fix.startswith("chmod ") and f.fix.endswith(f"-w {folder}")


def test_a_folder_higher_up_counts_as_well() -> None:
    [f] = findings(chain(folders={"/etc": (0o777, 0)}), TRUSTED, "root")
    assert f.path == "/etc" and "replace rearm" in f.problem and f.fix == "chmod go-w /etc"


def test_a_folder_owned_by_another_user_is_refused() -> None:
    [f] = findings(chain(folders={"/etc/rearm": (0o755, 1000)}), TRUSTED, "root")
    assert f.path == "/etc/rearm" and "uid 1000 (alice)" in f.problem
    assert f.fix == "chown root /etc/rearm"


def test_a_sticky_folder_protects_entries_of_trusted_owners_only() -> None:
    path = "/tmp/home/etc/services/web.toml"
    sticky = {"/tmp": (0o1777, 0)}
    assert findings(chain(0o644, path=path, folders=sticky), TRUSTED, "root") == []
    # /tmp/home belongs to alice: she can rename it away and put her own tree there.
    [f] = findings(
        chain(0o644, path=path, folders={**sticky, "/tmp/home": (0o755, 1000)}), TRUSTED, "root"
    )
    assert f.path == "/tmp/home" and f.fix == "chown root /tmp/home"


def test_a_sticky_folder_writable_by_others_is_no_excuse_for_the_file_itself() -> None:
    path = "/tmp/start.sh"
    [f] = findings(chain(0o646, path=path, folders={"/tmp": (0o1777, 0)}), TRUSTED, "root")
    assert f.path == path and f.fix == f"chmod o-w {path}"


def test_a_link_is_judged_by_its_folder_and_an_untrusted_link_in_a_sticky_folder_is_not() -> None:
    link = node("/tmp/rearm", 0o777, 1000, stat.S_IFLNK)
    home = [
        node("/tmp/rearm/etc/cluster.toml", 0o644, 0, stat.S_IFREG),
        node("/tmp/rearm/etc", 0o755),
        link,
        node("/tmp", 0o1777),
        node("/", 0o755),
    ]
    [f] = findings(home, TRUSTED, "root")
    assert f.path == "/tmp/rearm" and "link owned by uid 1000" in f.problem
    assert f.fix == "chown -h root /tmp/rearm"
    trusted_link = node("/tmp/rearm", 0o777, 0, stat.S_IFLNK)
    assert findings([home[0], home[1], trusted_link, *home[3:]], TRUSTED, "root") == []


def test_the_resolved_chain_after_the_written_one_is_judged_on_its_own() -> None:
    written = [
        node("/etc/rearm/cluster.toml", 0o777, 0, stat.S_IFLNK),
        node("/etc/rearm", 0o755),
        node("/etc", 0o755),
        node("/", 0o755),
    ]
    resolved = [node("/srv/conf/cluster.toml", 0o666, 0, stat.S_IFREG), node("/srv/conf", 0o755)]
    [f] = findings(written + resolved, TRUSTED, "root")
    assert f.path == "/srv/conf/cluster.toml" and f.fix == "chmod go-w /srv/conf/cluster.toml"


def test_every_problem_is_listed_and_the_refusal_is_one_line() -> None:
    found = findings(chain(0o777, 1000, folders={"/etc": (0o775, 0)}), TRUSTED, "root")
    assert [f.fix for f in found] == [
        f"chown root {SCRIPT}",
        f"chmod go-w {SCRIPT}",
        "chmod g-w /etc",
    ]
    message = refusal("start.sh of group web", found, "root")
    assert message.startswith(
        f"start.sh of group web refused (others could change what rearm runs as root): {SCRIPT}"
    )
    assert "\n" not in message
    assert all(f"fix: {f.fix}" in message for f in found)


# --- the I/O wrapper, on real files -------------------------------------------------------------


def test_check_reads_the_real_modes(tmp_path: Path) -> None:
    script = tmp_path / "start.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    trust.check(str(script), "start.sh")
    script.chmod(0o757)
    with pytest.raises(trust.UntrustedFile, match=rf"fix: chmod o-w {script}$"):
        trust.check(str(script), "start.sh")
    script.chmod(0o755)
    tmp_path.chmod(0o775)
    try:
        [f] = trust.problems(str(script))
        assert f.path == str(tmp_path) and f.fix == f"chmod g-w {tmp_path}"
    finally:
        tmp_path.chmod(0o700)


def test_check_follows_links_to_what_they_point_to(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    target = real / "cluster.toml"
    target.write_text("")
    target.chmod(0o644)
    link = tmp_path / "cluster.toml"
    link.symlink_to(target)
    assert trust.problems(str(link)) == []
    real.chmod(0o777)
    try:
        [f] = trust.problems(str(link))
        assert f.path == str(real)
    finally:
        real.chmod(0o755)


def test_a_missing_file_is_not_a_trust_problem(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        trust.check(str(tmp_path / "nothing.toml"), "nothing")


def test_the_manager_users_file_is_judged_as_well(tmp_path: Path) -> None:
    """Whoever can write it can make themselves a Manager admin, who can edit start.sh."""
    from rearm.paths import Home
    from rearm.web.users import load_users, users_file

    home = Home.from_env(str(tmp_path))
    path = Path(users_file(home))
    path.parent.mkdir()
    path.write_text("[users]\n")
    path.chmod(0o600)
    assert load_users(home) == {}
    path.chmod(0o606)
    with pytest.raises(trust.UntrustedFile, match=rf"fix: chmod o-w {path}$"):
        load_users(home)


# --- processes that claim to be targets (after a lost state database) ---------------------------


def request(**fields: object) -> dict[str, str]:
    return {"REARM_REQUEST": json.dumps({"watch_id": "W", "argv": ["/bin/sh"], **fields})}


def test_processes_of_root_or_the_daemons_user_may_be_claimed() -> None:
    assert process.may_claim(0, {})
    assert process.may_claim(os.geteuid(), {})


def test_another_users_process_is_claimed_only_as_that_user() -> None:
    nobody = pwd.getpwnam("nobody")
    assert process.may_claim(nobody.pw_uid, request(user="nobody"))
    assert process.may_claim(nobody.pw_uid, request(user=str(nobody.pw_uid)))
    # Forged: a request that would be run again as root, or as someone else.
    assert not process.may_claim(nobody.pw_uid, request())
    assert not process.may_claim(nobody.pw_uid, request(user="root"))
    assert not process.may_claim(nobody.pw_uid, request(user="0"))
    assert not process.may_claim(nobody.pw_uid, request(user="no_such_user_x"))
    assert not process.may_claim(nobody.pw_uid, {"REARM_REQUEST": "not json"})
    assert not process.may_claim(nobody.pw_uid, {"REARM_REQUEST": "[1, 2]"})
    assert not process.may_claim(nobody.pw_uid, {})


def test_a_service_process_is_claimed_as_its_definitions_user() -> None:
    nobody = pwd.getpwnam("nobody")
    service = {"REARM_REQUEST": json.dumps({"watch_id": "W", "service": "web"})}
    users = {"web": "nobody", "db": None}
    assert process.may_claim(nobody.pw_uid, service, users.get)
    # A definition without user= runs as root: never taken from another user's process.
    db = {"REARM_REQUEST": json.dumps({"watch_id": "W", "service": "db"})}
    assert not process.may_claim(nobody.pw_uid, db, users.get)
    # Without a way to read definitions, or for one that does not exist: refused.
    assert not process.may_claim(nobody.pw_uid, service)
    missing = {"REARM_REQUEST": json.dumps({"watch_id": "W", "service": "gone"})}
    assert not process.may_claim(nobody.pw_uid, missing, users.get)
