"""Server-rendered pages: one Jinja2 environment, autoescaping everything.

Every value from the daemon, the configuration or a request is text to Jinja: autoescape is
on for every template (not only *.html), and no template marks anything `|safe`.
"""

from __future__ import annotations

import datetime as dt
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from rearm.cli.status_text import policy_text
from rearm.web.context import manager_of
from rearm.web.sessions import Session

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")


def _local_time(value: float | str | None) -> str:
    """An epoch time or an ISO 8601 UTC stamp as the server's local time, to the second."""
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        stamp = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    else:
        stamp = dt.datetime.fromtimestamp(value, tz=dt.UTC)
    return stamp.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _policy(watch: dict[str, Any]) -> str:
    """A watch's restart policy as the armload options that made it, e.g. /R 3 /H 1 /INT 5."""
    return policy_text(watch)


@cache
def environment() -> jinja2.Environment:
    """Made at the first page served: a daemon whose Manager nobody opens never loads Jinja2
    (~6 MB of the daemon's memory)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt name fails the tests, not silently blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local_time"] = _local_time
    env.filters["policy"] = _policy
    return env


def render(template: str, **context: Any) -> str:
    return environment().get_template(template).render(**context)


def page(
    request: web.Request,
    template: str,
    *,
    code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> web.Response:
    """A full page: the template with the frame's context (user, CSRF token, messages)."""
    manager = manager_of(request)
    session = request.get("session")
    cluster = manager.daemon.cluster
    frame = {
        "session": session if isinstance(session, Session) else None,
        "flashes": session.take_flashes() if isinstance(session, Session) else [],
        "cluster_name": cluster.name,
        "server_name": cluster.server,
        "path": request.path,
        "live_url": None,
    }
    body = render(template, **{**frame, **context})
    return web.Response(
        text=body, status=code, content_type="text/html", charset="utf-8", headers=headers
    )


def error_page(request: web.Request, status: int, title: str, message: str) -> web.Response:
    return page(request, "error.html", code=status, title=title, message=message)


def redirect(location: str) -> web.HTTPSeeOther:
    # 303: the browser follows with a GET, so a reload never repeats the POST.
    return web.HTTPSeeOther(location)


def local_path(candidate: str | None, default: str = "/") -> str:
    """`candidate` when it is a path on this site (never //host or a scheme), else `default`."""
    if (
        candidate
        and candidate.startswith("/")
        and not candidate.startswith("//")
        and "\\" not in candidate
        and not any(ord(c) < 0x20 for c in candidate)
    ):
        return candidate
    return default
