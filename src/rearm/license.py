"""License keys: Ed25519-signed offline tokens, and the licenses registered on this server.

The original product has a serial (AA000001) and a key typed from a label on the server
(DFJ4J4J4-JD398VJH-...). Here the key is a token the vendor signs: verifying it needs only the
vendor's public key, installed on the server as etc/license-keys/*.pub (no key is built in: the
one that was had lost its private half, so nothing could be issued for it), so a server never
talks to a licence server, and a key cannot be forged from the ones already sold. A .pub file is
a trust anchor: it is trust-checked like every file of etc/ (rearm.trust), since whoever can
change it can license any server.

Token, format 1: 21 bytes of payload, big-endian, then the 64-byte Ed25519 signature.
  byte 0       format version (1)
  bytes 1-2    key ID: the first two bytes of SHA-256 of the signer's raw public key
  bytes 3-10   product, ASCII, NUL-padded (1-8 characters of a-z, 0-9 and -)
  bytes 11-14  serial: (first letter * 26 + second letter) * 1 000 000 + the six digits
  bytes 15-16  node count, 1-65535
  bytes 17-18  issue date, days since 1970-01-01
  bytes 19-20  expiry date, days since 1970-01-01; 0 = perpetual. Valid through that day (UTC).
The signature covers SIGNING_CONTEXT + payload. The 85 bytes are exactly 136 characters of
RFC 4648 base32 (A-Z, 2-7; no padding, every character carries 5 bits of the key), printed as
17 blocks of 8 joined by dashes. Input is read case-insensitively, ignoring spaces and dashes.

Registered licenses are etc/licenses/SERIAL.toml (serial, key, registered), mode 0600.
Everything that can be refused raises ConfigError (LicenseError for a key itself), one line.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import os
import re
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rearm.config import read_toml, write_atomic
from rearm.paths import Home, make_folders
from rearm.trust import check as check_trusted
from rearm.validate import ConfigError, Table, check_name

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

# cryptography is imported by the functions that sign or verify, not here: the daemon imports
# this module at each group start (to read `require_license`), and a server that needs no
# license should not carry cryptography's ~7 MB.

PRODUCT = "rearm"
FORMAT = 1
# Domain separation: a signature made with the vendor key for anything else (another product's
# file format, a future key format) can never be passed off as a rearm license of format 1.
SIGNING_CONTEXT = b"rearm-license-v1\0"
_PAYLOAD = struct.Struct(">B2s8sIHHH")
_SIGNATURE_BYTES = 64
BLOCK = 8
TOKEN_CHARS = (_PAYLOAD.size + _SIGNATURE_BYTES) * 8 // 5  # 136 = 17 blocks
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_ALPHABET_SET = frozenset(ALPHABET)
# Copy-pasted keys often come with typographic dashes; they separate blocks as well as '-'.
_DASHES = frozenset("-\u2010\u2011\u2012\u2013\u2014\u2015\u2212")
# Digits that base32 leaves out because they look like letters: name the letter meant.
_LOOKALIKES = {"0": "the letter O", "1": "the letter I or L", "8": "the letter B"}
MALFORMED = "malformed (expected 8-character blocks of A-Z and 2-7 separated by -)"

SERIAL_RE = re.compile(r"[A-Z]{2}[0-9]{6}")
SERIAL_RULE = "expected two letters and six digits, e.g. AA000001"
PRODUCT_RE = re.compile(r"[a-z][a-z0-9-]{0,7}")
MAX_NODES = 0xFFFF
_EPOCH = dt.date(1970, 1, 1)
LAST_DATE = _EPOCH + dt.timedelta(days=0xFFFF)  # 2149-06-06: the last day two bytes can say
MAX_PUB = 4096  # a PEM Ed25519 public key is 113 bytes

REGISTER_HINT = "register one with 'rearm license register --serial S --key K'"
TRUST_HINT = (
    "install the vendor's public key with 'rearm license trust FILE.pub' (docs/licenses.md)"
)


class LicenseError(ConfigError):
    """A license key is refused; `reason` is what follows 'license key refused: '."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"license key refused: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class License:
    """What a verified key says."""

    product: str
    serial: str
    nodes: int
    issued: dt.date
    expires: dt.date | None  # None: perpetual
    key_id: str  # hex ID of the vendor key that signed it

    def expired(self, now: float) -> bool:
        return self.expires is not None and utc_date(now) > self.expires

    def describe(self) -> str:
        nodes = f"{self.nodes} node" + ("" if self.nodes == 1 else "s")
        until = f"expires {self.expires}" if self.expires else "perpetual"
        return f"serial {self.serial}: {self.product}, {nodes}, {until} (issued {self.issued})"


