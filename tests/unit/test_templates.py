"""Service templates (SPEC §8): loading, values, substitution, and what an import writes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rearm import templates
from rearm.arm import parse_armload
from rearm.paths import Home
from rearm.templates import TemplateError, Variable

SHIPPED = templates.available()
# Values for the variables that have no default, per template.
REQUIRED = {"generic": {"command": "/usr/bin/python3 -m http.server 8080", "port": "8080"}}


def render(name: str, given: dict[str, str] | None = None) -> templates.Rendered:
    t = templates.load(name)
    # No detection: the defaults as written, whatever is installed on this machine.
    values, _ = templates.resolve(t, {**REQUIRED.get(name, {}), **(given or {})}, detectors={})
    return templates.render(t, values, given or {})


def write_template(root: Path, name: str, meta: str, files: dict[str, str]) -> None:
    folder = root / name
    (folder / "services").mkdir(parents=True)
    (folder / "template.toml").write_text(meta)
    defaults = {"start.sh": "#!/bin/sh\nexit 0\n", "stop.sh": "#!/bin/sh\nexit 0\n"}
    for path, text in {**defaults, **files}.items():
        (folder / path).write_text(text)


# --- the shipped templates ----------------------------------------------------------------------


def test_the_issue_s_templates_are_shipped() -> None:
    assert set(SHIPPED) >= {
        "postgresql",
        "mariadb",
        "redis",
        "redis-forking",
        "nginx",
        "nginx-forking",
        "mail",
        "generic",
    }


@pytest.mark.parametrize("name", SHIPPED)
def test_each_template_renders_to_definitions_the_daemon_accepts(name: str) -> None:
    rendered = render(name)
    templates.check_rendered(rendered)  # loads each service as the daemon will
    for path, text in rendered.files.items():
        assert "${" not in text, f"{name}/{path} keeps a placeholder"
        if path.endswith(".toml"):
            tomllib.loads(text)


@pytest.mark.parametrize("name", SHIPPED)
def test_each_start_script_has_the_guide_s_armload_lines(name: str) -> None:
    """/S /A /R 3 /H 1 /INT 5 by default, as in the guide's start.bat; each line parses."""
    t = templates.load(name)
    start = render(name).files["start.sh"]
    assert start.startswith("#!/bin/sh\n") and 'case "$REARM_EVENT" in' in start
    lines = [ln.split() for ln in start.splitlines() if ln.strip().startswith("armload ")]
    assert [ln[1] for ln in lines] == t.watches and lines
    for line in lines:
        assert line[2:9] == ["/S", "/A", "/R", "3", "/H", "1", "/INT"] and line[9] == "5"
        request = parse_armload(line[1:])
        assert request.service in t.services and request.adopt
        assert (request.policy.retry, request.policy.hours, request.policy.interval) == (3, 1, 5)
    stop = render(name).files["stop.sh"].splitlines()
    killed = [ln.split()[1] for ln in stop if ln.strip().startswith("armkill ")]
    assert sorted(killed) == sorted(t.watches)


@pytest.mark.parametrize("name", SHIPPED)
def test_each_template_has_a_readme(name: str) -> None:
    readme = templates.builtin_root().joinpath(name, "README.md")
    assert readme.is_file() and name in readme.read_text(encoding="utf-8").lower()


def test_the_forking_variants_follow_a_pid_file_and_the_others_do_not() -> None:
    for name in SHIPPED:
        for path, text in render(name).files.items():
            if path.startswith("services/"):
                has_pidfile = tomllib.loads(text).get("pidfile") is not None
                assert has_pidfile == name.endswith("-forking"), f"{name}/{path}"


def test_a_forking_variant_inherits_the_scripts_of_its_parent() -> None:
    forking, plain = templates.load("redis-forking"), templates.load("redis")
    assert forking.extends == "redis"
    assert forking.files["start.sh"] == plain.files["start.sh"]
    assert forking.files["services/${service}.toml"] != plain.files["services/${service}.toml"]
    assert [v.name for v in forking.variables][-1] == "pidfile"


def test_postgresql_defaults_follow_the_detected_version() -> None:
    t = templates.load("postgresql")
    values, _ = templates.resolve(t, {}, detectors={"postgresql-version": lambda: "16"})
    assert values["bindir"] == "/usr/lib/postgresql/16/bin"
    assert values["datadir"] == "/var/lib/postgresql/16/main"
    assert values["config_file"] == "/etc/postgresql/16/main/postgresql.conf"
    values, _ = templates.resolve(t, {"version": "13"}, detectors={})
    assert values["bindir"] == "/usr/lib/postgresql/13/bin"
    values, _ = templates.resolve(t, {"bindir": "/opt/pg/bin"}, detectors={})
    assert values["bindir"] == "/opt/pg/bin" and values["version"] == "15"


def test_postgresql_version_detection(tmp_path: Path) -> None:
    base = tmp_path / "usr" / "lib" / "postgresql"
    assert templates._postgresql_version(str(tmp_path)) is None
    for version in ("9", "13", "16"):
        (base / version / "bin").mkdir(parents=True)
    (base / "13" / "bin" / "postgres").write_text("")
    (base / "9" / "bin" / "postgres").write_text("")
    assert templates._postgresql_version(str(tmp_path)) == "13"  # 16 has no server installed


