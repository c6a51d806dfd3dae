"""Names checked with `^...$` patterns must not accept a trailing newline ("web\n"): in
Python `$` also matches before a final newline, so every such check uses fullmatch. Found by
hypothesis in the template values; the same mistake was in the other name checks."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from rearm import templates
from rearm.alerts.mib import mib_text
from rearm.config import check_cluster_name, check_service_name
from rearm.validate import ConfigError, check_name
from rearm.web.users import check_user_name

WORD = templates.Variable("w", "word", None, "")
CHECKS: list[tuple[str, Callable[[str], object]]] = [
    ("group name", lambda v: check_name("group", v)),
    ("cluster name", lambda v: check_cluster_name(v, "other-server")),
    ("service name", check_service_name),
    ("Manager user", check_user_name),
    (
        "template word",
        lambda v: templates.check_value(WORD, v),
    ),
    ("enterprise OID", mib_text),
]


@pytest.mark.parametrize(("what", "check"), CHECKS, ids=[what for what, _ in CHECKS])
def test_a_trailing_newline_is_refused(what: str, check: Callable[[str], object]) -> None:
    good = "1.3.6.1.4.1.99999" if what == "enterprise OID" else "web1"
    check(good)  # the same value without the newline passes
    with pytest.raises((ConfigError, ValueError, templates.TemplateError)):
        check(good + "\n")