@dataclass(frozen=True)
class TrustedKey:
    public: Ed25519PublicKey
    key_id: bytes
    origin: str  # the .pub file it came from


def utc_date(now: float) -> dt.date:
    return dt.datetime.fromtimestamp(now, tz=dt.UTC).date()


def key_id(public: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).digest()[:2]


def check_serial(text: str) -> str:
    serial = text.strip().upper()
    if not SERIAL_RE.fullmatch(serial):
        raise ConfigError(f"serial '{text}': {SERIAL_RULE}")
    return serial


def check_product(text: str) -> str:
    if not PRODUCT_RE.fullmatch(text):
        raise ConfigError(
            f"product '{text}': use 1-8 characters of a-z, 0-9 and -, starting with a letter"
        )
    return text


def _pack_serial(serial: str) -> int:
    letters = (ord(serial[0]) - ord("A")) * 26 + ord(serial[1]) - ord("A")
    return letters * 1_000_000 + int(serial[2:])


def _unpack_serial(number: int) -> str | None:
    letters, digits = divmod(number, 1_000_000)
    if letters >= 26 * 26:
        return None
    first, second = divmod(letters, 26)
    return f"{chr(ord('A') + first)}{chr(ord('A') + second)}{digits:06d}"


# --- tokens -----------------------------------------------------------------------------------


def format_key(raw: bytes) -> str:
    text = base64.b32encode(raw).decode("ascii")
    return "-".join(text[i : i + BLOCK] for i in range(0, len(text), BLOCK))


def _normalize(text: str) -> str:
    """The key's characters, upper-case, without spaces and dashes; refuses anything else."""
    chars: list[str] = []
    for c in text:
        if c.isspace() or c in _DASHES:
            continue
        upper = c.upper()
        if upper not in _ALPHABET_SET:
            hint = _LOOKALIKES.get(upper)
            found = f"found {c!r} in block {len(chars) // BLOCK + 1}"
            raise LicenseError(
                f"{MALFORMED}: {found}" + (f" (did you mean {hint}?)" if hint else "")
            )
        chars.append(upper)
    if not chars:
        raise LicenseError(f"{MALFORMED}: the key is empty")
    if len(chars) != TOKEN_CHARS:
        raise LicenseError(
            f"{MALFORMED}: {len(chars)} characters, a key has {TOKEN_CHARS} "
            f"({TOKEN_CHARS // BLOCK} blocks)"
        )
    return "".join(chars)


def canonical(text: str) -> str:
    """The key as it is printed: upper-case blocks of 8 joined by dashes."""
    norm = _normalize(text)
    return "-".join(norm[i : i + BLOCK] for i in range(0, len(norm), BLOCK))


def issue(
    private: Ed25519PrivateKey,
    *,
    serial: str,
    issued: dt.date,
    nodes: int = 1,
    expires: dt.date | None = None,
    product: str = PRODUCT,
) -> str:
    """A signed key for `serial`. The vendor's side: servers never need a private key."""
    serial = check_serial(serial)
    check_product(product)
    if not 1 <= nodes <= MAX_NODES:
        raise ConfigError(f"nodes {nodes}: must be a whole number from 1 to {MAX_NODES}")
    # Day 0 means "perpetual" in the expiry field, so dates start the day after.
    if not _EPOCH < issued <= LAST_DATE:
        raise ConfigError(f"issue date {issued}: must be after {_EPOCH} and by {LAST_DATE}")
    if expires is not None:
        if expires < issued:
            raise ConfigError(f"expiry {expires} is before the issue date {issued}")
        if expires > LAST_DATE:
            raise ConfigError(f"expiry {expires}: must be {LAST_DATE} or earlier, or never")
    payload = _PAYLOAD.pack(
        FORMAT,
        key_id(private.public_key()),
        product.encode("ascii"),
        _pack_serial(serial),
        nodes,
        (issued - _EPOCH).days,
        (expires - _EPOCH).days if expires is not None else 0,
    )
    return format_key(payload + private.sign(SIGNING_CONTEXT + payload))


