"""The Manager's small parts on their own, no daemon: users file, sessions, CSRF checks, the
login throttle, settings, and `rearm passwd` as a command."""

from __future__ import annotations

import io
import os
import stat
import sys
import tomllib
from pathlib import Path

import pytest

from rearm.cli.main import main as rearm_main
from rearm.paths import Home
from rearm.validate import ConfigError
from rearm.web import csrf, users
from rearm.web.render import local_path, render
from rearm.web.sessions import IDLE_SECONDS, MAX_SECONDS, SessionStore
from rearm.web.settings import host_names, load_settings, manager_url
from rearm.web.throttle import LoginThrottle


def _home(tmp_path: Path) -> Home:
    home = Home.from_env(str(tmp_path))
    os.makedirs(home.etc, exist_ok=True)
    return home


# --- users and passwd ---------------------------------------------------------------------------


def _passwd(home: Home, *args: str, stdin: str = "") -> int:
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        return rearm_main(["--home", str(home.root), "passwd", *args])
    finally:
        sys.stdin = old


def test_passwd_writes_an_argon2_hash_in_a_private_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _home(tmp_path)
    assert _passwd(home, "--password-stdin", stdin="correct horse\n") == 0
    assert "password set for Manager user admin (admin)" in capsys.readouterr().out
    path = users.users_file(home)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = Path(path).read_text()
    assert "correct horse" not in text
    entry = tomllib.loads(text)["users"]["admin"]
    assert entry["role"] == "admin" and entry["hash"].startswith("$argon2id$")
    known = users.load_users(home)
    assert users.verify(known, "admin", "correct horse") == known["admin"]
    assert users.verify(known, "admin", "wrong horse") is None
    assert users.verify(known, "nobody", "correct horse") is None


def test_passwd_keeps_a_role_unless_told_and_deletes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    home = _home(tmp_path)
    assert _passwd(home, "viewer", "--read-only", "--password-stdin", stdin="viewer-pw-1\n") == 0
    assert _passwd(home, "viewer", "--password-stdin", stdin="viewer-pw-2\n") == 0
    assert users.load_users(home)["viewer"].role == "read-only"
    assert _passwd(home, "viewer", "--admin", "--password-stdin", stdin="viewer-pw-3\n") == 0
    assert users.load_users(home)["viewer"].is_admin
    assert _passwd(home, "viewer", "--delete") == 0
    assert users.load_users(home) == {}
    capsys.readouterr()
    assert _passwd(home, "viewer", "--delete") == 1
    assert "no Manager user named 'viewer'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--password-stdin"], "short\n", "too short"),
        (["--password-stdin"], "\n", "no password on standard input"),
        ([], "long-enough-1\n", "not a terminal: give --password-stdin"),
        (["bad name", "--password-stdin"], "long-enough-1\n", "user name 'bad name'"),
    ],
)
def test_passwd_refusals(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    stdin: str,
    message: str,
) -> None:
    home = _home(tmp_path)
    assert _passwd(home, *args, stdin=stdin) == 1
    assert message in capsys.readouterr().err
    assert not os.path.exists(users.users_file(home))


def test_a_broken_users_file_locks_everyone_out(tmp_path: Path) -> None:
    home = _home(tmp_path)
    Path(users.users_file(home)).write_text('[users.admin]\nrole = "root"\nhash = "x"\n')
    with pytest.raises(ConfigError, match="role must be one of admin, read-only"):
        users.load_users(home)
    directory = users.UserDirectory(home)
    assert directory.users() == {}
    assert directory.problem is not None and "role" in directory.problem


def test_the_user_directory_follows_the_file(tmp_path: Path) -> None:
    home = _home(tmp_path)
    directory = users.UserDirectory(home)
    assert directory.get("admin") is None
    users.save_user(home, "admin", "first-password", None)
    first = directory.get("admin")
    assert first is not None
    users.save_user(home, "admin", "second-password", None)
    second = directory.get("admin")
    assert second is not None and second.hash != first.hash


