"""GET /groups/{name}: state, watches (pid, state, restarts, faults in window), last faults,
live. POST .../start, .../stop, .../watches/{watch}/restart and .../watches/{watch}/drill, each
confirmed first, as the original Manager asks "OK?" before starting or stopping a group."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from aiohttp import web

from rearm.config import load_group
from rearm.validate import ConfigError
from rearm.web.context import manager_of, session_of
from rearm.web.operator import Operator, OperatorError, check_group
from rearm.web.pages import confirm_page, confirmed, form_of, operator_of, refused, run_briefly
from rearm.web.render import error_page, page, redirect
from rearm.web.views import group_context

routes = web.RouteTableDef()


def _url(name: str) -> str:
    return f"/groups/{quote(name, safe='')}"


@routes.get("/groups/{name}")
async def group(request: web.Request) -> web.StreamResponse:
    manager = manager_of(request)
    name = request.match_info["name"]
    context = group_context(manager, name)
    if context is None:
        return error_page(request, 404, "No such group", f"There is no group named {name}.")
    try:
        config = load_group(manager.daemon.home, name)
        settings: dict[str, object] | None = {
            "auto_start": config.auto_start,
            "description": config.description,
            "script_timeout": config.script_timeout,
            "stop_timeout": config.stop_timeout,
            "declared": [w.watch_id for w in config.watches],
        }
        config_problem = None
    except ConfigError as e:
        settings, config_problem = None, str(e)
    return page(
        request,
        "group.html",
        live_url=f"/live?view=group&group={quote(name, safe='')}",
        name=name,
        settings=settings,
        config_problem=config_problem,
        **context,
    )


async def _group_operation(
    request: web.Request,
    verb: str,
    question: str,
    explain: str,
    run: Callable[[Operator, str], Coroutine[Any, Any, object]],
    done: str,
    pending: str,
    danger: bool = True,
) -> web.StreamResponse:
    """Start or stop a group: check it exists, ask for confirmation, then run and report."""
    name = request.match_info["name"]
    operator = operator_of(request)
    form = await form_of(request)
    try:
        check_group(operator.daemon, name)
    except OperatorError as e:
        return refused(request, e)
    if not confirmed(form):
        return confirm_page(
            request,
            title=question.format(name=name),
            message=explain.format(name=name),
            action=f"{_url(name)}/{verb}",
            button=f"{verb.capitalize()} group {name}",
            cancel=_url(name),
            danger=danger,
        )
    await run_briefly(
        request,
        run(operator, name),
        done=done.format(name=name),
        pending=pending.format(name=name),
    )
    raise redirect(_url(name))


@routes.post("/groups/{name}/start")
async def start(request: web.Request) -> web.StreamResponse:
    return await _group_operation(
        request,
        "start",
        "Start group {name}?",
        "This brings {name} online: its declarative watches, then its start script, which "
        "starts and watches its services.",
        lambda operator, name: operator.start_group(name),
        done="Group {name} is online.",
        pending="Group {name} is starting: its progress shows here as it happens.",
        danger=False,
    )


@routes.post("/groups/{name}/stop")
async def stop(request: web.Request) -> web.StreamResponse:
    return await _group_operation(
        request,
        "stop",
        "Stop group {name}?",
        "This runs the stop script of {name}, then ends every watch of the group that is still "
        "alive: its services stop and are no longer watched.",
        lambda operator, name: operator.stop_group(name),
        done="Group {name} is offline.",
        pending="Group {name} is stopping: its progress shows here as it happens.",
    )


def _ask_about_watch(
    request: web.Request, form: dict[str, str], verb: str, title: str, message: str, button: str
) -> web.Response | None:
    """The confirmation page of an action on one watch, or None when it is confirmed."""
    if confirmed(form):
        return None
    name, watch = request.match_info["name"], request.match_info["watch"]
    return confirm_page(
        request,
        title=title,
        message=message,
        action=f"{_url(name)}/watches/{quote(watch, safe='')}/{verb}",
        button=button,
        cancel=_url(name),
        danger=verb == "drill",
    )


@routes.post("/groups/{name}/watches/{watch}/drill")
async def drill(request: web.Request) -> web.StreamResponse:
    name, watch = request.match_info["name"], request.match_info["watch"]
    asked = _ask_about_watch(
        request,
        await form_of(request),
        "drill",
        f"Inject a fault into {watch}?",
        f"The process of watch {watch} gets SIGKILL, as if it had crashed. rearm then does what "
        "its policy says: restart it after /INT seconds, or fire the final action when this "
        "fault is one too many within /H hours.",
        f"Kill {watch} now",
    )
    if asked is not None:
        return asked
    try:
        pid = operator_of(request).drill_fault(name, watch)
    except OperatorError as e:
        return refused(request, e)
    session_of(request).flash(f"Drill: {watch} (pid {pid}) was killed; watch the recovery below.")
    raise redirect(_url(name))


@routes.post("/groups/{name}/watches/{watch}/restart")
async def restart(request: web.Request) -> web.StreamResponse:
    name, watch = request.match_info["name"], request.match_info["watch"]
    asked = _ask_about_watch(
        request,
        await form_of(request),
        "restart",
        f"Restart {watch}?",
        f"The target of watch {watch} is stopped (its stop command or signal, SIGKILL after "
        "40 s) and started again. An operator's restart is not a fault: nothing is counted "
        "toward /R.",
        f"Restart {watch}",
    )
    if asked is not None:
        return asked
    await run_briefly(
        request,
        operator_of(request).restart_watch(name, watch),
        done=f"{watch} was restarted.",
        pending=f"{watch} is restarting: its progress shows here as it happens.",
    )
    raise redirect(_url(name))