def verify(text: str, trusted: Iterable[TrustedKey]) -> License:
    """The license a key carries, if it is well-formed and signed by a trusted vendor key.

    Says nothing yet about product, serial or expiry: see `accept` and `refusal`.
    """
    from cryptography.exceptions import InvalidSignature

    try:
        raw = base64.b32decode(_normalize(text))
    except binascii.Error:  # cannot happen after _normalize; kept so no other error escapes
        raise LicenseError(MALFORMED) from None
    payload, signature = raw[: _PAYLOAD.size], raw[_PAYLOAD.size :]
    version, kid, product_raw, serial_raw, nodes, issued_days, expires_days = _PAYLOAD.unpack(
        payload
    )
    if version != FORMAT:
        raise LicenseError(
            f"unknown key format {version} (the key was mistyped, or is for a newer rearm)"
        )
    trusted = list(trusted)
    if not trusted:
        raise LicenseError(f"no vendor public key is trusted on this server: {TRUST_HINT}")
    candidates = [k for k in trusted if k.key_id == kid]
    if not candidates:
        raise LicenseError(
            f"signed with vendor key {kid.hex()}, which this server does not trust (the key was "
            "mistyped or altered, or that vendor's public key is missing from etc/license-keys/)"
        )
    for candidate in candidates:  # two trusted keys may share a 2-byte ID: try each
        try:
            candidate.public.verify(signature, SIGNING_CONTEXT + payload)
            break
        except InvalidSignature:
            continue
    else:
        raise LicenseError("signature does not verify (the key was mistyped or altered)")
    # Signed, so only a faulty issuer could have put nonsense here; still checked, so that
    # nothing downstream ever sees an impossible license.
    product = product_raw.rstrip(b"\0").decode("ascii", "replace")
    serial = _unpack_serial(serial_raw)
    if not PRODUCT_RE.fullmatch(product) or serial is None or nodes < 1 or issued_days == 0:
        raise LicenseError("signed, but its contents are invalid: ask the vendor for a new key")
    if expires_days and expires_days < issued_days:
        raise LicenseError("signed, but it expires before it was issued: ask for a new key")
    return License(
        product=product,
        serial=serial,
        nodes=nodes,
        issued=_EPOCH + dt.timedelta(days=issued_days),
        expires=_EPOCH + dt.timedelta(days=expires_days) if expires_days else None,
        key_id=kid.hex(),
    )


def refusal(
    lic: License, now: float, *, serial: str | None = None, product: str = PRODUCT
) -> str | None:
    """Why a verified license does not license `product` (for `serial`) at `now`, or None."""
    if lic.product != product:
        return f"not a {product} key (product {lic.product})"
    if serial is not None and lic.serial != serial:
        return f"the key belongs to serial {lic.serial}, not {serial}"
    if lic.expired(now):
        return f"expired on {lic.expires}"
    return None


def accept(
    text: str,
    trusted: Iterable[TrustedKey],
    *,
    now: float,
    serial: str | None = None,
    product: str = PRODUCT,
) -> License:
    """The license in `text` if it licenses `product` (for `serial`) at `now`; else LicenseError."""
    lic = verify(text, trusted)
    problem = refusal(
        lic, now, serial=check_serial(serial) if serial is not None else None, product=product
    )
    if problem is not None:
        raise LicenseError(problem)
    return lic


# --- key files --------------------------------------------------------------------------------


def public_key_from_pem(data: bytes, origin: str) -> TrustedKey:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            f"{origin}: not a public key in PEM form (-----BEGIN PUBLIC KEY-----)"
        ) from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{origin}: not an Ed25519 public key")
    return TrustedKey(key, key_id(key), origin)


def license_keys_dir(home: Home) -> str:
    return os.path.join(home.etc, "license-keys")


def licenses_dir(home: Home) -> str:
    return os.path.join(home.etc, "licenses")


def _shown(home: Home, path: str) -> str:
    """Paths in messages relative to REARM_HOME when there is one, as config.py shows them."""
    if home.root and path.startswith(home.root + os.sep):
        return os.path.relpath(path, home.root)
    return path


