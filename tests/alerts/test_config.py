"""The [[alerts]] tables of cluster.toml: what each type accepts, its defaults, and errors that
name the file, the key and the rule."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from rearm.alerts import DEFAULT_KINDS, load_sinks
from rearm.alerts.mail import MailSettings
from rearm.alerts.snmp import SnmpSettings, default_engine_id
from rearm.alerts.syslog import SyslogSettings
from rearm.alerts.webhook import WebhookSettings
from rearm.config import load_cluster
from rearm.paths import Home
from rearm.validate import ConfigError

from .helpers import sink, sinks

CLUSTER_TOML = """\
name = "testcl"
server = "test-server"
ip = "127.0.0.1"

[[alerts]]
type = "snmp"
target = "192.0.2.10"
community_file = "snmp.community"

[[alerts]]
type = "snmp"
name = "noc-v3"
target = "[2001:db8::1]:1162"
version = "3"
notify = "inform"
user = "rearm"
auth_protocol = "sha256"
auth_password = "authpass1"
priv_password_file = "/PRIV"
enterprise_oid = "1.3.6.1.4.1.99999.1"

[[alerts]]
type = "mail"
host = "smtp.example.org"
username = "rearm"
password = "pw"
to = ["ops@example.org"]
kinds = ["final_action", "threshold"]

[[alerts]]
type = "webhook"
url = "https://hooks.example.org/rearm"
secret = "s"
min_severity = "warning"
timeout = 2.5
retries = 0
queue_size = 50

