"""GET / (the tree: cluster, server, groups, watches, live), POST /groups (create a group),
GET /api/status (the status JSON of `rearm status --json`, for scripts holding a session)."""

from __future__ import annotations

from aiohttp import web

from rearm.web.context import manager_of
from rearm.web.operator import OperatorError
from rearm.web.pages import form_of, operator_of, refused
from rearm.web.render import page, redirect
from rearm.web.views import tree_context

routes = web.RouteTableDef()


@routes.get("/")
async def tree(request: web.Request) -> web.StreamResponse:
    manager = manager_of(request)
    return page(
        request,
        "tree.html",
        live_url="/live?view=tree",
        **tree_context(manager),
    )


@routes.post("/groups")
async def create_group(request: web.Request) -> web.StreamResponse:
    form = await form_of(request)
    name = form.get("name", "").strip()
    try:
        operator_of(request).create_group(
            name, form.get("description", "").strip(), form.get("auto_start") == "on"
        )
    except OperatorError as e:
        return refused(request, e)
    raise redirect(f"/groups/{name}")


@routes.get("/api/status")
async def status(request: web.Request) -> web.StreamResponse:
    return web.json_response(manager_of(request).daemon.status())
