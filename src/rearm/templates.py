"""Service templates (SPEC §8): ready-made group scripts and service definitions.

A template is a folder of package data, `rearm/templates/NAME/`:

    template.toml     description, variables (kind, default, help), optionally `extends`
    start.sh stop.sh  the group's scripts, with armload/armkill lines like the guide's start.bat
    services/*.toml   the service definitions (SPEC §2) that the `armload /S` lines name
    README.md         what it watches, for people (not imported)

Files hold placeholders `${name}` that are filled in at import. Only a lowercase `${name}` is a
placeholder, so a shell's `$VAR`, `${VAR}` and `$1` pass through untouched; `$${` writes a
literal `${`. Every value is checked against its variable's kind and may only hold characters
that need no quoting in a TOML string or a shell word: substitution cannot inject anything.

Here: listing, loading, substitution and validation. Writing into a REARM_HOME is planned here
(`plan_install`) and carried out by the CLI (rearm.cli.template_cmd).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib.resources import files
from importlib.resources.abc import Traversable

from rearm.config import check_service_name, load_service, write_atomic
from rearm.paths import Home, make_folders
from rearm.validate import ConfigError, Table

TEMPLATE_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
VARIABLE_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
PLACEHOLDER_RE = re.compile(r"\$(\$?)\{([a-z][a-z0-9_]*)\}")
# Characters that mean nothing special inside a TOML basic string or to a POSIX shell (no
# quotes, backslash, $, backquote, blank, glob, redirection, ; & | # or control characters).
SAFE_RE = re.compile(r"^[A-Za-z0-9_./:@%+,=-]+$")
SAFE_RULE = "letters, digits and _ . / : @ % + , = - only (no blanks, quotes or $)"
USER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
HOSTNAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$")
SCRIPTS = ("start.sh", "stop.sh")
# An armload line of a template: its watch ID may be a placeholder (${watch_id}).
TEMPLATE_ARMLOAD_RE = re.compile(
    r"^\s*armload\s+([A-Za-z0-9_]+|\$\{[a-z][a-z0-9_]*\})", re.MULTILINE
)
WATCH_ID_RE = re.compile(r"^[A-Za-z0-9_]{1,255}$")
URL_RE = re.compile(r"^http://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9_./:@%+,=-]*)?$")
KINDS = (
    "path",
    "port",
    "int",
    "user",
    "address",
    "url",
    "word",
    "command",
    "choice",
    "watch",  # a watch ID (armload's WATCHID)
    "service",  # a service name: the definition's file name (armload /S NAME)
)


class TemplateError(ConfigError):
    """A template or a value for it is wrong; str() is one line saying what and what is allowed."""


@dataclass(frozen=True)
class Variable:
    """One `${name}` of a template: its kind, its default (None: must be given) and its help."""

    name: str
    kind: str
    default: str | None
    help: str
    low: int | None = None
    high: int | None = None
    choices: tuple[str, ...] = ()
    detect: str | None = None  # a DETECTORS key: the default found on this machine


# The armload options every template's start script uses, with the guide's values as defaults:
# `armload ID /S /A /R 3 /H 1 /INT 5`. A template may declare one again to change its default.
COMMON_VARIABLES = (
    Variable("retry", "int", "3", "/R: restarts allowed within /H hours", 1, 9),
    Variable("hours", "int", "1", "/H: hours after which the fault count returns to 0", 1, 24),
    Variable("interval", "int", "5", "/INT: seconds to wait before each restart", 0, 3600),
    Variable(
        "wait", "int", "60", "/WAIT: seconds armload waits for an answer (0: no limit)", 0, 3600
    ),
)


@dataclass(frozen=True)
class Template:
    name: str
    description: str
    variables: tuple[Variable, ...]
    files: Mapping[str, str]  # relative path (start.sh, services/NAME.toml) -> raw text
    extends: str | None = None

    @property
    def services(self) -> list[str]:
        """The service names of its definitions, with their default values."""
        return sorted(
            self.by_default(p.removeprefix("services/").removesuffix(".toml"))
            for p in self.files
            if p.startswith("services/")
        )

    @property
    def watches(self) -> list[str]:
        """The watch IDs its start script armloads, in order, with their default values."""
        return [
            self.by_default(w) for w in TEMPLATE_ARMLOAD_RE.findall(self.files.get("start.sh", ""))
        ]

    def by_default(self, text: str) -> str:
        """`text` with each placeholder that has a plain default replaced by it."""
        defaults = {v.name: v.default for v in self.variables if v.default is not None}
        return PLACEHOLDER_RE.sub(
            lambda m: defaults.get(m.group(2), m.group(0)) if not m.group(1) else m.group(0), text
        )

    def variable(self, name: str) -> Variable:
        for v in self.variables:
            if v.name == name:
                return v
        raise TemplateError(
            f"template '{self.name}' has no variable '{name}' "
            f"(its variables: {', '.join(v.name for v in self.variables)})"
        )


@dataclass(frozen=True)
class Rendered:
    """A template with every placeholder filled in: the files to import, by relative path."""

    template: str
    values: Mapping[str, str]
    files: Mapping[str, str]
    missing: tuple[str, ...] = ()  # variables without a value (left as ${name}: show only)


# --- finding and loading ------------------------------------------------------------------------


def builtin_root() -> Traversable:
    return files("rearm").joinpath("templates")


def available(root: Traversable | None = None) -> list[str]:
    """The names of the templates under `root` (default: the ones rearm ships)."""
    root = root or builtin_root()
    return sorted(
        entry.name
        for entry in root.iterdir()
        if entry.is_dir() and entry.joinpath("template.toml").is_file()
    )


def load(name: str, root: Traversable | None = None) -> Template:
    """The template NAME, with its parent's files and variables merged in and all checked."""
    try:
        return _load(name, root or builtin_root())
    except TemplateError:
        raise
    except ConfigError as e:  # from the shared readers: say which template it is about
        text = str(e)
        where = "" if text.startswith("template ") else f"template {name}: "
        raise TemplateError(where + text) from None


