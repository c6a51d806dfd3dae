"""The mail stack (the guide's Exchange example) from Debian's packages, run by rearm from the
mail template: the Postfix master (MTA) and Dovecot (IMAP and POP3).

Both get configurations of their own in a scratch folder: Postfix a config directory, queue and
data directory, listening for SMTP on 127.0.0.1 and a free port; Dovecot IMAP and POP3
listeners on free ports, a static password database and no TLS. As in production, both masters
run as root and start their services as their own users (postfix; dovecot, dovenull).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ..integration.harness import Cluster
from .conftest import record_recovery
from .servers import Scratch, Seen, Server, free_port, need, tcp_greeting, user_of

MASTER = "/usr/lib/postfix/sbin/master"
# Postfix's own services, none chrooted (a chroot would need copies of /etc files).
MASTER_CF = """\
{smtp} inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
local unix - n n - - local
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


def _postfix(top: Path, smtp: int) -> Path:
    config, queue, data = top / "postfix", top / "queue", top / "data"
    for folder in (config, queue, data):
        folder.mkdir()
    data.chmod(0o700)
    shutil.chown(data, "postfix")  # Postfix's own data (caches, locks) belongs to mail_owner
    (config / "main.cf").write_text(
        "compatibility_level = 3.6\n"
        f"queue_directory = {queue}\ndata_directory = {data}\n"
        "mail_owner = postfix\nsetgid_group = postdrop\n"
        "inet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n"
        "myhostname = rearm-test.localdomain\nmydestination =\n"
        # No syslog here: Postfix logs to a file through its postlog service.
        f"maillog_file = {top}/maillog\nmaillog_file_prefixes = {top}\n"
    )
    (config / "master.cf").write_text(MASTER_CF.format(smtp=f"127.0.0.1:{smtp}"))
    return config


def _dovecot(top: Path, imap: int, pop3: int) -> Path:
    config = top / "dovecot.conf"
    config.write_text(
        f"""protocols = imap pop3
listen = 127.0.0.1
base_dir = {top}/dovecot-run
state_dir = {top}/dovecot-state
log_path = {top}/dovecot.log
ssl = no
disable_plaintext_auth = no
passdb {{
  driver = static
  args = password=secret
}}
userdb {{
  driver = static
  args = uid=nobody gid=nogroup home={top}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""
    )
    return config


@pytest.fixture
def mail(cluster: Cluster, scratch: Scratch, seen: Seen) -> Server:
    need(MASTER, "/usr/sbin/postfix", "/usr/sbin/dovecot")
    top = scratch.folder("mail")
    smtp, imap, pop3 = free_port(), free_port(), free_port()
    values = {
        "postfix_config": _postfix(top, smtp),
        "dovecot_config": _dovecot(top, imap, pop3),
        "smtp_port": smtp,
        "imap_port": imap,
    }

    def answers() -> bool:
        return (
            tcp_greeting(smtp, b"220 ")
            and tcp_greeting(imap, b"* OK")
            and tcp_greeting(pop3, b"+OK")
        )

    return Server(cluster, "mail", values, "POSTFIX", answers, seen)


def test_postfix_and_dovecot_start_and_each_recovers(mail: Server) -> None:
    mail.import_template()
    mail.start()
    cluster = mail.cluster
    postfix = cluster.wait_running("POSTFIX")["pid"]
    dovecot = cluster.wait_running("DOVECOT")["pid"]
    mail.main_pid("DOVECOT")  # noted: none of its processes may be left at the end
    assert user_of(postfix) == "root" and user_of(dovecot) == "root"

    took = mail.crash()  # the Postfix master (the guide's MSExchangeMTA)
    assert took >= 5
    record_recovery("mail: postfix master", 5, [took])

    took = mail.crash(watch="DOVECOT")  # then Dovecot (IMAP4Svc and POP3svc)
    assert took >= 5
    record_recovery("mail: dovecot", 5, [took])
    assert cluster.watch("POSTFIX")["pid"] != postfix  # type: ignore[index]
    assert cluster.watch("DOVECOT")["pid"] != dovecot  # type: ignore[index]
    assert cluster.watch("POSTFIX")["restarts"] == 1  # type: ignore[index]
    assert cluster.watch("DOVECOT")["restarts"] == 1  # type: ignore[index]


def test_group_stop_ends_both(mail: Server) -> None:
    mail.import_template()
    mail.start()
    mail.main_pid("DOVECOT")
    mail.cluster.rearm("group", "stop", mail.group)
    assert mail.cluster.group(mail.group)["state"] == "offline"  # type: ignore[index]
    assert not tcp_greeting(int(mail.values["smtp_port"]), b"220 ")  # type: ignore[call-overload]
    assert not tcp_greeting(int(mail.values["imap_port"]), b"* OK")  # type: ignore[call-overload]
