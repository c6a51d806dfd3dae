"""Redis from Debian's package, run by rearm from the redis and redis-forking templates.

The server runs as `redis`, as Debian's own unit runs it, from a redis.conf in a scratch folder
owned by that user, on 127.0.0.1 and a free port; once in the foreground, once daemonizing
itself with rearm following its pid file.
"""

from __future__ import annotations

import socket

import pytest

from ..integration.harness import Cluster
from .conftest import record_recovery
from .servers import Scratch, Seen, Server, assert_reboot_drilled, free_port, need, user_of

MODES = {"foreground": "redis", "forking": "redis-forking"}


def redis_server(
    template: str, cluster: Cluster, scratch: Scratch, seen: Seen, extra_config: str = ""
) -> Server:
    need("/usr/bin/redis-server", "/usr/bin/redis-cli")
    top = scratch.folder("redis", owner="redis", mode=0o750)
    port = free_port()
    config = top / "redis.conf"
    # Only what differs from Redis's built-in defaults; the log goes to rearm's watch log.
    config.write_text(
        f'bind 127.0.0.1\nport {port}\ndir {top}\nlogfile ""\nsave ""\nappendonly no\n'
        + extra_config
    )
    values = {"config": config, "port": port, "directory": top, "rundir": top / "run"}

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64) == b"+PONG\r\n"
        except OSError:
            return False

    return Server(cluster, template, values, "REDIS", answers, seen)


@pytest.fixture(params=sorted(MODES))
def redis(request: pytest.FixtureRequest, cluster: Cluster, scratch: Scratch, seen: Seen) -> Server:
    return redis_server(MODES[request.param], cluster, scratch, seen)


def test_killed_redis_is_restarted_after_int_and_answers(redis: Server) -> None:
    redis.import_template()
    first = redis.start()
    assert user_of(first) == "redis"
    took = redis.crash()
    assert took >= 5, "restarted before /INT 5 was over"
    w = redis.cluster.watch("REDIS")
    assert w is not None and w["restarts"] == 1 and w["pid"] != first
    if redis.template == "redis-forking":
        # rearm watches the daemon named in the pid file, not the command that launched it.
        pidfile = redis.values["rundir"] / "redis-server.pid"  # type: ignore[operator]
        assert int(pidfile.read_text()) == w["pid"]
    record_recovery(redis.template, 5, [took])


def test_fourth_kill_within_the_hour_fires_the_final_action(redis: Server) -> None:
    redis.import_template(interval=1)
    redis.start()
    times = redis.crash_past_threshold(retry=3)
    assert_reboot_drilled(redis.cluster, "REDIS")
    assert not redis.answers()
    record_recovery(redis.template, 1, times)


def test_group_stop_ends_redis(redis: Server) -> None:
    redis.import_template()
    redis.start()
    redis.cluster.rearm("group", "stop", redis.group)
    assert not redis.answers()
    assert redis.cluster.group(redis.group)["state"] == "offline"  # type: ignore[index]