def _listdir(home: Home, folder: str, suffix: str) -> list[str]:
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ConfigError(f"{_shown(home, folder)}: cannot read: {e.strerror}") from None
    # Dot files are write_atomic's temporaries (or an editor's), never a key or a license.
    return sorted(n for n in names if n.endswith(suffix) and not n.startswith("."))


def trusted_keys(home: Home) -> list[TrustedKey]:
    """Every etc/license-keys/*.pub (PEM), each trust-checked: a file that anyone but root
    (or the daemon's user) could change is refused with UntrustedFile, naming it and the fix."""
    keys = []
    folder = license_keys_dir(home)
    for name in _listdir(home, folder, ".pub"):
        path = os.path.join(folder, name)
        shown = _shown(home, path)
        try:
            check_trusted(path, f"trusted license key {shown}")
            with open(path, "rb") as f:
                data = f.read(MAX_PUB)
        except FileNotFoundError:
            continue  # removed while being listed
        except OSError as e:
            raise ConfigError(f"{shown}: cannot read: {e.strerror}") from None
        keys.append(public_key_from_pem(data, shown))
    return keys


def install_public_key(home: Home, source: str) -> tuple[str, TrustedKey]:
    """Copy a vendor's public key (PEM) to etc/license-keys/, where it is trusted from then
    on; refuses anything that is not an Ed25519 public key. Returns the path and the key."""
    try:
        with open(source, "rb") as f:
            data = f.read(MAX_PUB + 1)
    except OSError as e:
        raise ConfigError(f"{source}: cannot read: {e.strerror}") from None
    if len(data) > MAX_PUB:
        raise ConfigError(f"{source}: not a public key in PEM form (too long)")
    key = public_key_from_pem(data, source)
    name = os.path.basename(source)
    if not name.endswith(".pub"):
        name += ".pub"
    check_name("key", name[: -len(".pub")])
    path = os.path.join(license_keys_dir(home), name)
    try:
        make_folders(license_keys_dir(home))
        write_atomic(path, data.decode("ascii"), 0o644)
    except OSError as e:
        raise ConfigError(f"{_shown(home, path)}: cannot write: {e.strerror}") from None
    return path, TrustedKey(key.public, key.key_id, _shown(home, path))


def load_private_key(path: str) -> Ed25519PrivateKey:
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            data = f.read()
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: no such file (make a vendor keypair with 'rearm license keygen --out DIR')"
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(
            f"{path}: the private key is encrypted; rearm needs it unencrypted "
            "(keep the file offline instead)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            f"{path}: not a private key in PEM form (-----BEGIN PRIVATE KEY-----)"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(
            f"{path}: not an Ed25519 private key (make one with 'rearm license keygen')"
        )
    # As ssh does with its keys: a signing key others can read may already be someone else's.
    if mode & 0o077:
        raise ConfigError(
            f"{path}: the private key is readable by others (mode {mode & 0o777:04o}): "
            f"chmod 600 {path}"
        )
    return key


def _write_new(path: str, data: bytes, mode: int) -> None:
    """Create `path` with `mode` from the first byte on; never replace an existing file."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise ConfigError(
            f"{path} already exists: a vendor key is never overwritten "
            "(choose another --out or --name)"
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot create: {e.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)  # the umask may have taken bits from `mode`
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_keypair(folder: str, name: str = "rearm-vendor") -> tuple[str, str, str]:
    """A new vendor keypair: FOLDER/NAME.key (0600) and NAME.pub. Returns both paths, key ID."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    check_name("key", name)
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    try:
        make_folders(folder, 0o700)
    except OSError as e:
        raise ConfigError(f"{folder}: cannot create: {e.strerror}") from None
    private_path = os.path.join(folder, name + ".key")
    public_path = os.path.join(folder, name + ".pub")
    if os.path.exists(public_path):  # checked first so that no orphan private key is left
        raise ConfigError(
            f"{public_path} already exists: a vendor key is never overwritten "
            "(choose another --out or --name)"
        )
    _write_new(private_path, private_pem, 0o600)
    _write_new(public_path, public_pem, 0o644)
    return private_path, public_path, key_id(private.public_key()).hex()


