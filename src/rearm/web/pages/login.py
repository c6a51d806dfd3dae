"""GET/POST /login and POST /logout.

The password check (argon2, ~0.2 s of CPU and 64 MiB) runs in a worker thread, a few at a
time, so logins never stall the daemon's loop, which is busy restarting services. The rate
limit is checked before the password, so a locked-out address costs no hashing at all.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from rearm.web import users as users_mod
from rearm.web.context import manager_of, session_of
from rearm.web.pages import form_of
from rearm.web.render import local_path, page, redirect
from rearm.web.sessions import COOKIE

routes = web.RouteTableDef()


def _login_page(
    request: web.Request, *, status: int = 200, error: str | None = None, user: str = ""
) -> web.Response:
    manager = manager_of(request)
    known = manager.users.users()
    return page(
        request,
        "login.html",
        code=status,
        error=error,
        user=user,
        next=local_path(request.query.get("next"), "/"),
        no_users=not known and manager.users.problem is None,
        problem=manager.users.problem,
    )


@routes.get("/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    if manager_of(request).session_of(request) is not None:
        raise redirect(local_path(request.query.get("next"), "/"))
    return _login_page(request)


@routes.post("/login")
async def login(request: web.Request) -> web.StreamResponse:
    manager = manager_of(request)
    client = manager.client_of(request)
    form = await form_of(request)
    name = form.get("user", "").strip()
    wait = manager.throttle.retry_after(client, name)
    if wait is not None:
        response = _login_page(
            request,
            status=429,
            error=f"Too many failed logins from {client} or for this user: try again in {wait} s.",
            user=name,
        )
        response.headers["Retry-After"] = str(wait)
        return response
    known = manager.users.users()
    async with manager.verify_slots:
        user = await asyncio.to_thread(users_mod.verify, known, name, form.get("password", ""))
    if user is None:
        manager.throttle.failed(client, name)
        who = f"user {name}" if name in known else "an unknown user"
        manager.daemon.bus.emit(
            "manager_login_failed",
            f"Manager login failed for {who} from {client}",
            severity="warning",
            data={"user": name if name in known else None, "client": client},
        )
        return _login_page(request, status=401, error="Wrong user name or password.", user=name)
    manager.throttle.succeeded(user.name)
    session = manager.sessions.create(user.name, user.role, user.hash, client)
    manager.daemon.bus.emit(
        "manager_login",
        f"Manager user {user.name} ({user.role}) logged in from {client}",
        data={"user": user.name, "client": client, "role": user.role},
    )
    response = redirect(local_path(form.get("next"), "/"))
    response.set_cookie(
        COOKIE,
        session.token,
        httponly=True,
        samesite="Strict",
        secure=request.secure or manager.settings.tls_proxy,
        path="/",
    )
    raise response


@routes.post("/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    manager = manager_of(request)
    session = session_of(request)
    manager.sessions.drop(session)
    manager.daemon.bus.emit(
        "manager_logout",
        f"Manager user {session.user} logged out",
        data={"user": session.user, "client": manager.client_of(request)},
    )
    response = redirect("/login")
    response.del_cookie(COOKIE, path="/")
    raise response
