"""`rearm bundle` (issue 13, the original's log collection): one tar.gz with the configuration
(every secret masked), the event log, the status JSON, recent watch and group logs and
versions -- and not one password, key or hash in it: the test greps every byte of the archive
for each secret it planted."""

from __future__ import annotations

import json
import re
import tarfile
from pathlib import Path

from tests.web.manager import passwd

from .harness import Cluster

COMMUNITY = "c0mmunity-XYZZY-17"
AUTH = "authpass-QWERTY-42"
PRIV = "privpass-ASDFG-99"
MAIL = "mailpass-ZXCV-31"
HOOK = "hooksecret-POIU-58"
DBPASS = "dbpass-LKJH-77"
SCRIPTPASS = "scriptpass-MNBV-12"
MANAGER = "manager-password-GFDS-66"
ALERTS = f"""
[[alerts]]
type = "snmp"
target = "127.0.0.1:9"
community = "{COMMUNITY}"

[[alerts]]
type = "snmp"
name = "v3"
target = "127.0.0.1:9"
version = "3"
user = "rearm"
auth_protocol = "sha256"
auth_password = "{AUTH}"
priv_password_file = "priv.secret"

[[alerts]]
type = "mail"
host = "127.0.0.1"
port = 9
username = "rearm"
password = "{MAIL}"
to = ["ops@example.org"]

[[alerts]]
type = "webhook"
url = "http://127.0.0.1:9/hook"
secret = "{HOOK}"
"""


def test_a_bundle_holds_what_support_needs_and_no_secret(cluster: Cluster, tmp_path: Path) -> None:
    home = cluster.home
    with open(home / "etc" / "cluster.toml", "a") as f:
        f.write(ALERTS)
    (home / "etc" / "priv.secret").write_text(PRIV + "\n")
    (home / "etc" / "priv.secret").chmod(0o600)
    assert passwd(home, "admin", MANAGER).returncode == 0
    users_file = (home / "etc" / "manager-users.toml").read_text()
    argon2 = re.search(r'hash = "(\$argon2[^"]+)"', users_file)
    assert argon2 is not None
    cluster.write_service(
        "db",
        'command = ["/bin/sleep", "4713.13"]\n'
        f'environment = {{ PGPASSWORD = "{DBPASS}", LANG = "C.UTF-8" }}\n',
    )
    cluster.write_group(
        "G",
        f'export APP_PASSWORD="{SCRIPTPASS}"\necho "starting G"\narmload DB /S /R 1 db',
    )
    cluster.rearm("reload")
    cluster.rearm("group", "start", "G")
    cluster.wait_running("DB")

    out = tmp_path / "case.tar.gz"
    said = cluster.rearm("bundle", "-o", str(out))
    assert f"wrote {out}" in said and "secrets masked" in said
    assert (out.stat().st_mode & 0o777) == 0o600

    with tarfile.open(out) as tar:
        members = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    everything = b"\n".join([out.read_bytes(), *members.values()])
    for secret in (COMMUNITY, AUTH, PRIV, MAIL, HOOK, DBPASS, SCRIPTPASS, MANAGER, argon2.group(1)):
        assert secret.encode() not in everything, secret
    assert b"$argon2" not in everything and b"PRIVATE KEY" not in everything

    # What support needs is there.
    cluster_toml = members["etc/cluster.toml"].decode()
    assert 'community = "***"' in cluster_toml and 'secret = "***"' in cluster_toml
    assert 'priv_password_file = "priv.secret"' in cluster_toml  # where, not what
    assert 'target = "127.0.0.1:9"' in cluster_toml and 'name = "testcl"' in cluster_toml
    assert 'PGPASSWORD = "***"' in members["etc/services/db.toml"].decode()
    assert "APP_PASSWORD=***" in members["etc/groups/G/start.sh"].decode()
    assert "armload DB /S /R 1 db" in members["etc/groups/G/start.sh"].decode()
    assert "admin: admin" in members["etc/manager-users.txt"].decode()
    status = json.loads(members["status.json"])
    assert status["groups"][0]["watches"][0]["id"] == "DB"
    kinds = {json.loads(line)["kind"] for line in members["events.jsonl"].splitlines()}
    assert {"daemon_start", "group_online", "watch_start"} <= kinds
    assert b"starting G" in members["var/log/groups/G.log"]
    assert "var/log/watches/DB.log" in members
    assert members["versions.txt"].startswith(b"rearm ")
    manifest = members["MANIFEST.txt"].decode()
    assert "etc/manager-users.toml (password hashes)" in manifest and "etc/priv.secret" in manifest

    # Without a daemon it still collects (status says so).
    cluster.stop_daemon(stop_groups=True)
    cluster.rearm("bundle", "-o", str(tmp_path / "offline.tar.gz"))
    with tarfile.open(tmp_path / "offline.tar.gz") as tar:
        status_member = next(m for m in tar if m.name.endswith("/status.json"))
        assert json.loads(tar.extractfile(status_member).read()) == {"daemon": "not running"}  # type: ignore[union-attr]