# --- sessions, CSRF, throttle -------------------------------------------------------------------


def test_sessions_are_random_and_expire() -> None:
    store = SessionStore()
    a = store.create("admin", "admin", "h", "127.0.0.1")
    b = store.create("admin", "admin", "h", "127.0.0.1")
    assert a.token != b.token and a.csrf != b.csrf and len(a.token) >= 43
    assert store.get(a.token, a.created + 10) is a
    assert store.get("not-a-token") is None and store.get(None) is None
    assert store.get(a.token, a.seen + IDLE_SECONDS + 1) is None  # idle too long
    assert store.get(a.token, a.seen) is None  # and gone for good
    for t in range(0, MAX_SECONDS, IDLE_SECONDS // 2):  # active, but the day is over
        assert store.get(b.token, b.created + t) is b
    assert store.get(b.token, b.created + MAX_SECONDS + 1) is None


def test_flash_messages_are_shown_once() -> None:
    session = SessionStore().create("admin", "admin", "h", "127.0.0.1")
    session.flash("saved", "success")
    assert session.take_flashes() == [("success", "saved")]
    assert session.take_flashes() == []


def test_csrf_token_and_origin_checks() -> None:
    assert csrf.token_matches("abc", "abc")
    assert not csrf.token_matches("abc", "abd") and not csrf.token_matches("abc", None)
    ours = csrf.our_origins("127.0.0.1:8470", tls_proxy=False)
    assert csrf.same_origin_refusal("http://127.0.0.1:8470", None, ours) is None
    assert csrf.same_origin_refusal(None, "http://127.0.0.1:8470/cluster", ours) is None
    assert csrf.same_origin_refusal("http://127.0.0.1:8471", None, ours) is not None
    assert csrf.same_origin_refusal("https://127.0.0.1:8470", None, ours) is not None
    assert csrf.same_origin_refusal("null", None, ours) is not None
    assert csrf.same_origin_refusal(None, "http://evil.example/", ours) is not None
    assert csrf.same_origin_refusal(None, None, ours) is not None
    # Origin, when there, decides: a same-origin Referer does not excuse a foreign Origin.
    assert csrf.same_origin_refusal("http://evil.example", "http://127.0.0.1:8470/", ours)
    # Behind a TLS proxy the pages are https://, the request reaching the daemon http://.
    proxied = csrf.our_origins("sre.example", tls_proxy=True)
    assert csrf.same_origin_refusal("https://sre.example", None, proxied) is None


def test_the_throttle_allows_five_failures_a_minute_per_address() -> None:
    throttle = LoginThrottle(failures=5, window=60)
    for i in range(5):
        assert throttle.retry_after("10.0.0.1", now=100 + i) is None
        throttle.failed("10.0.0.1", now=100 + i)
    assert throttle.retry_after("10.0.0.1", now=105) == 55
    assert throttle.retry_after("10.0.0.2", now=105) is None
    assert throttle.retry_after("10.0.0.1", now=159.5) == 1
    assert throttle.retry_after("10.0.0.1", now=160) is None  # the first failure left


def test_the_throttle_backs_off_per_user_name_whatever_the_address() -> None:
    """Addresses are cheap (127.0.0.0/8, IPv6, or one proxy for everyone): a name may fail
    ten times, then each try waits 2 s doubled at each failure, at most 300 s."""
    throttle = LoginThrottle(failures=5, window=60, name_free=10, name_base=2, name_max=300)
    now = 1000.0
    for i in range(10):  # each from an address of its own
        assert throttle.retry_after(f"10.0.1.{i}", "admin", now=now) is None
        throttle.failed(f"10.0.1.{i}", "admin", now=now)
    assert throttle.retry_after("10.0.2.1", "admin", now=now) == 2
    assert throttle.retry_after("10.0.2.1", "viewer", now=now) is None  # other names go on
    assert throttle.retry_after("10.0.2.1", "admin", now=now + 2) is None
    waits = []
    for _ in range(12):
        throttle.failed("10.0.2.1", "admin", now=now)
        waits.append(throttle.retry_after("10.0.3.1", "admin", now=now))
    assert waits == [4, 8, 16, 32, 64, 128, 256, 300, 300, 300, 300, 300]
    throttle.succeeded("admin")  # its owner logged in: the name's back-off ends
    assert throttle.retry_after("10.0.3.1", "admin", now=now) is None
    throttle.failed("10.0.3.1", "ghost", now=now)
    assert throttle.retry_after("10.0.3.1", "ghost", now=now + 3600) is None  # forgotten


def test_the_client_behind_a_trusted_proxy() -> None:
    from rearm.web.settings import client_address

    proxies = frozenset({"127.0.0.1"})
    assert client_address("127.0.0.1", ["203.0.113.7"], proxies) == "203.0.113.7"
    # What comes before the proxy's own entry may be the client's invention.
    assert client_address("127.0.0.1", ["1.1.1.1, 203.0.113.7"], proxies) == "203.0.113.7"
    assert client_address("127.0.0.1", [], proxies) == "127.0.0.1"
    assert client_address("127.0.0.1", ["not-an-address"], proxies) == "127.0.0.1"
    # A peer that is not a trusted proxy speaks for itself, whatever it sends.
    assert client_address("127.0.0.9", ["203.0.113.7"], proxies) == "127.0.0.9"
    assert client_address("127.0.0.1", ["203.0.113.7"], frozenset()) == "127.0.0.1"


# --- settings and small helpers -----------------------------------------------------------------


def test_manager_settings_and_url(tmp_path: Path) -> None:
    home = _home(tmp_path)
    assert load_settings(home).enabled  # no cluster.toml yet: defaults
    Path(home.cluster_file).write_text(
        '[manager]\nallowed_hosts = ["SRE.example"]\ntls_proxy = true\n'
    )
    settings = load_settings(home)
    assert settings.allowed_hosts == ("sre.example",) and settings.tls_proxy
    Path(home.cluster_file).write_text('[manager]\ntrusted_proxies = ["127.0.0.1", "::1"]\n')
    assert load_settings(home).trusted_proxies == {"127.0.0.1", "::1"}
    Path(home.cluster_file).write_text('[manager]\ntrusted_proxies = ["proxy.example"]\n')
    with pytest.raises(ConfigError, match=r"trusted_proxies.*IP addresses"):
        load_settings(home)
    Path(home.cluster_file).write_text("[manager]\nport = 1\n")
    with pytest.raises(ConfigError, match=r"unknown key 'manager\.port'"):
        load_settings(home)
    assert manager_url("127.0.0.1", 8470) == "http://127.0.0.1:8470/"
    assert manager_url("::1", 8470) == "http://[::1]:8470/"
    assert manager_url("10.1.2.3/24", 9000) == "http://10.1.2.3:9000/"


def test_host_names(tmp_path: Path) -> None:
    from rearm.model import Cluster
    from rearm.web.settings import ManagerSettings

    cluster = Cluster(name="c", server="Node1", ip="10.0.0.5/24")
    names = host_names(cluster, ManagerSettings(allowed_hosts=("sre.example",)))
    assert {"10.0.0.5", "localhost", "127.0.0.1", "node1", "sre.example"} <= names
    assert "evil.example" not in names


def test_only_local_paths_are_followed_after_login() -> None:
    assert local_path("/groups/A") == "/groups/A"
    for bad in ("//evil.example/", "https://evil.example/", "/\\evil", "", None, "/a\nb"):
        assert local_path(bad) == "/"


def test_templates_escape_everything() -> None:
    html = render("error.html", **_frame(), title="<b>t</b>", message="<script>x</script>")
    assert "<script>x" not in html and "&lt;script&gt;x&lt;/script&gt;" in html
    assert "&lt;b&gt;t&lt;/b&gt;" in html


def _frame() -> dict[str, object]:
    return {
        "session": None,
        "flashes": [],
        "cluster_name": "c",
        "server_name": "s",
        "path": "/",
        "live_url": None,
    }