[[alerts]]
type = "syslog"
enabled = false
"""


def _home(tmp_path: Path, text: str = CLUSTER_TOML) -> Home:
    home = Home.from_env(str(tmp_path))
    Path(home.etc).mkdir(parents=True, exist_ok=True)
    (tmp_path / "priv").write_text("privpass1\n")
    Path(home.cluster_file).write_text(text.replace("/PRIV", str(tmp_path / "priv")))
    (Path(home.etc) / "snmp.community").write_text("c0mmunity\n")
    return home


def test_a_full_configuration(tmp_path: Path) -> None:
    home = _home(tmp_path)
    assert load_cluster(home).name == "testcl"  # the cluster loader leaves [[alerts]] to us
    snmp2c, snmp3, mail, hook = load_sinks(home)  # the disabled syslog sink is left out
    assert [s.name for s in (snmp2c, snmp3, mail, hook)] == ["snmp", "noc-v3", "mail", "webhook"]

    assert isinstance(snmp2c.settings, SnmpSettings)
    assert (snmp2c.settings.host, snmp2c.settings.port) == ("192.0.2.10", 162)
    assert snmp2c.settings.community == "c0mmunity" and snmp2c.settings.version == "2c"
    assert snmp2c.settings.engine_id == default_engine_id("1.3.6.1.4.1.32473", "test-server")
    assert snmp2c.filter.kinds == DEFAULT_KINDS and snmp2c.filter.min_severity == "info"
    assert (snmp2c.timeout, snmp2c.retries, snmp2c.backoff) == (5.0, 3, 1.0)

    s3 = snmp3.settings
    assert isinstance(s3, SnmpSettings)
    assert (s3.host, s3.port, s3.notify, s3.user) == ("2001:db8::1", 1162, "inform", "rearm")
    assert (s3.auth_protocol, s3.priv_protocol, s3.priv_password) == ("sha256", "aes", "privpass1")
    assert s3.engine_id[:4] == (0x80000000 | 99999).to_bytes(4, "big")
    assert "privpass1" not in repr(s3) and "authpass1" not in repr(s3)

    assert isinstance(mail.settings, MailSettings)
    assert (mail.settings.port, mail.settings.security) == (587, "starttls")
    assert mail.settings.sender == "rearm@test-server"
    assert mail.filter.kinds == ("final_action", "threshold")

    assert isinstance(hook.settings, WebhookSettings)
    assert (hook.timeout, hook.retries, hook.queue_size) == (2.5, 0, 50)
    assert not hook.filter.accepts("restart", "info") and hook.filter.accepts("fault", "warning")


def test_errors_name_file_key_and_rule(tmp_path: Path) -> None:
    home = _home(tmp_path, CLUSTER_TOML.replace('target = "192.0.2.10"', 'target = "h:99999"'))
    with pytest.raises(ConfigError) as e:
        load_sinks(home)
    assert str(e.value) == (
        "etc/cluster.toml: key 'alerts[0].target': must be HOST or HOST:PORT "
        "(IPv6 in brackets: [::1]:162); the port is from 1 to 65535"
    )


def test_a_missing_cluster_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no cluster configured"):
        load_sinks(Home.from_env(str(tmp_path)))


def test_syslog_and_webhook_defaults() -> None:
    log = sink(type="syslog")
    assert isinstance(log.settings, SyslogSettings)
    assert (log.settings.path, log.settings.facility, log.settings.format) == (
        "/dev/log",
        "daemon",
        "rfc3164",
    )
    remote = sink(type="syslog", target="127.0.0.1")
    assert isinstance(remote.settings, SyslogSettings)
    assert (remote.settings.port, remote.settings.format) == (514, "rfc5424")
    hook = sink(type="webhook", url="http://127.0.0.1:8080/hook")
    assert isinstance(hook.settings, WebhookSettings)
    assert hook.settings.secret is None and hook.settings.verify_tls


def test_names_default_to_the_type_and_must_be_unique() -> None:
    names = [s.name for s in sinks({"type": "syslog"}, {"type": "syslog"}, {"type": "syslog"})]
    assert names == ["syslog", "syslog-2", "syslog-3"]
    with pytest.raises(ConfigError, match=r"alerts\[1\]\.name': 'a' is already the name"):
        sinks({"type": "syslog", "name": "a"}, {"type": "syslog", "name": "a"})


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, "key 'alerts[0].type': is required"),
        ({"type": "pager"}, 'key \'alerts[0].type\': must be one of "snmp", "mail"'),
        ({"type": "syslog", "colour": "red"}, "unknown key 'alerts[0].colour' (known keys:"),
        ({"type": "syslog", "name": "a b"}, "key 'alerts[0].name': use 1-64 characters"),
        ({"type": "syslog", "kinds": ["faults"]}, "'faults' is no event kind"),
        ({"type": "syslog", "kinds": "group_*"}, None),
        ({"type": "syslog", "min_severity": "fatal"}, 'must be one of "info", "warning"'),
        ({"type": "syslog", "timeout": 0}, "'alerts[0].timeout': must be a number of seconds"),
        ({"type": "syslog", "retries": 11}, "must be a whole number from 0 to 10"),
        ({"type": "syslog", "enabled": "yes"}, "must be true or false"),
        ({"type": "syslog", "facility": "local9"}, "key 'alerts[0].facility'"),
        ({"type": "syslog", "tag": "re arm"}, "key 'alerts[0].tag'"),
        ({"type": "snmp"}, "key 'alerts[0].target': is required"),
        ({"type": "snmp", "target": "::1"}, "IPv6 in brackets"),
        ({"type": "snmp", "target": "h", "version": "1"}, 'must be one of "2c", "3"'),
        ({"type": "snmp", "target": "h", "user": "u"}, "'alerts[0].user': is for SNMP v3"),
        ({"type": "snmp", "target": "h", "version": 3}, "key 'alerts[0].user': is required"),
        (
            {"type": "snmp", "target": "h", "version": "3", "user": "u", "community": "c"},
            "'alerts[0].community': is for SNMP v2c",
        ),
        (
            {"type": "snmp", "target": "h", "version": "3", "user": "u", "auth_password": "short"},
            "at least 8 characters",
        ),
        (
            {"type": "snmp", "target": "h", "version": "3", "user": "u", "priv_password": "p" * 8},
            "needs auth_password as well",
        ),
        (
            {"type": "snmp", "target": "h", "community": "a", "community_file": "b"},
            "give either 'community' or 'community_file', not both",
        ),
        ({"type": "snmp", "target": "h", "community_file": "nope"}, "cannot read /tmp"),
        ({"type": "snmp", "target": "h", "enterprise_oid": "1.3.6.1.2.1"}, "under enterprises"),
        ({"type": "snmp", "target": "h", "engine_id": "abcd"}, "5 to 32 octets in hex"),
        ({"type": "mail", "host": "h"}, "key 'alerts[0].to': is required"),
        ({"type": "mail", "host": "h", "to": "nobody"}, "'nobody' is not a mail address"),
        ({"type": "mail", "host": "h", "to": "a@b", "username": "u"}, "give both username"),
        (
            {
                "type": "mail",
                "host": "smtp.example.org",
                "to": "a@b",
                "security": "none",
                "username": "u",
                "password": "p",
            },
            'must be "starttls" or "tls" when authenticating to a remote host',
        ),
        ({"type": "webhook", "url": "ftp://x/"}, "must be an http:// or https:// URL"),
        (
            {"type": "webhook", "url": "http://x/", "headers": {"X-Rearm-Signature": "x"}},
            "is set by rearm",
        ),
    ],
)
def test_refused_values(table: dict[str, Any], message: str | None) -> None:
    if message is None:
        sinks(table, base_dir="/tmp")
        return
    with pytest.raises(ConfigError) as e:
        sinks(table, base_dir="/tmp")
    assert str(e.value).startswith("etc/cluster.toml: ")
    assert message in str(e.value), str(e.value)


def test_mail_auth_without_tls_is_allowed_to_this_machine() -> None:
    s = sink(type="mail", host="127.0.0.1", to="a@b.c", security="none", username="u", password="p")
    assert isinstance(s.settings, MailSettings) and s.settings.port == 25
