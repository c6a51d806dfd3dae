"""bundle.py's masking: every secret-named value goes, the rest stays readable."""

from __future__ import annotations

from rearm import bundle


def test_toml_secrets_are_masked_wherever_they_are() -> None:
    text = (
        'name = "c"\npassword = "p1"  # comment kept\nauth_password="p2"\n'
        'environment = { PGPASSWORD = \'p3\', LANG = "C" }\nsecret_file = "s.txt"\n'
        '[[alerts]]\ncommunity = "p4"\nport = 25\n'
    )
    masked = bundle.mask_toml(text)
    for secret in ("p1", "p2", "p3", "p4"):
        assert f'"{secret}"' not in masked and f"'{secret}'" not in masked
    assert "# comment kept" in masked and 'LANG = "C"' in masked and "port = 25" in masked
    assert 'secret_file = "s.txt"' in masked and 'name = "c"' in masked
    assert bundle.masked_toml_or_none(text) == masked


def test_a_secret_that_cannot_be_masked_leaves_the_file_out() -> None:
    text = 'password = """\nmultiline-secret\n"""\n'
    assert bundle.masked_toml_or_none(text) is None


def test_script_secrets_are_masked() -> None:
    script = (
        'export DB_PASSWORD="x1"\nTOKEN=x2 run\nmysql --password=x3 -u root\n'
        "tool --api-key x4\narmload A /R 1 /bin/app --port 8080\n"
    )
    masked = bundle.mask_script(script)
    for secret in ("x1", "x2", "x3", "x4"):
        assert secret not in masked
    assert "armload A /R 1 /bin/app --port 8080" in masked and "-u root" in masked