def _load(name: str, root: Traversable) -> Template:
    own = _load_one(name, root)
    if own.extends is None:
        return _with_common(own)
    parent = _load_one(own.extends, root)
    if parent.extends is not None:
        raise TemplateError(
            f"template '{name}': extends '{own.extends}', which extends another: one level only"
        )
    # The child's files replace the parent's of the same path; its variables add to (or
    # redefine) the parent's, keeping the parent's order so that defaults can refer back.
    merged_files = {**parent.files, **own.files}
    own_vars = {v.name: v for v in own.variables}
    variables = [own_vars.pop(v.name, v) for v in parent.variables] + list(own_vars.values())
    merged = replace(own, files=merged_files, variables=tuple(variables))
    return _with_common(merged)


def _load_one(name: str, root: Traversable) -> Template:
    folder = root.joinpath(name)
    meta_file = folder.joinpath("template.toml")
    if not TEMPLATE_NAME_RE.fullmatch(name) or not meta_file.is_file():
        names = ", ".join(available(root)) or "none"
        raise TemplateError(f"unknown template '{name}' (available: {names})")
    where = f"template {name}: template.toml"
    try:
        data = tomllib.loads(meta_file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise TemplateError(f"{where}: not valid TOML: {e}") from None
    t = Table(data, where)
    description = t.req_str("description")
    extends = t.str_("extends")
    declared = t.raw("variables") or {}
    if not isinstance(declared, dict):
        raise t.error("variables", "must be a table of tables ([variables.NAME])")
    t.finish()
    variables = tuple(_variable(where, key, spec) for key, spec in declared.items())
    return Template(name, description, variables, _files(name, folder), extends)


def _variable(where: str, key: str, spec: object) -> Variable:
    if not VARIABLE_NAME_RE.fullmatch(key):
        raise TemplateError(f"{where}: variable '{key}': use 1-32 characters of a-z, 0-9 and _")
    if not isinstance(spec, dict):
        raise TemplateError(f"{where}: variable '{key}': must be a table (kind, default, help)")
    t = Table(spec, where, f"variables.{key}.")
    kind = t.req_str("kind")
    if kind not in KINDS:
        raise t.error("kind", "must be one of " + ", ".join(KINDS))
    raw_default = t.raw("default")
    if isinstance(raw_default, bool) or not isinstance(raw_default, str | int | None):
        raise t.error("default", "must be a string or a whole number")
    choices = t.raw("choices") or []
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise t.error("choices", "must be a list of strings")
    if kind == "choice" and not choices:
        raise t.error("choices", "a choice needs its list of choices")
    variable = Variable(
        name=key,
        kind=kind,
        default=None if raw_default is None else str(raw_default),
        help=t.req_str("help"),
        low=t.opt_int("min", -(2**31), 2**31),
        high=t.opt_int("max", -(2**31), 2**31),
        choices=tuple(choices),
        detect=t.str_("detect"),
    )
    if variable.detect is not None and variable.detect not in DETECTORS:
        raise t.error("detect", "must be one of " + ", ".join(DETECTORS))
    t.finish()
    return variable


def _files(name: str, folder: Traversable) -> dict[str, str]:
    found: dict[str, str] = {}
    for entry in folder.iterdir():
        if entry.name in ("template.toml", "README.md") or entry.name.startswith("."):
            continue
        if entry.name in SCRIPTS and entry.is_file():
            found[entry.name] = entry.read_text(encoding="utf-8")
        elif entry.name == "services" and entry.is_dir():
            for service in entry.iterdir():
                stem = service.name.removesuffix(".toml")
                if not service.name.endswith(".toml") or not service.is_file():
                    raise TemplateError(f"template {name}: services/{service.name}: not a .toml")
                if not PLACEHOLDER_RE.fullmatch(stem):  # ${service}: named at import
                    check_service_name(stem)
                found[f"services/{service.name}"] = service.read_text(encoding="utf-8")
        else:
            raise TemplateError(
                f"template {name}: unexpected file '{entry.name}' (a template holds "
                "template.toml, README.md, start.sh, stop.sh and services/*.toml)"
            )
    return found


def _with_common(template: Template) -> Template:
    """Add the common armload variables (unless redefined) and check the whole template."""
    own = {v.name for v in template.variables}
    common = tuple(v for v in COMMON_VARIABLES if v.name not in own)
    full = replace(template, variables=common + template.variables)
    missing = [s for s in SCRIPTS if s not in full.files]
    if missing:
        raise TemplateError(f"template {full.name}: {' and '.join(missing)} missing")
    declared: set[str] = set()
    for v in full.variables:
        # A default may use the variables declared before it, e.g. /usr/lib/postgresql/${version}.
        unknown = sorted(set(_placeholders(v.default or "")) - declared)
        if unknown:
            raise TemplateError(
                f"template {full.name}: variable '{v.name}': its default uses ${{{unknown[0]}}}, "
                "which is not a variable declared before it"
            )
        declared.add(v.name)
    for path, text in full.files.items():
        unknown = sorted(set(_placeholders(path + "\n" + text)) - declared)
        if unknown:
            raise TemplateError(
                f"template {full.name}: {path} uses ${{{unknown[0]}}}, which is not one of its "
                f"variables (write $${{ for a literal ${{)"
            )
    return full


def _placeholders(text: str) -> list[str]:
    return [m.group(2) for m in PLACEHOLDER_RE.finditer(text) if not m.group(1)]


# --- values -------------------------------------------------------------------------------------


def _postgresql_version(root: str = "/") -> str | None:
    """The newest PostgreSQL major version installed the Debian way (/usr/lib/postgresql/N)."""
    base = os.path.join(root, "usr/lib/postgresql")
    try:
        entries = os.listdir(base)
    except OSError:
        return None
    versions = [
        e
        for e in entries
        if e.isdigit() and os.path.isfile(os.path.join(base, e, "bin", "postgres"))
    ]
    return max(versions, key=int) if versions else None


# What a variable's `detect` names: how to find its default on this machine (None: not found,
# the declared default stays).
DETECTORS: dict[str, Callable[[], str | None]] = {"postgresql-version": _postgresql_version}


def check_value(variable: Variable, value: str) -> str:
    """`value` if it is a valid value of `variable`, else TemplateError saying what is allowed."""

    def bad(rule: str) -> TemplateError:
        return TemplateError(f"{variable.name}={value!r}: {rule}")

    kind = variable.kind
    if kind == "command":
        try:
            words = shlex.split(value)
        except ValueError as e:
            raise bad(f"not a command line: {e}") from None
        if not words or not words[0].startswith("/"):
            raise bad("give the program's absolute path first, then its arguments")
        for word in words:
            if not SAFE_RE.fullmatch(word):
                raise bad(f"the word {word!r} may hold {SAFE_RULE}")
        return " ".join(words)
    if not SAFE_RE.fullmatch(value):
        raise bad(f"use {SAFE_RULE}")
    if kind == "path":
        if not value.startswith("/") or "/../" in value + "/":
            raise bad("must be an absolute path without '..', e.g. /var/lib/redis")
    elif kind in ("port", "int"):
        low, high = (1, 65535) if kind == "port" else (variable.low, variable.high)
        if not value.isdigit() or (low is not None and int(value) < low):
            raise bad(f"must be a whole number from {low} to {high}")
        if high is not None and int(value) > high:
            raise bad(f"must be a whole number from {low} to {high}")
        value = str(int(value))
    elif kind == "user":
        if not USER_RE.fullmatch(value):
            raise bad("must be a user or group name (a letter or _, then letters, digits, _ . -)")
    elif kind == "address":
        if not (_is_ipv4(value) or HOSTNAME_RE.fullmatch(value)):
            raise bad("must be an IPv4 address or a host name, e.g. 127.0.0.1")
    elif kind == "url":
        if not URL_RE.fullmatch(value):
            raise bad("must be an http:// URL, e.g. http://127.0.0.1:8080/health")
    elif kind == "choice" and value not in variable.choices:
        raise bad("must be one of " + ", ".join(variable.choices))
    elif kind == "watch":
        if not WATCH_ID_RE.fullmatch(value) or value.upper().startswith("REARM_"):
            raise bad("must be a watch ID: 1-255 of A-Z a-z 0-9 _, not starting with REARM_")
    elif kind == "service":
        try:
            value = check_service_name(value)
        except ConfigError as e:
            raise bad(str(e)) from None
    return value


def _is_ipv4(text: str) -> bool:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return False
    return True


def parse_assignments(items: Iterable[str]) -> dict[str, str]:
    """`KEY=VALUE` words (from --set) as a dict; a key given twice is refused."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise TemplateError(f"'{item}': write KEY=VALUE, e.g. port=6380")
        if key in out:
            raise TemplateError(f"'{key}' is set twice")
        out[key] = value
    return out


def resolve(
    template: Template,
    overrides: Mapping[str, str],
    *,
    detectors: Mapping[str, Callable[[], str | None]] | None = None,
    partial: bool = False,
) -> tuple[dict[str, str], list[str]]:
    """The value of every variable: given (checked), else detected, else its default.

    Returns (values, missing). A variable without a value is an error, unless `partial`
    (for `rearm template show`), when it is listed in `missing` instead.
    """
    for key in overrides:
        template.variable(key)  # unknown keys are refused by name
    detectors = DETECTORS if detectors is None else detectors
    values: dict[str, str] = {}
    missing: list[str] = []
    for v in template.variables:
        if v.name in overrides:
            values[v.name] = check_value(v, overrides[v.name])
            continue
        found = detectors[v.detect]() if v.detect is not None and v.detect in detectors else None
        if found is None and v.default is not None:
            # Defaults are trusted package data, but may refer to values the admin gave.
            found = _fill(v.default, values, set(missing))
        if found is None:
            missing.append(v.name)
            continue
        values[v.name] = check_value(v, found)
    if missing and not partial:
        raise TemplateError(
            f"template '{template.name}' needs a value for {', '.join(missing)}: "
            f"give --set {missing[0]}=VALUE (see 'rearm template show {template.name}')"
        )
    return values, missing


def _fill(text: str, values: Mapping[str, str], missing: set[str]) -> str | None:
    if any(name in missing for name in _placeholders(text)):
        return None
    return PLACEHOLDER_RE.sub(
        lambda m: "${" + m.group(2) + "}" if m.group(1) else values[m.group(2)], text
    )


# --- rendering ------------------------------------------------------------------------------------


def render(template: Template, values: Mapping[str, str], given: Mapping[str, str]) -> Rendered:
    """Fill every file in. `given` (the --set values) is noted in each file's first comment."""
    missing = tuple(v.name for v in template.variables if v.name not in values)
    note = f"# From rearm template '{template.name}'" + (
        " with " + " ".join(f"{k}={values[k]}" for k in given if k in values) if given else ""
    )
    out: dict[str, str] = {}
    for raw_path, text in template.files.items():
        in_toml = raw_path.endswith(".toml")
        # A definition's file name may be a variable too (services/${service}.toml).
        path = PLACEHOLDER_RE.sub(
            lambda m: values.get(m.group(2), m.group(0)) if not m.group(1) else m.group(0),
            raw_path,
        )

        def one(m: re.Match[str], in_toml: bool = in_toml) -> str:
            name = m.group(2)
            if m.group(1) or name not in values:
                return "${" + name + "}"  # an escaped $${, or a value still missing (show)
            value = values[name]
            if in_toml and template.variable(name).kind == "command":
                # A command goes into a TOML array as one string per word.
                return ", ".join(f'"{word}"' for word in value.split())
            return value

        body = PLACEHOLDER_RE.sub(one, text)
        if body.startswith("#!"):
            shebang, _, rest = body.partition("\n")
            body = f"{shebang}\n{note}\n{rest}"
        else:
            body = f"{note}\n{body}"
        out[path] = body
    return Rendered(template.name, dict(values), out, missing)


def check_rendered(rendered: Rendered) -> None:
    """Load each rendered service definition as the daemon will: refuse what it would refuse."""
    with tempfile.TemporaryDirectory(prefix="rearm-template-") as scratch:
        home = Home.from_env(scratch)
        make_folders(home.services_dir)  # as rearm writes them whatever the umask: trusted
        for path, text in rendered.files.items():
            if not path.startswith("services/"):
                continue
            name = path.removeprefix("services/").removesuffix(".toml")
            write_atomic(home.service_file(name), text)
            try:
                load_service(home, name)
            except ConfigError as e:
                detail = str(e).replace(home.service_file(name), path)
                raise TemplateError(f"template {rendered.template}: {detail}") from None


# --- installing -----------------------------------------------------------------------------------


def shown_path(home: Home, path: str) -> str:
    """Paths under REARM_HOME are shown relative to it: shorter, and alike in every test."""
    if home.root and path.startswith(home.root + os.sep):
        return os.path.relpath(path, home.root)
    return path


@dataclass(frozen=True)
class Write:
    """One file to write into REARM_HOME; `backup` keeps the previous content when it differs."""

    path: str
    text: str
    mode: int
    backup: str | None = None


@dataclass(frozen=True)
class Plan:
    writes: list[Write] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def plan_install(
    home: Home,
    group: str,
    rendered: Rendered,
    current: Callable[[str], str | None],
    force: bool = False,
    in_use: Mapping[str, str] | None = None,
    users: Mapping[str, Iterable[str]] | None = None,
) -> Plan:
    """What importing `rendered` into `group` writes. `current(path)` reads a file (None: none).

    The group's scripts are replaced, the old ones kept as .bak. A service definition that
    exists with other content belongs to someone (another group, the admin): refused unless
    `force`, and then kept as .bak too. One that a live watch runs (`in_use`: path -> which
    watch, see uses.live_users) is never replaced: that watch would run another program at its
    next restart, unseen. `users` (service name -> groups) names who else uses a file.
    """
    plan = Plan()
    conflicts: list[str] = []
    busy: list[str] = []
    in_use = in_use or {}
    for rel, text in sorted(rendered.files.items()):
        if rel in SCRIPTS:
            path = os.path.join(home.group_dir(group), rel)
            mode = 0o755
        else:
            path = home.service_file(rel.removeprefix("services/").removesuffix(".toml"))
            mode = 0o644
        old = current(path)
        if old == text:
            plan.unchanged.append(path)
            continue
        if old is not None and rel not in SCRIPTS and path in in_use:
            busy.append(path)
            continue
        if old is not None and rel not in SCRIPTS and not force:
            conflicts.append(path)
            continue
        plan.writes.append(Write(path, text, mode, path + ".bak" if old is not None else None))
    if busy:
        raise TemplateError(
            "; ".join(f"{shown_path(home, b)} is used by {in_use[b]}" for b in busy)
            + ": importing would replace the program it runs at its next restart. Import under "
            "other names (--set watch_id=... --set service=..., see 'rearm template show "
            f"{rendered.template}'), or stop that group first"
        )
    if conflicts:
        used = sorted(
            {
                g
                for c in conflicts
                for g in (users or {}).get(os.path.basename(c).removesuffix(".toml"), ())
                if g != group
            }
        )
        raise TemplateError(
            ", ".join(shown_path(home, c) for c in conflicts)
            + (" already exists" if len(conflicts) == 1 else " already exist")
            + " with other content"
            + (f" (used by group {', '.join(used)})" if used else "")
            + ": compare it with 'rearm template show "
            f"{rendered.template}', then give --force to replace it (the old file is kept as "
            ".bak), or import under another name (--set service=...)"
        )
    return plan
