"""The checks every request passes before a route sees it, outermost first:

1. errors: aiohttp's own 404/405 become pages like ours;
2. host: the Host header must name this server (defeats DNS rebinding);
3. login: a session is required except for /login, /static/ and /metrics; a page asked for
   without one redirects to the login, anything else is refused;
4. changes: every POST must come from our own origin and carry the session's CSRF token, and
   only an admin may make one (a read-only user may only log out).

Plus the security headers on every response (set as it is prepared, so streamed responses
get them too): a Content-Security-Policy that allows only our own script and style files.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web

from rearm.web import csrf
from rearm.web.context import manager_of
from rearm.web.render import error_page

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PUBLIC_PREFIXES = ("/static/",)
PUBLIC_PATHS = frozenset({"/login", "/metrics", "/favicon.ico"})
# Reachable by a read-only user although it is a POST: ending one's own session.
READ_ONLY_POSTS = frozenset({"/logout"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Not pages: a script reads these, and a redirect to a login form would only confuse it.
NO_REDIRECT = ("/live", "/api/")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # Same-origin requests keep their Referer: the CSRF check falls back on it.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: security headers on everything, no caching of anything private."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/static/"):
        response.headers.setdefault("Cache-Control", "no-store")


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return error_page(request, 404, "Not found", f"There is no page at {request.path}.")
    except web.HTTPMethodNotAllowed as e:
        response = error_page(
            request, 405, "Method not allowed", f"{request.method} is not allowed here."
        )
        response.headers["Allow"] = ",".join(sorted(e.allowed_methods))
        return response
    except web.HTTPException as e:
        # A raised response (a redirect) skips on_response_prepare: give it the headers here.
        for name, value in HEADERS.items():
            e.headers.setdefault(name, value)
        e.headers.setdefault("Cache-Control", "no-store")
        raise


@web.middleware
async def host(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path == "/metrics":
        return await handler(request)  # scrapers use any name; the data is public anyway
    name = request.url.raw_host or ""
    if name.lower().strip("[]") not in manager_of(request).hosts():
        return web.Response(
            status=421,
            text=f"this server does not answer to the name '{name[:100]}' (see [manager] "
            "allowed_hosts in cluster.toml)\n",
        )
    return await handler(request)


@web.middleware
async def login(request: web.Request, handler: Handler) -> web.StreamResponse:
    manager = manager_of(request)
    if is_public(request.path):
        return await handler(request)
    session = manager.session_of(request)
    if session is None:
        if request.method in SAFE_METHODS and not request.path.startswith(NO_REDIRECT):
            wanted = request.path_qs
            raise web.HTTPSeeOther("/login" + ("?next=" + quote(wanted) if wanted != "/" else ""))
        code = 401 if request.method in SAFE_METHODS else 403
        return error_page(request, code, "Not logged in", "Log in to the Manager first.")
    request["session"] = session
    return await handler(request)


@web.middleware
async def changes(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method in SAFE_METHODS or request.path == "/metrics":
        return await handler(request)
    ours = csrf.our_origins(request.host, manager_of(request).settings.tls_proxy)
    refusal = csrf.same_origin_refusal(
        request.headers.get("Origin"), request.headers.get("Referer"), ours
    )
    if refusal is not None:
        return error_page(request, 403, "Refused", refusal)
    session = request.get("session")
    if session is None:  # /login: no session to hold a token yet; the origin check stands
        return await handler(request)
    form = await request.post() if request.content_type in _FORMS else {}
    token = form.get(csrf.FIELD) if form else None
    given = token if isinstance(token, str) else request.headers.get(csrf.HEADER)
    if not csrf.token_matches(session.csrf, given):
        return error_page(
            request,
            403,
            "Refused",
            "The form's security token is missing or stale (the page may be from an earlier "
            "session): reload the page and try again.",
        )
    if not session.is_admin and request.path not in READ_ONLY_POSTS:
        return error_page(
            request,
            403,
            "Read-only",
            f"User {session.user} may look but not change anything: ask an admin.",
        )
    return await handler(request)


_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")

MIDDLEWARES = [errors, host, login, changes]
