"""License keys (SPEC §8): signed offline tokens, judged with an injected clock.

A key is 85 bytes (21 of payload, 64 of Ed25519 signature) as 136 base32 characters. It is
accepted only when it is well-formed, signed by a trusted vendor key, for rearm, for the serial
given, and not past its expiry day (UTC). Every refusal is a LicenseError, one line.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import stat
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from rearm import license as lic
from rearm.paths import Home
from rearm.validate import ConfigError

# A vendor keypair made for the tests: never one of the keys rearm ships.
VENDOR = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()


def trusted(private: Ed25519PrivateKey = VENDOR) -> list[lic.TrustedKey]:
    public = private.public_key()
    return [lic.TrustedKey(public, lic.key_id(public), "test")]


def at(day: str, time: str = "12:00:00") -> float:
    return dt.datetime.fromisoformat(f"{day}T{time}+00:00").timestamp()


ISSUED = dt.date(2026, 1, 1)
NOW = at("2026-01-15")


def key(
    serial: str = "AA000001",
    *,
    issued: dt.date = ISSUED,
    nodes: int = 1,
    expires: dt.date | None = None,
    product: str = lic.PRODUCT,
) -> str:
    return lic.issue(
        VENDOR, serial=serial, issued=issued, nodes=nodes, expires=expires, product=product
    )


def refusal_of(
    text: str,
    *,
    keys: list[lic.TrustedKey] | None = None,
    now: float = NOW,
    serial: str | None = None,
    product: str = lic.PRODUCT,
) -> str:
    """The one-line message with which `text` is refused."""
    with pytest.raises(lic.LicenseError) as info:
        lic.accept(
            text, trusted() if keys is None else keys, now=now, serial=serial, product=product
        )
    message = str(info.value)
    assert message.startswith("license key refused: ") and "\n" not in message
    assert message == f"license key refused: {info.value.reason}"
    return message


# --- the format -------------------------------------------------------------------------------


def test_a_key_is_17_blocks_of_8_base32_characters() -> None:
    text = key()
    blocks = text.split("-")
    assert len(blocks) == 17 and all(len(b) == 8 for b in blocks)
    assert set(text.replace("-", "")) <= set(lic.ALPHABET)
    assert lic.TOKEN_CHARS == 136 and lic.TOKEN_CHARS * 5 == (21 + 64) * 8


def test_round_trip_carries_every_field() -> None:
    text = key("ZZ999999", nodes=7, expires=dt.date(2027, 1, 31))
    got = lic.accept(text, trusted(), now=NOW, serial="ZZ999999")
    assert got == lic.License(
        product="rearm",
        serial="ZZ999999",
        nodes=7,
        issued=ISSUED,
        expires=dt.date(2027, 1, 31),
        key_id=lic.key_id(VENDOR.public_key()).hex(),
    )
    assert (
        got.describe() == "serial ZZ999999: rearm, 7 nodes, expires 2027-01-31 (issued 2026-01-01)"
    )


def test_perpetual_key_never_expires() -> None:
    got = lic.accept(key(), trusted(), now=at("2149-06-06"))
    assert got.expires is None
    assert got.describe().endswith("1 node, perpetual (issued 2026-01-01)")


def test_input_is_case_space_and_dash_tolerant() -> None:
    text = key()
    plain = text.replace("-", "")
    variants = [
        text.lower(),
        plain,
        " ".join(text.split("-")),
        "\n  " + text.replace("-", " - ") + "\t\n",
        text.replace("-", "\u2013"),  # an en dash, as word processors make it
        plain[:50] + "-" + plain[50:],  # dashes in the wrong places do not matter either
    ]
    want = lic.verify(text, trusted())
    for variant in variants:
        assert lic.verify(variant, trusted()) == want
        assert lic.canonical(variant) == text


@given(
    serial=st.from_regex(lic.SERIAL_RE, fullmatch=True),
    nodes=st.integers(1, lic.MAX_NODES),
    issued=st.dates(dt.date(1970, 1, 2), lic.LAST_DATE),
    days=st.none() | st.integers(0, 70_000),
)
def test_any_valid_license_round_trips(
    serial: str, nodes: int, issued: dt.date, days: int | None
) -> None:
    expires = None if days is None else min(issued + dt.timedelta(days=days), lic.LAST_DATE)
    got = lic.verify(
        lic.issue(VENDOR, serial=serial, nodes=nodes, issued=issued, expires=expires), trusted()
    )
    assert (got.serial, got.nodes, got.issued, got.expires) == (serial, nodes, issued, expires)


# --- refusals ---------------------------------------------------------------------------------


def test_every_single_character_change_is_refused() -> None:
    """All 136 positions, each with all 31 other characters: 4216 altered keys, none passes."""
    plain = key().replace("-", "")
    for i, original in enumerate(plain):
        for c in lic.ALPHABET:
            if c != original:
                with pytest.raises(lic.LicenseError):
                    lic.verify(plain[:i] + c + plain[i + 1 :], trusted())


def test_altered_signature_says_mistyped_or_altered() -> None:
    plain = key().replace("-", "")
    last = "A" if plain[-1] != "A" else "B"
    assert refusal_of(plain[:-1] + last) == (
        "license key refused: signature does not verify (the key was mistyped or altered)"
    )


def test_key_of_an_untrusted_vendor_is_refused() -> None:
    foreign = lic.issue(OTHER, serial="AA000001", issued=ISSUED)
    message = refusal_of(foreign)
    assert "which this server does not trust" in message
    assert lic.key_id(OTHER.public_key()).hex() in message
    # Trusting the other vendor as well makes both acceptable.
    both = trusted() + trusted(OTHER)
    assert lic.accept(foreign, both, now=NOW).serial == "AA000001"
    assert lic.accept(key(), both, now=NOW).serial == "AA000001"


def test_a_different_key_with_the_same_key_id_does_not_verify() -> None:
    impostor = lic.TrustedKey(OTHER.public_key(), lic.key_id(VENDOR.public_key()), "impostor")
    assert "signature does not verify" in refusal_of(key(), keys=[impostor])
    # Two trusted keys sharing an ID are each tried.
    assert lic.accept(key(), [impostor, *trusted()], now=NOW).serial == "AA000001"


def test_expiry_is_inclusive_of_the_last_day_utc() -> None:
    text = key(expires=dt.date(2026, 1, 31))
    assert lic.accept(text, trusted(), now=at("2026-01-31", "23:59:59")).serial == "AA000001"
    message = refusal_of(text, now=at("2026-02-01", "00:00:00"))
    assert message == "license key refused: expired on 2026-01-31"
    assert lic.verify(text, trusted()).expired(at("2026-02-01", "00:00:00"))


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("", "the key is empty"),
        ("  - -  ", "the key is empty"),
        ("ABCDEFGH-ABCDEFGH", "16 characters, a key has 136 (17 blocks)"),
        ("ABCDEFGH-ABCD0FGH", "found '0' in block 2 (did you mean the letter O?)"),
        ("ABCDEFGH-1", "found '1' in block 2 (did you mean the letter I or L?)"),
        ("AB8", "found '8' in block 1 (did you mean the letter B?)"),
        ("ABC_DEF", "found '_' in block 1"),
        ("straße", "found 'ß' in block 1"),
    ],
)
def test_malformed_keys_say_what_is_expected(text: str, detail: str) -> None:
    assert refusal_of(text) == (
        "license key refused: malformed (expected 8-character blocks of A-Z and 2-7 "
        f"separated by -): {detail}"
    )


def test_serial_must_match_the_key() -> None:
    assert refusal_of(key("AB000002"), serial="AA000001") == (
        "license key refused: the key belongs to serial AB000002, not AA000001"
    )
    assert lic.accept(key("AB000002"), trusted(), now=NOW, serial=" ab000002 ").serial == "AB000002"


@pytest.mark.parametrize("serial", ["", "A0000001", "AAA00001", "AA00001", "AA0000001", "AA 00001"])
def test_serial_format(serial: str) -> None:
    with pytest.raises(ConfigError, match=r"two letters and six digits, e\.g\. AA000001"):
        lic.check_serial(serial)


def test_another_products_key_is_refused() -> None:
    assert refusal_of(key(product="acme-db")) == (
        "license key refused: not a rearm key (product acme-db)"
    )
    assert lic.accept(key(product="acme-db"), trusted(), now=NOW, product="acme-db").nodes == 1


@pytest.mark.parametrize("nodes", [1, 2, lic.MAX_NODES])
def test_node_counts_in_range_round_trip(nodes: int) -> None:
    assert lic.verify(key(nodes=nodes), trusted()).nodes == nodes


@pytest.mark.parametrize("nodes", [0, -1, lic.MAX_NODES + 1])
def test_node_counts_out_of_range_are_not_issued(nodes: int) -> None:
    with pytest.raises(ConfigError, match="from 1 to 65535"):
        key(nodes=nodes)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"expires": dt.date(2025, 12, 31)}, "before the issue date"),
        ({"expires": dt.date(2149, 6, 7)}, "2149-06-06 or earlier"),
        ({"issued": dt.date(1970, 1, 1)}, "issue date"),
        ({"product": "Rearm"}, "product 'Rearm'"),
        ({"product": "much-too-long"}, "1-8 characters"),
        ({"serial": "AA-1"}, "serial 'AA-1'"),
    ],
)
def test_issue_refuses_impossible_licenses(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        key(**kwargs)


def _signed(payload: bytes) -> str:
    return lic.format_key(payload + VENDOR.sign(lic.SIGNING_CONTEXT + payload))


def _payload(**fields: Any) -> bytes:
    values: dict[str, Any] = {
        "version": 1,
        "kid": lic.key_id(VENDOR.public_key()),
        "product": b"rearm",
        "serial": 1,
        "nodes": 1,
        "issued": 20454,
        "expires": 0,
        **fields,
    }
    return struct.pack(">B2s8sIHHH", *values.values())


def test_the_layout_is_the_documented_one() -> None:
    assert lic.verify(_signed(_payload()), trusted()).serial == "AA000001"
    assert lic.verify(_signed(_payload(serial=675_999_999)), trusted()).serial == "ZZ999999"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"version": 2}, "unknown key format 2 (the key was mistyped, or is for a newer rearm)"),
        ({"nodes": 0}, "contents are invalid"),
        ({"serial": 676_000_000}, "contents are invalid"),
        ({"product": b"RE\xffRM"}, "contents are invalid"),
        ({"issued": 0}, "contents are invalid"),
        ({"expires": 20000}, "expires before it was issued"),
    ],
)
def test_signed_nonsense_is_refused(fields: dict[str, Any], message: str) -> None:
    """Only a faulty issuer could sign these; a reader still never takes them."""
    assert message in refusal_of(_signed(_payload(**fields)))


def test_signature_covers_the_context_string() -> None:
    payload = _payload()
    bare = lic.format_key(payload + VENDOR.sign(payload))  # signed without SIGNING_CONTEXT
    assert "signature does not verify" in refusal_of(bare)


@given(st.text(max_size=300))
def test_any_text_is_either_a_license_or_a_license_error(text: str) -> None:
    try:
        lic.verify(text, trusted())
    except lic.LicenseError as e:
        assert str(e).startswith("license key refused: ") and "\n" not in str(e)


@given(st.text(alphabet=lic.ALPHABET + "abcxyz234567- ", min_size=130, max_size=200))
def test_key_shaped_text_is_refused_with_a_license_error(text: str) -> None:
    with pytest.raises(lic.LicenseError):
        lic.verify(text, trusted())


@given(st.binary(min_size=85, max_size=85))
def test_random_tokens_of_the_right_size_are_refused(raw: bytes) -> None:
    with pytest.raises(lic.LicenseError):
        lic.verify(lic.format_key(raw), trusted())


# --- trusted keys -----------------------------------------------------------------------------


def test_no_vendor_key_is_built_in(tmp_path: Path) -> None:
    """The key once built in had lost its private half (issue 18): trust comes only from
    etc/license-keys/*.pub, installed by the operator."""
    assert not hasattr(lic, "VENDOR_PUBLIC_KEYS") and not hasattr(lic, "builtin_keys")
    home = Home.from_env(str(tmp_path))
    assert lic.trusted_keys(home) == []
    assert refusal_of(key(), keys=[]) == (
        "license key refused: no vendor public key is trusted on this server: install the "
        "vendor's public key with "
        "'rearm license trust FILE.pub' (docs/licenses.md)"
    )


def test_a_trusted_key_file_others_could_change_is_refused(tmp_path: Path) -> None:
    home = Home.from_env(str(tmp_path))
    folder = Path(lic.license_keys_dir(home))
    folder.mkdir(parents=True)
    pub = folder / "vendor.pub"
    pub.write_bytes(_pem(VENDOR))
    pub.chmod(0o666)
    with pytest.raises(ConfigError, match=r"trusted license key etc/license-keys/vendor.pub"):
        lic.trusted_keys(home)
    pub.chmod(0o644)
    folder.chmod(0o777)
    with pytest.raises(ConfigError, match=r"writable by its group and others"):
        lic.trusted_keys(home)


def test_no_private_key_is_shipped_in_the_package() -> None:
    """Only public keys ship: the vendor's private key lives outside the repository."""
    pem_block = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----\s*[A-Za-z0-9+/]")
    package = Path(lic.__file__).parent
    for path in package.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts:
            assert not pem_block.search(path.read_bytes()), path


def _pem(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_keys_in_etc_license_keys_are_trusted_too(tmp_path: Path) -> None:
    home = Home.from_env(str(tmp_path))
    folder = Path(lic.license_keys_dir(home))
    folder.mkdir(parents=True)
    (folder / "vendor.pub").write_bytes(_pem(VENDOR))
    (folder / "README").write_text("only *.pub files are read\n")
    keys = lic.trusted_keys(home)
    assert [k.origin for k in keys[-1:]] == ["etc/license-keys/vendor.pub"]
    assert lic.accept(key(), keys, now=NOW).serial == "AA000001"


def test_a_broken_trusted_key_file_is_named(tmp_path: Path) -> None:
    home = Home.from_env(str(tmp_path))
    folder = Path(lic.license_keys_dir(home))
    folder.mkdir(parents=True)
    (folder / "bad.pub").write_text("not a key\n")
    with pytest.raises(ConfigError, match=r"etc/license-keys/bad.pub: not a public key in PEM"):
        lic.trusted_keys(home)


def test_keygen_writes_a_private_key_only_its_owner_can_read(tmp_path: Path) -> None:
    private_path, public_path, kid = lic.write_keypair(str(tmp_path / "vendor"))
    assert stat.S_IMODE(os.stat(private_path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "vendor").st_mode) == 0o700
    private = lic.load_private_key(private_path)
    public = lic.public_key_from_pem(Path(public_path).read_bytes(), "x")
    assert public.key_id.hex() == kid == lic.key_id(private.public_key()).hex()
    with pytest.raises(ConfigError, match="already exists: a vendor key is never overwritten"):
        lic.write_keypair(str(tmp_path / "vendor"))
    assert lic.load_private_key(private_path).private_bytes_raw() == private.private_bytes_raw()


def test_private_key_problems_are_one_line(tmp_path: Path) -> None:
    private_path, public_path, _ = lic.write_keypair(str(tmp_path))
    os.chmod(private_path, 0o644)
    with pytest.raises(ConfigError, match=r"readable by others \(mode 0644\): chmod 600"):
        lic.load_private_key(private_path)
    os.chmod(public_path, 0o600)
    with pytest.raises(ConfigError, match="not a private key in PEM form"):
        lic.load_private_key(public_path)
    with pytest.raises(ConfigError, match=r"no such file \(make a vendor keypair"):
        lic.load_private_key(str(tmp_path / "missing.key"))


# --- registered licenses ----------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path) -> Home:
    """A REARM_HOME that trusts the test vendor key."""
    h = Home.from_env(str(tmp_path))
    os.makedirs(lic.license_keys_dir(h))
    Path(lic.license_keys_dir(h), "test-vendor.pub").write_bytes(_pem(VENDOR))
    return h


def test_no_license_is_a_problem(home: Home) -> None:
    assert lic.license_problem(home, NOW) == (
        "no license registered (register one with 'rearm license register --serial S --key K')"
    )


def test_register_stores_the_canonical_key_privately(home: Home) -> None:
    text = key(expires=dt.date(2026, 1, 31))
    got, previous = lic.register(home, "aa000001", text.lower().replace("-", " "), NOW)
    assert previous is None and got.serial == "AA000001"
    path = Path(lic.licenses_dir(home), "AA000001.toml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_text()
    assert f'key = "{text}"' in content and 'serial = "AA000001"' in content
    assert lic.license_problem(home, NOW) is None
    # The same license, judged later: expired, and that is the problem.
    (found,) = lic.registered_licenses(home, at("2026-02-01"))
    assert (found.status, found.reason) == ("expired", "expired on 2026-01-31")
    assert lic.license_problem(home, at("2026-02-01")) == (
        "no valid license: AA000001: expired on 2026-01-31"
    )


def test_register_refuses_and_writes_nothing(home: Home) -> None:
    plain = key().replace("-", "")
    tampered = plain[:40] + ("A" if plain[40] != "A" else "B") + plain[41:]
    with pytest.raises(lic.LicenseError):
        lic.register(home, "AA000001", tampered, NOW)
    with pytest.raises(lic.LicenseError, match="belongs to serial AA000001, not AB000001"):
        lic.register(home, "AB000001", plain, NOW)
    with pytest.raises(lic.LicenseError, match="expired on 2026-01-10"):
        lic.register(home, "AA000001", key(expires=dt.date(2026, 1, 10)), NOW)
    assert not os.path.exists(lic.licenses_dir(home))


def test_reregistering_replaces_and_reports_the_old_one(home: Home) -> None:
    lic.register(home, "AA000001", key(expires=dt.date(2026, 1, 31)), NOW)
    later = at("2026-03-01")
    got, previous = lic.register(home, "AA000001", key(nodes=2), later)
    assert previous is not None and previous.status == "expired"
    assert previous.registered == "2026-01-15T12:00:00+00:00"
    (found,) = lic.registered_licenses(home, later)
    assert (found.status, found.license) == ("valid", got)


def test_one_valid_license_among_bad_ones_is_enough(home: Home) -> None:
    folder = Path(lic.licenses_dir(home))
    lic.register(home, "AA000002", key("AA000002", expires=dt.date(2026, 1, 20)), NOW)
    (folder / "AA000003.toml").write_text('serial = "AA000003"\nkey = "ABC"\n')
    (folder / "AA000004.toml").write_text(f'serial = "AA000004"\nkey = "{key()}"\n')
    (folder / "AA000005.toml").write_text("serial = \n")
    (folder / "AA000006.toml").write_text(f'serial = "AA000007"\nkey = "{key("AA000007")}"\n')
    (folder / ".tmp-x").write_text("a write_atomic temporary is never read")
    found = {r.serial: r for r in lic.registered_licenses(home, at("2026-01-25"))}
    assert found["AA000002"].reason == "expired on 2026-01-20"
    assert found["AA000003"].status == "invalid"
    assert found["AA000003"].reason is not None and "malformed" in found["AA000003"].reason
    assert found["AA000004"].reason == "the key belongs to serial AA000001, not AA000004"
    assert "not valid TOML" in (found["AA000005"].reason or "")
    assert "AA000007 in a file named for AA000006" in (found["AA000006"].reason or "")
    problem = lic.license_problem(home, at("2026-01-25"))
    assert problem is not None and problem.startswith("no valid license: AA000002: expired")
    assert "\n" not in problem
    lic.register(home, "AA000001", key(), NOW)
    assert lic.license_problem(home, at("2026-01-25")) is None


def test_license_problem_reports_a_broken_key_file_instead_of_raising(home: Home) -> None:
    lic.register(home, "AA000001", key(), NOW)
    Path(lic.license_keys_dir(home), "broken.pub").write_text("-----BEGIN PUBLIC KEY-----\n")
    problem = lic.license_problem(home, NOW)
    assert problem is not None and "broken.pub: not a public key" in problem


def test_enforcement_is_off_unless_cluster_toml_says_so(home: Home) -> None:
    assert lic.license_required(home) is False  # no cluster.toml at all
    Path(home.cluster_file).write_text('name = "c"\n')
    assert lic.license_required(home) is False
    Path(home.cluster_file).write_text("require_license = true\n")
    assert lic.license_required(home) is True
    Path(home.cluster_file).write_text('require_license = "yes"\n')
    with pytest.raises(ConfigError, match="require_license': must be true or false"):
        lic.license_required(home)
