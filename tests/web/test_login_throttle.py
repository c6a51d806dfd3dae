"""The login throttle against the attacks of issue 18 (Medium 7), over real HTTP.

Rotating loopback addresses gave unlimited guesses at one user's password (each address had
its own five a minute); behind a proxy every client had the proxy's address, so anyone could
lock the admins out. Now each user name backs off whatever the addresses, and a trusted proxy's
X-Forwarded-For names the client.
"""

from __future__ import annotations

from pathlib import Path

from tests.integration.harness import Cluster, wait_for

from .manager import ADMIN, Client, Manager, free_port, passwd


def test_guessing_one_password_from_ever_new_addresses_backs_off(manager: Manager) -> None:
    """Ten tries for a name go through; the eleventh waits, from whatever address."""
    for attempt in range(10):
        r = manager.client(f"127.0.3.{attempt + 1}").post(
            "/login", {"user": "admin", "password": f"guess-{attempt}"}
        )
        assert r.status == 401, attempt
    for fresh in range(20, 25):
        r = manager.client(f"127.0.3.{fresh}").post(
            "/login", {"user": "admin", "password": "guess-again"}
        )
        assert r.status == 429, fresh
        assert 1 <= int(r.header("Retry-After") or "0") <= 300
    # The owner is delayed, never locked out: after the wait the right password works, and
    # ends the back-off for the name.
    owner = manager.client("127.0.4.1")

    def logged_in() -> bool:
        r = owner.post("/login", {"user": "admin", "password": ADMIN[1], "next": "/"})
        return r.status == 303

    wait_for("the admin's login after the back-off", logged_in, timeout=10, interval=0.5)
    r = manager.client("127.0.4.2").post("/login", {"user": "admin", "password": "x"})
    assert r.status == 401
    # Other names were never slowed down.
    assert (
        manager.client("127.0.4.3").post("/login", {"user": "viewer", "password": "x"}).status
        == 401
    )


def _manager_behind_proxy(tmp_path: Path) -> Manager:
    cluster = Cluster(tmp_path / "home")
    port = free_port()
    cluster.create(manager_port=str(port))
    with open(cluster.home / "etc" / "cluster.toml", "a") as f:
        f.write('\n[manager]\ntrusted_proxies = ["127.0.0.1"]\n')
    r = passwd(cluster.home, *ADMIN)
    assert r.returncode == 0, r.stderr
    cluster.start_daemon()
    return Manager(cluster, port)


def _fail(client: Client, user: str, forwarded: str | None) -> int:
    headers = {"Origin": client.origin}
    if forwarded is not None:
        headers["X-Forwarded-For"] = forwarded
    return client.request("POST", "/login", {"user": user, "password": "wrong"}, headers).status


def test_behind_a_trusted_proxy_each_client_is_throttled_alone(tmp_path: Path) -> None:
    manager = _manager_behind_proxy(tmp_path)
    try:
        proxy = manager.client("127.0.0.1")
        # One client behind the proxy uses up its five (a name each: no name back-off).
        for i in range(5):
            assert _fail(proxy, f"u{i}", "198.51.100.7") == 401
        assert _fail(proxy, "u9", "198.51.100.7") == 429
        # Everyone else behind the same proxy may still log in.
        assert _fail(proxy, "u10", "198.51.100.8") == 401
        ok = proxy.request(
            "POST",
            "/login",
            {"user": ADMIN[0], "password": ADMIN[1], "next": "/"},
            {"Origin": proxy.origin, "X-Forwarded-For": "198.51.100.9"},
        )
        assert ok.status == 303
        failed = manager.events("manager_login_failed")
        assert {e["data"]["client"] for e in failed} == {"198.51.100.7", "198.51.100.8"}
        # A peer that is not the proxy cannot pass for others with the header.
        liar = manager.client("127.0.0.9")
        for i in range(5):
            assert _fail(liar, f"v{i}", f"198.51.100.{20 + i}") == 401
        assert _fail(liar, "v9", "198.51.100.99") == 429
        assert wait_for(
            "the liar's failures under its own address",
            lambda: [
                e
                for e in manager.events("manager_login_failed")
                if e["data"]["client"] == "127.0.0.9"
            ],
        )
    finally:
        manager.cluster.cleanup()
