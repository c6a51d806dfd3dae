"""Live streams on the control socket (`follow`) against a user who may only read (issue 18,
Medium 5): what the client sends after its request is not kept, streams and connections are
bounded per user, and a client that does not read is dropped rather than held on to.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

from .harness import Cluster, wait_for
from .unix_users import Accounts, as_user

# Sends a follow request, then MiB of junk as fast as it can; says how much went before the
# daemon hung up (or all of it), then holds the connection until its stdin closes.
STUFF = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b'{"op": "follow", "args": {"limit": 0}}\n')
junk, sent = b"x" * 65536, 0
try:
    for _ in range(int(sys.argv[2]) * 16):
        s.sendall(junk)
        sent += len(junk)
except OSError:
    pass
print(sent, flush=True)
sys.stdin.read()
"""

# Opens follow streams (or idle connections) as fast as asked and says what each was told.
OPEN = r"""
import json, socket, sys
held, answers = [], []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    if sys.argv[3] == "follow":
        s.sendall(b'{"op": "follow", "args": {"limit": 1}}\n')
        answers.append(json.loads(s.makefile().readline()))
    held.append(s)
if sys.argv[3] == "idle":
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    answers.append(json.loads(s.makefile().readline() or "null"))
print(json.dumps(answers), flush=True)
sys.stdin.read()
"""


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _as(user: object, code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["/usr/bin/python3", "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        **as_user(user),  # type: ignore[arg-type]
    )


def _cluster(open_dir: Path) -> Cluster:
    c = Cluster(open_dir / "home")
    c.create(read_access="everyone")
    c.start_daemon()
    return c


def test_what_a_follower_sends_is_not_kept(unix: Accounts, open_dir: Path) -> None:
    """Before the fix the daemon kept everything sent after a follow request (400 MiB sent:
    +400 MB of memory). Now it is read and dropped, and more than 64 KiB is hung up on."""
    user = unix.user("rstuff")
    c = _cluster(open_dir)
    stuffer = None
    try:
        daemon = c.daemon.pid  # type: ignore[union-attr]
        before = _rss_kib(daemon)
        stuffer = _as(user, STUFF, str(c.home / "run" / "rearm.sock"), "64")
        assert stuffer.stdout is not None
        sent = int(stuffer.stdout.readline())
        assert sent < 8 << 20, f"the daemon took {sent} bytes before hanging up"
        assert _rss_kib(daemon) - before < 16 << 10
        assert c.run("rearm", "status").returncode == 0
    finally:
        if stuffer is not None:
            stuffer.kill()
            stuffer.wait()
        c.cleanup()


def test_streams_and_connections_of_a_reader_are_bounded(unix: Accounts, open_dir: Path) -> None:
    user = unix.user("rmany")
    c = _cluster(open_dir)
    held: list[subprocess.Popen[str]] = []
    try:
        sock = str(c.home / "run" / "rearm.sock")
        streams = _as(user, OPEN, sock, "17", "follow")
        held.append(streams)
        assert streams.stdout is not None
        answers = json.loads(streams.stdout.readline())
        assert all(a["ok"] for a in answers[:16]), answers[:16]
        assert answers[16] == {
            "ok": False,
            "error": f"too many live streams: uid {user.pw_uid} has 16 open",
        }
        # Root is not held back by another user's streams.
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(sock)
            s.sendall(b'{"op": "follow", "args": {"limit": 1}}\n')
            assert json.loads(s.makefile().readline())["ok"]
        # Connections that say nothing: 32 at most (the 16 streams count), then refused.
        idle = _as(user, OPEN, sock, "16", "idle")
        held.append(idle)
        assert idle.stdout is not None
        refused = json.loads(idle.stdout.readline())
        assert refused == [
            {"ok": False, "error": f"too many connections: uid {user.pw_uid} has 32 open"}
        ]
        assert c.run("rearm", "status").returncode == 0
    finally:
        for p in held:
            p.kill()
            p.wait()
        c.cleanup()


def test_a_follower_that_does_not_read_is_dropped(unix: Accounts, open_dir: Path) -> None:
    """A client that stops reading fills the socket's buffers; the daemon does not wait on it
    for ever (before the fix it did, holding its stream, memory and place)."""
    user = unix.user("rslow")
    c = _cluster(open_dir)
    code = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "s.connect(sys.argv[1])\n"
        's.sendall(b\'{"op": "follow", "args": {"limit": 0}}\\n\')\n'
        "print('following', flush=True)\n"
        "sys.stdin.readline()\n"  # reads nothing from the daemon until told
        "n = 0\n"
        "while (chunk := s.recv(1 << 20)):\n"
        "    n += len(chunk)\n"
        "print(n, flush=True)\n"
    )
    slow = _as(user, code, str(c.home / "run" / "rearm.sock"))
    try:
        assert slow.stdout is not None and slow.stdin is not None
        assert slow.stdout.readline().strip() == "following"
        # Big events: each names its target, here 100 KB of arguments (its request, in the
        # target's environment, must stay under the kernel's 128 KiB for one string).
        wide = ["x" * 1000] * 100
        for i in range(30):
            c.ok("armload", f"WIDE{i}", "/bin/true", *wide)
        wait_for(
            "the slow follower dropped",
            lambda: "dropped a client that reads too slowly" in c.daemon_log.read_text(),
            timeout=40,
            interval=0.2,
        )
        slow.stdin.write("read now\n")
        slow.stdin.flush()
        taken = int(slow.stdout.readline())  # EOF came: the daemon closed the connection
        assert taken < 30 * 200_000
        assert c.run("rearm", "status").returncode == 0
    finally:
        slow.kill()
        slow.wait()
        c.cleanup()