# --- values -------------------------------------------------------------------------------------

PATH = Variable("p", "path", None, "")
PORT = Variable("port", "port", None, "")
RETRY = Variable("retry", "int", "3", "", 1, 9)
USER = Variable("u", "user", None, "")
ADDRESS = Variable("a", "address", None, "")
URL = Variable("url", "url", None, "")
COMMAND = Variable("command", "command", None, "")
CHOICE = Variable("mode", "choice", None, "", choices=("a", "b"))

GOOD = [
    (PATH, "/var/lib/redis", "/var/lib/redis"),
    (PORT, "06379", "6379"),
    (RETRY, "9", "9"),
    (USER, "www-data", "www-data"),
    (ADDRESS, "127.0.0.1", "127.0.0.1"),
    (ADDRESS, "db.example.org", "db.example.org"),
    (URL, "http://127.0.0.1:8080/health", "http://127.0.0.1:8080/health"),
    (COMMAND, "/usr/bin/app  --port 8080", "/usr/bin/app --port 8080"),
    (CHOICE, "b", "b"),
]
BAD = [
    (PATH, "relative/path", "absolute"),
    (PATH, "/a/../etc", ".."),
    (PATH, '/tmp/x"y', "quotes"),
    (PATH, "/tmp/x y", "blanks"),
    (PATH, "/tmp/$HOME", "$"),
    (PATH, "/tmp/x\nexit 0", "blanks"),
    (PATH, "/tmp/`id`", "quotes"),
    (PATH, "/tmp/x;reboot", "quotes"),
    (PORT, "0", "1 to 65535"),
    (PORT, "65536", "1 to 65535"),
    (PORT, "http", "1 to 65535"),
    (RETRY, "10", "1 to 9"),
    (USER, "1root", "user or group name"),
    (ADDRESS, "::1", "IPv4"),
    (URL, "https://x/", "http://"),
    (COMMAND, "app --x", "absolute path first"),
    (COMMAND, "/bin/sh -c 'rm -rf /'", "the word"),
    (COMMAND, "/bin/app 'unclosed", "not a command line"),
    (CHOICE, "c", "a, b"),
]


@pytest.mark.parametrize(("variable", "value", "expected"), GOOD)
def test_good_values(variable: Variable, value: str, expected: str) -> None:
    assert templates.check_value(variable, value) == expected


@pytest.mark.parametrize(("variable", "value", "rule"), BAD)
def test_bad_values_are_refused_with_the_rule(variable: Variable, value: str, rule: str) -> None:
    with pytest.raises(TemplateError) as e:
        templates.check_value(variable, value)
    assert rule in str(e.value) and variable.name in str(e.value) and "\n" not in str(e.value)


@given(st.text(max_size=40))
def test_no_accepted_value_can_break_out_of_a_toml_string_or_a_shell_word(text: str) -> None:
    for variable in (PATH, USER, ADDRESS, URL, COMMAND, Variable("w", "word", None, "")):
        try:
            value = templates.check_value(variable, text)
        except TemplateError:
            continue
        assert not set(value) & set("\"'\\$`;&|<>(){}[]*?!#~\n\r\t\0")
        assert tomllib.loads(f'k = "{value}"')["k"] == value


def test_assignments() -> None:
    assert templates.parse_assignments(["port=6380", "url=http://h/?a=b"]) == {
        "port": "6380",
        "url": "http://h/?a=b",
    }
    for bad in (["port"], ["=1"]):
        with pytest.raises(TemplateError, match="KEY=VALUE"):
            templates.parse_assignments(bad)
    with pytest.raises(TemplateError, match="twice"):
        templates.parse_assignments(["port=1", "port=2"])


def test_unknown_and_missing_variables_are_named() -> None:
    t = templates.load("generic")
    with pytest.raises(TemplateError, match=r"no variable 'prot'.*port"):
        templates.resolve(t, {"prot": "1"})
    with pytest.raises(TemplateError, match="needs a value for command, port"):
        templates.resolve(t, {})
    values, missing = templates.resolve(t, {}, partial=True)
    assert missing == ["command", "port"] and values["user"] == "nobody"


def test_unknown_template_lists_the_available_ones() -> None:
    with pytest.raises(TemplateError, match=r"unknown template 'oracle' .*postgresql"):
        templates.load("oracle")
    with pytest.raises(TemplateError, match="unknown template"):
        templates.load("../etc")


# --- substitution -------------------------------------------------------------------------------


def test_only_lowercase_braced_names_are_placeholders(tmp_path: Path) -> None:
    meta = 'description = "d"\n[variables.port]\nkind = "port"\ndefault = "80"\nhelp = "p"\n'
    start = '#!/bin/sh\necho "$REARM_EVENT ${HOME} $1 $${port} ${port}"\n'
    write_template(tmp_path, "t", meta, {"start.sh": start})
    t = templates.load("t", tmp_path)
    values, _ = templates.resolve(t, {"port": "8080"})
    rendered = templates.render(t, values, {"port": "8080"})
    assert rendered.files["start.sh"].splitlines() == [
        "#!/bin/sh",
        "# From rearm template 't' with port=8080",
        'echo "$REARM_EVENT ${HOME} $1 ${port} 8080"',
    ]