# --- registered licenses ----------------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    """One etc/licenses/SERIAL.toml as found, judged at a given time."""

    serial: str
    file: str  # as shown in messages
    registered: str | None  # ISO 8601, when `rearm license register` wrote it
    license: License | None  # None when the key could not be read or verified
    status: str  # "valid", "expired" or "invalid"
    reason: str | None  # why it is not valid


def _judge(
    home: Home, path: str, stem: str, trusted: Sequence[TrustedKey], now: float
) -> Registered:
    shown = _shown(home, path)
    serial = stem.upper()
    registered: str | None = None
    try:
        t = Table(read_toml(home, path), shown)
        written = t.req_str("serial")
        key = t.req_str("key")
        registered = t.str_("registered")
        t.finish()
        # The file name is the registration's identity (register writes SERIAL.toml); a file
        # that disagrees with its name was edited by hand and is not trusted either way.
        if written != serial:
            raise t.error("serial", f"{written} in a file named for {stem}")
        lic = verify(key, trusted)
    except LicenseError as e:
        return Registered(serial, shown, registered, None, "invalid", e.reason)
    except ConfigError as e:
        return Registered(serial, shown, registered, None, "invalid", str(e))
    except FileNotFoundError:  # removed while being read
        return Registered(serial, shown, registered, None, "invalid", "the file disappeared")
    problem = refusal(lic, now, serial=serial)
    if problem is None:
        return Registered(serial, shown, registered, lic, "valid", None)
    # Expired is a state of a good license (renew it); a wrong product or serial is a wrong key.
    right_key = lic.product == PRODUCT and lic.serial == serial
    status = "expired" if right_key else "invalid"
    return Registered(serial, shown, registered, lic, status, problem)


def registered_licenses(home: Home, now: float) -> list[Registered]:
    """Every registered license, by serial, with its status at `now`. Reads only."""
    folder = licenses_dir(home)
    names = _listdir(home, folder, ".toml")
    if not names:
        return []
    trusted = trusted_keys(home)
    return [_judge(home, os.path.join(folder, n), n[: -len(".toml")], trusted, now) for n in names]


def register(home: Home, serial: str, key: str, now: float) -> tuple[License, Registered | None]:
    """Verify `key` for `serial` at `now`, then store it; returns it and what it replaced.

    Nothing is written unless the key is accepted.
    """
    serial = check_serial(serial)
    trusted = trusted_keys(home)
    lic = accept(key, trusted, now=now, serial=serial)
    folder = licenses_dir(home)
    path = os.path.join(folder, serial + ".toml")
    previous = _judge(home, path, serial, trusted, now) if os.path.exists(path) else None
    stamp = dt.datetime.fromtimestamp(now, tz=dt.UTC).isoformat(timespec="seconds")
    text = (
        "# A rearm license, written by 'rearm license register'; 'rearm license list' checks it.\n"
        f'serial = "{serial}"\n'
        f'key = "{canonical(key)}"\n'
        f'registered = "{stamp}"\n'
    )
    try:
        # The key is what makes a server licensed; copied elsewhere it licenses that one too.
        make_folders(folder, 0o700)
        write_atomic(path, text, 0o600)
    except OSError as e:
        raise ConfigError(f"{_shown(home, path)}: cannot write: {e.strerror}") from None
    return lic, previous


def problem_of(found: Sequence[Registered]) -> str | None:
    """Why these registered licenses do not license rearm, or None when one of them does."""
    if any(r.status == "valid" for r in found):
        return None
    if not found:
        return f"no license registered ({REGISTER_HINT})"
    return "no valid license: " + "; ".join(f"{r.serial}: {r.reason}" for r in found)


def license_problem(home: Home, now: float) -> str | None:
    """Why this server is not licensed to run rearm at `now`, or None when it is.

    Whether a license is required at all is `license_required(home)`: this only judges the
    licenses. It never raises for bad files; a broken trusted-key file or an unreadable
    folder is itself the reason returned.
    """
    try:
        return problem_of(registered_licenses(home, now))
    except ConfigError as e:
        return str(e)


def license_required(home: Home) -> bool:
    """`require_license = true` in cluster.toml turns enforcement on; it is off by default."""
    path = home.cluster_file
    try:
        data = read_toml(home, path)
    except FileNotFoundError:
        return False
    return Table(data, _shown(home, path)).bool_("require_license", False)
