"""GET/POST /licenses: the registered licenses with their status, and registering a new one
(the guide's License Manager)."""

from __future__ import annotations

import time

from aiohttp import web

from rearm import license as licenses
from rearm.validate import ConfigError
from rearm.web.context import manager_of, session_of
from rearm.web.operator import OperatorError
from rearm.web.pages import form_of, operator_of
from rearm.web.render import page, redirect

routes = web.RouteTableDef()


@routes.get("/licenses")
async def show(request: web.Request) -> web.StreamResponse:
    home = manager_of(request).daemon.home
    now = time.time()
    try:
        found = licenses.registered_licenses(home, now)
        required = licenses.license_required(home)
        problem = licenses.problem_of(found)
    except ConfigError as e:
        found, required, problem = [], True, str(e)
    return page(
        request,
        "licenses.html",
        licenses=found,
        required=required,
        problem=problem,
    )


@routes.post("/licenses")
async def register(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    session = session_of(request)
    try:
        described = operator_of(request).register_license(
            form.get("serial", ""), form.get("key", "")
        )
    except OperatorError as e:
        session.flash(f"The license was not registered: {e}", "error")
        raise redirect("/licenses") from None
    # The guide's words on success.
    session.flash(f"The license was registered. {described}", "success")
    raise redirect("/licenses")
