"""Cross-site request forgery: two independent checks on every POST.

1. The session's CSRF token must come back in the form (field `csrf`) or the X-CSRF-Token
   header. Another site cannot read it, so it cannot forge a form that carries it.
2. The request must say it comes from this very origin: Origin, or Referer when a browser
   leaves Origin out. A request that carries neither is refused: every browser sends one of
   them on a form POST, so only a non-browser client (which has no victim's cookie to abuse
   but still gets a clear refusal) lacks both.

SameSite=Strict cookies already keep other sites' requests from carrying the session; these
checks do not rely on it.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

FIELD = "csrf"
HEADER = "X-CSRF-Token"


def token_matches(expected: str, given: str | None) -> bool:
    # Constant-time: the comparison must not tell how many leading characters were right.
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def origin_of(url: str) -> str | None:
    """scheme://host[:port] of a URL, lower-case; None when it has none (e.g. "null")."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def our_origins(host: str, tls_proxy: bool) -> frozenset[str]:
    """The origins of the Manager's own pages, for a request that names `host` (HOST[:PORT]).

    Behind a TLS proxy the browser's pages are https:// while the request reaching the daemon
    is plain HTTP: then https:// is ours too.
    """
    schemes = ("http", "https") if tls_proxy else ("http",)
    return frozenset(f"{scheme}://{host}".lower() for scheme in schemes)


def same_origin_refusal(
    origin: str | None, referer: str | None, ours: frozenset[str]
) -> str | None:
    """Why the request does not come from one of `ours`, or None when it does."""
    if origin is not None:
        if origin_of(origin) not in ours:
            return f"the request comes from another origin ({origin[:100]})"
        return None
    if referer is not None:
        if origin_of(referer) not in ours:
            return "the request was sent from a page of another origin"
        return None
    return "the request carries neither Origin nor Referer: send it from the Manager's pages"