def test_a_command_becomes_one_toml_string_per_word() -> None:
    rendered = render("generic", {"command": "/usr/bin/app --listen 127.0.0.1:9000"})
    service = tomllib.loads(rendered.files["services/app.toml"])
    assert service["command"] == ["/usr/bin/app", "--listen", "127.0.0.1:9000"]


def test_a_placeholder_that_names_no_variable_is_refused_at_load(tmp_path: Path) -> None:
    write_template(
        tmp_path, "t", 'description = "d"\n', {"start.sh": "#!/bin/sh\narmload X /S ${svc}\n"}
    )
    with pytest.raises(TemplateError, match=r"start.sh uses \$\{svc\}"):
        templates.load("t", tmp_path)


def test_a_default_may_only_use_variables_declared_before_it(tmp_path: Path) -> None:
    meta = (
        'description = "d"\n'
        '[variables.a]\nkind = "path"\ndefault = "${b}/x"\nhelp = "h"\n'
        '[variables.b]\nkind = "path"\ndefault = "/b"\nhelp = "h"\n'
    )
    write_template(tmp_path, "t", meta, {})
    with pytest.raises(TemplateError, match=r"'a': its default uses \$\{b\}"):
        templates.load("t", tmp_path)


@pytest.mark.parametrize(
    ("meta", "files", "message"),
    [
        ("", {}, "description"),
        ('description = "d"\n[variables.x]\nkind = "colour"\nhelp = "h"\n', {}, "kind"),
        ('description = "d"\n[variables.X]\nkind = "path"\nhelp = "h"\n', {}, "a-z"),
        ('description = "d"\n[variables.x]\nkind = "choice"\nhelp = "h"\n', {}, "choices"),
        ('description = "d"\nextra = 1\n', {}, "unknown key 'extra'"),
        ('description = "d"\n', {"notes.txt": "x"}, "unexpected file 'notes.txt'"),
        ('description = "d"\n', {"services/Bad Name.toml": ""}, "service name"),
        ('description = "d"\nextends = "u"\n', {}, "one level only"),
    ],
)
def test_broken_templates_are_refused_with_a_reason(
    tmp_path: Path, meta: str, files: dict[str, str], message: str
) -> None:
    write_template(tmp_path, "u", 'description = "u"\nextends = "v"\n', {})
    write_template(tmp_path, "v", 'description = "v"\n', {})
    write_template(tmp_path, "t", meta, files)
    with pytest.raises(TemplateError, match=message):
        templates.load("t", tmp_path)


def test_a_rendered_service_the_daemon_would_refuse_is_refused(tmp_path: Path) -> None:
    meta = 'description = "d"\n'
    write_template(tmp_path, "t", meta, {"services/s.toml": 'command = ["relative"]\n'})
    t = templates.load("t", tmp_path)
    rendered = templates.render(t, templates.resolve(t, {})[0], {})
    with pytest.raises(TemplateError, match=r"services/s\.toml.*absolute path"):
        templates.check_rendered(rendered)


# --- installing ---------------------------------------------------------------------------------


def test_plan_replaces_scripts_with_backups_and_guards_service_definitions(tmp_path: Path) -> None:
    home = Home.from_env(str(tmp_path))
    rendered = render("redis", {"port": "6380"})
    start = str(tmp_path / "etc/groups/g/start.sh")
    stop = str(tmp_path / "etc/groups/g/stop.sh")
    service = str(tmp_path / "etc/services/redis.toml")

    fresh = templates.plan_install(home, "g", rendered, {start: "old"}.get)
    assert [(w.path, w.backup, w.mode) for w in fresh.writes] == [
        (service, None, 0o644),
        (start, start + ".bak", 0o755),
        (stop, None, 0o755),
    ]
    same = templates.plan_install(home, "g", rendered, {w.path: w.text for w in fresh.writes}.get)
    assert same.writes == [] and sorted(same.unchanged) == sorted([service, start, stop])

    theirs = {service: 'command = ["/usr/bin/redis-server"]\n'}
    with pytest.raises(TemplateError, match=r"etc/services/redis.toml already exists.*--force"):
        templates.plan_install(home, "g", rendered, theirs.get)
    forced = templates.plan_install(home, "g", rendered, theirs.get, force=True)
    assert [w.backup for w in forced.writes if w.path == service] == [service + ".bak"]


def test_the_docs_describe_every_template_and_variable() -> None:
    docs = (Path(__file__).parents[2] / "docs" / "templates.md").read_text(encoding="utf-8")
    for name in SHIPPED:
        assert f"`{name}`" in docs, name
        for variable in templates.load(name).variables:
            assert f"`{variable.name}`" in docs, f"{name}: {variable.name}"
