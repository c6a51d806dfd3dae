"""The Manager's pages, one module each; what they share is here.

Actions follow POST/redirect/GET: a POST does the work, leaves a message in the session and
answers 303 to a page, so reloading a page never repeats an action. An action that needs a
confirmation (stop a group, a drill fault, a drastic final action) shows a confirmation page
when the form does not carry confirm=yes: the server asks, not a script, so it holds for every
client and works without JavaScript.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from rearm.web.context import manager_of, session_of
from rearm.web.operator import Operator, OperatorError
from rearm.web.render import error_page, page

# How long an action's page waits for the action to finish before answering "in progress";
# the rest of its progress arrives on the live stream.
PROMPT_WAIT = 2.0


async def form_of(request: web.Request) -> dict[str, str]:
    data = await request.post()
    return {k: v for k, v in data.items() if isinstance(v, str)}


def operator_of(request: web.Request) -> Operator:
    manager = manager_of(request)
    return Operator(manager.daemon, session_of(request).user, manager.client_of(request))


def confirmed(form: dict[str, str]) -> bool:
    return form.get("confirm") == "yes"


def confirm_page(
    request: web.Request,
    *,
    title: str,
    message: str,
    action: str,
    button: str,
    cancel: str,
    fields: dict[str, str] | None = None,
    danger: bool = True,
) -> web.Response:
    return page(
        request,
        "confirm.html",
        title=title,
        message=message,
        action=action,
        button=button,
        cancel=cancel,
        fields=fields or {},
        danger=danger,
    )


def refused(request: web.Request, e: OperatorError) -> web.Response:
    return error_page(request, e.status, "Refused", str(e))


async def run_briefly(
    request: web.Request, work: Coroutine[Any, Any, Any], done: str, pending: str
) -> None:
    """Run an action in the background; say how it ended if it ends within PROMPT_WAIT,
    else that it goes on (the page then shows its progress live)."""
    session = session_of(request)
    task = manager_of(request).background(work)
    await asyncio.wait({task}, timeout=PROMPT_WAIT)
    if not task.done():
        session.flash(pending)
        return
    error = task.exception()
    if isinstance(error, OperatorError):
        session.flash(str(error), "error")
    elif error is not None:
        session.flash(f"failed: {error}", "error")
    else:
        session.flash(done, "success")
