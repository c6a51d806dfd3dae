"""`rearm license` as a vendor and an operator meet it (SPEC §8), in a temporary REARM_HOME.

The vendor makes a keypair and issues a key; the operator's server trusts that vendor's public
key (etc/license-keys/), registers the key and lists it. Refusals are one line on stderr, exit 1,
and leave nothing behind. The commands run as the installed `rearm`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from rearm import license as lic
from rearm.cli import license_cmd

from .unix_users import Accounts, as_user

MALFORMED = (
    "rearm: license key refused: malformed (expected 8-character blocks of A-Z and 2-7 "
    "separated by -)"
)


class Setup:
    """A vendor folder and a server home, both temporary."""

    def __init__(self, root: Path) -> None:
        self.vendor = root / "vendor"
        self.home = root / "home"
        self.env = {**os.environ, "REARM_HOME": str(self.home)}

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "rearm"), "license", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def ok(self, *args: str) -> str:
        r = self.run(*args)
        assert r.returncode == 0 and r.stderr == "", r.stderr
        return r.stdout

    def refused(self, *args: str) -> str:
        """The one line a refusal prints on stderr (exit 1, nothing on stdout)."""
        r = self.run(*args)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        assert r.stdout == "" and "Traceback" not in r.stderr
        lines = r.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("rearm: "), r.stderr
        return lines[0]

    @property
    def private_key(self) -> str:
        return str(self.vendor / "rearm-vendor.key")

    @property
    def licenses(self) -> Path:
        return self.home / "etc" / "licenses"

    def trust_vendor(self) -> None:
        out = self.ok("trust", str(self.vendor / "rearm-vendor.pub"))
        assert out.startswith("trusted: vendor key ") and "etc/license-keys/rearm-vendor.pub" in out

    def listing(self) -> dict[str, Any]:
        report: dict[str, Any] = json.loads(self.ok("list", "--json"))
        return report


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    s = Setup(tmp_path)
    out = s.ok("keygen", "--out", str(s.vendor))
    assert "rearm-vendor.key (mode 0600" in out and "rearm-vendor.pub (key ID " in out
    return s


def test_vendor_issues_and_operator_registers_and_lists(setup: Setup) -> None:
    s = setup
    assert stat.S_IMODE(os.stat(s.private_key).st_mode) == 0o600
    key = s.ok("issue", "--private-key", s.private_key, "--serial", "AA000001").strip()
    assert len(key.split("-")) == 17

    # No vendor key is built in: a server trusts none until its operator installs one.
    line = s.refused("register", "--serial", "AA000001", "--key", key)
    assert "no vendor public key is trusted on this server" in line
    assert "'rearm license trust FILE.pub'" in line
    assert not s.licenses.exists()

    s.trust_vendor()
    # As typed from a label: lower case, blocks as separate words.
    out = s.ok("register", "--serial", "aa000001", "--key", *key.lower().split("-"))
    today = lic.utc_date(dt.datetime.now(dt.UTC).timestamp())
    assert out.splitlines() == [
        "The license was registered.",
        f"  serial AA000001: rearm, 1 node, perpetual (issued {today})",
    ]
    stored = s.licenses / "AA000001.toml"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert f'key = "{key}"' in stored.read_text()

    listing = s.ok("list")
    assert listing.splitlines()[0].split() == [
        "SERIAL",
        "PRODUCT",
        "NODES",
        "ISSUED",
        "EXPIRES",
        "STATUS",
    ]
    assert listing.splitlines()[1].split() == [
        "AA000001",
        "rearm",
        "1",
        str(today),
        "never",
        "valid",
    ]
    assert "enforcement: off" in listing

    report = s.listing()
    assert report["require_license"] is False and report["licensed"] is True
    (row,) = report["licenses"]
    assert row["serial"] == "AA000001" and row["status"] == "valid" and row["expires"] is None
    assert row["file"] == "etc/licenses/AA000001.toml"


def test_tampered_key_is_refused_and_nothing_is_stored(setup: Setup) -> None:
    s = setup
    s.trust_vendor()
    key = s.ok("issue", "--private-key", s.private_key, "--serial", "AA000001").strip()
    i = 30
    tampered = key[:i] + ("Q" if key[i] != "Q" else "R") + key[i + 1 :]
    assert s.refused("register", "--serial", "AA000001", "--key", tampered) == (
        "rearm: license key refused: signature does not verify (the key was mistyped or altered)"
    )
    assert s.refused("register", "--serial", "AA000001", "--key", key[:-8]) == (
        f"{MALFORMED}: 128 characters, a key has 136 (17 blocks)"
    )
    assert s.refused("register", "--serial", "AA000001", "--key", key.replace("A", "0", 1)) == (
        f"{MALFORMED}: found '0' in block 1 (did you mean the letter O?)"
    )
    assert s.refused("register", "--serial", "AB000001", "--key", key) == (
        "rearm: license key refused: the key belongs to serial AA000001, not AB000001"
    )
    assert s.refused("register", "--serial", "A1", "--key", key) == (
        "rearm: serial 'A1': expected two letters and six digits, e.g. AA000001"
    )
    assert not s.licenses.exists()
    assert s.ok("list").startswith("no licenses registered (register one with")


def test_expired_and_foreign_product_keys_are_refused(setup: Setup) -> None:
    s = setup
    s.trust_vendor()
    private = lic.load_private_key(s.private_key)
    # Issued in the past in-process: the command itself refuses an expiry before today.
    old = lic.issue(
        private,
        serial="AA000001",
        issued=dt.date(2025, 1, 1),
        expires=dt.date(2026, 1, 31),
    )
    assert s.refused("register", "--serial", "AA000001", "--key", old) == (
        "rearm: license key refused: expired on 2026-01-31"
    )
    other = s.ok(
        "issue", "--private-key", s.private_key, "--serial", "AA000001", "--product", "acme"
    ).strip()
    assert s.refused("register", "--serial", "AA000001", "--key", other) == (
        "rearm: license key refused: not a rearm key (product acme)"
    )
    assert not s.licenses.exists()


def test_reregistering_replaces_with_a_message(setup: Setup) -> None:
    s = setup
    s.trust_vendor()
    first = s.ok("issue", "--private-key", s.private_key, "--serial", "AA000001").strip()
    second = s.ok(
        "issue",
        "--private-key",
        s.private_key,
        "--serial",
        "AA000001",
        "--nodes",
        "2",
        "--expires",
        "2149-01-01",
    ).strip()
    s.ok("register", "--serial", "AA000001", "--key", first)
    out = s.ok("register", "--serial", "AA000001", "--key", second).splitlines()
    assert out[0] == "The license was registered."
    assert out[1].startswith("  serial AA000001: rearm, 2 nodes, expires 2149-01-01")
    assert out[2].startswith("  it replaces the key registered for AA000001 on ")
    assert out[2].endswith("(valid)")
    (row,) = s.listing()["licenses"]
    assert (row["nodes"], row["expires"]) == (2, "2149-01-01")


def test_list_reports_enforcement_and_bad_files(setup: Setup) -> None:
    s = setup
    (s.home / "etc").mkdir(parents=True)
    (s.home / "etc" / "cluster.toml").write_text("require_license = true\n")
    report = s.listing()
    assert report["require_license"] is True and report["licensed"] is False
    assert report["problem"].startswith("no license registered")
    assert "groups will not go online: no license registered" in s.ok("list")

    s.licenses.mkdir(mode=0o700)
    (s.licenses / "AA000009.toml").write_text('serial = "AA000009"\nkey = "NOTAKEY"\n')
    out = s.ok("list").splitlines()
    assert out[1].split()[:2] == ["AA000009", "-"]
    assert "invalid: malformed" in out[1]
    s.trust_vendor()
    key = s.ok("issue", "--private-key", s.private_key, "--serial", "AA000001").strip()
    s.ok("register", "--serial", "AA000001", "--key", key)
    report = s.listing()
    assert report["licensed"] is True and report["problem"] is None
    assert [r["status"] for r in report["licenses"]] == ["valid", "invalid"]
    assert s.ok("list").splitlines()[-1] == "enforcement: on; licensed: groups may go online"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--nodes", "0"], "rearm: --nodes '0': must be a whole number from 1 to 65535"),
        (["--nodes", "x"], "rearm: --nodes 'x': must be a whole number from 1 to 65535"),
        (["--expires", "2020-01-01"], "rearm: --expires 2020-01-01 is in the past"),
        (["--expires", "31.01.2027"], "rearm: --expires '31.01.2027': give a date as YYYY-MM-DD"),
        (["--product", "ACME"], "rearm: product 'ACME': use 1-8 characters"),
    ],
)
def test_issue_refuses_bad_options(setup: Setup, args: list[str], message: str) -> None:
    line = setup.refused("issue", "--private-key", setup.private_key, "--serial", "AA000001", *args)
    assert line.startswith(message)


def test_issue_and_keygen_guard_the_private_key(setup: Setup) -> None:
    s = setup
    assert "already exists: a vendor key is never overwritten" in s.refused(
        "keygen", "--out", str(s.vendor)
    )
    os.chmod(s.private_key, 0o640)
    assert "readable by others (mode 0640): chmod 600" in s.refused(
        "issue", "--private-key", s.private_key, "--serial", "AA000001"
    )
    assert "not a private key in PEM form" in s.refused(
        "issue", "--private-key", str(s.vendor / "rearm-vendor.pub"), "--serial", "AA000001"
    )


def test_register_adds_the_command_to_any_parser(tmp_path: Path) -> None:
    """What cli/main.py will do: `license_cmd.register(sub)` on the `rearm` parser."""
    parser = argparse.ArgumentParser(prog="rearm")
    parser.add_argument("--home")
    license_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["--home", str(tmp_path), "license", "list", "--json"])
    assert args.func is license_cmd.cmd_list and args.json is True
    args = parser.parse_args(["license", "register", "--serial", "AA000001", "--key", "A", "B"])
    assert args.func is license_cmd.cmd_register and args.key == ["A", "B"]
    with pytest.raises(SystemExit):
        parser.parse_args(["license"])  # an action is required


def test_trust_refuses_what_is_not_a_public_key(setup: Setup) -> None:
    s = setup
    line = s.refused("trust", s.private_key)
    assert "not a public key in PEM form" in line
    assert not (s.home / "etc" / "license-keys").exists()
    s.trust_vendor()
    pub = s.home / "etc" / "license-keys" / "rearm-vendor.pub"
    assert stat.S_IMODE(pub.stat().st_mode) == 0o644


def test_a_trust_anchor_another_user_could_change_is_refused(
    open_dir: Path, unix: Accounts
) -> None:
    """Issue 18 (Low): license .pub files were read without a trust check. A local user who
    may write etc/license-keys/ (a folder given away by mistake) puts a key of their own there
    and issues themselves a license: before the fix it was accepted."""
    s = Setup(open_dir)  # a home other users can walk into
    user = unix.user("rlic")
    keys = s.home / "etc" / "license-keys"
    keys.mkdir(parents=True)
    os.chown(keys, user.pw_uid, user.pw_gid)
    # The user's own keypair (made here on their behalf: any Ed25519 tool would do), its
    # public half planted by the user, and a license the user signs for themselves.
    own = Path(tempfile.mkdtemp(prefix="rearm-lic-"))
    try:
        lic.write_keypair(str(own / "k"))
        for path in (own, own / "k", own / "k" / "rearm-vendor.pub"):
            os.chown(path, user.pw_uid, user.pw_gid)
        own.chmod(0o755)
        r = subprocess.run(
            ["/bin/cp", str(own / "k" / "rearm-vendor.pub"), str(keys / "mine.pub")],
            capture_output=True,
            text=True,
            timeout=60,
            **as_user(user),  # type: ignore[arg-type]
        )
        assert r.returncode == 0, r.stderr
        forged = lic.issue(
            lic.load_private_key(str(own / "k" / "rearm-vendor.key")),
            serial="AA000007",
            issued=lic.utc_date(dt.datetime.now(dt.UTC).timestamp()),
        )
    finally:
        shutil.rmtree(own, ignore_errors=True)
    line = s.refused("register", "--serial", "AA000007", "--key", forged)
    assert "trusted license key etc/license-keys/mine.pub refused" in line
    assert f"owner {user.pw_name}" in line or f"uid {user.pw_uid}" in line, line
    assert not s.licenses.exists()
