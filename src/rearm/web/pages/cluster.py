"""GET/POST /cluster: the cluster's properties (the guide's cluster Property dialog) and the
final action (`armem /M`). A final action or heartbeat action that takes the machine down
(reboot, shutdown, panic) is confirmed first. The reboot-loop counter (`rearm reboots`) is
shown here, and POST /cluster/reboots/clear clears it (confirmed first)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from aiohttp import web

from rearm.daemon.actions import is_drill
from rearm.store import iso8601
from rearm.web.context import manager_of, session_of
from rearm.web.operator import DRASTIC, EDITABLE, OperatorError
from rearm.web.pages import confirm_page, confirmed, form_of, operator_of
from rearm.web.render import page, redirect

routes = web.RouteTableDef()
REBOOTS_SHOWN = 20  # the newest reboots listed on the page (`rearm reboots` lists them all)

LABELS = {
    "final_action": "Final action (armem /M)",
    "return_mode": "Return mode",
    "heartbeat_action": "Heartbeat action",
    "heartbeat_timeout": "Heartbeat timeout (s)",
    "max_reboots": "Reboot-loop guard: max reboots",
    "reboot_window": "Reboot-loop guard: window (s)",
}
HELP = {
    "final_action": "What fires when a watch fails more than /R times within /H hours.",
    "return_mode": "auto: groups with auto start come online at boot; manual: they wait.",
    "heartbeat_action": "What happens when the daemon stops answering its keeper.",
    "heartbeat_timeout": "Seconds without a heartbeat before the heartbeat action (2-3600).",
    "max_reboots": "More reboots or panics than this within the window become stopgroup.",
    "reboot_window": "The guard's window in seconds (60-604800).",
}


def _values(cluster: Any) -> dict[str, str]:
    raw = asdict(cluster)
    return {k: str(v.value if hasattr(v, "value") else v) for k, v in raw.items()}


@routes.get("/cluster")
async def show(request: web.Request) -> web.StreamResponse:
    daemon = manager_of(request).daemon
    values = _values(daemon.cluster)
    # drill is shown on its own line, as the daemon applies it (the environment may force it).
    fixed = {k: v for k, v in values.items() if k not in EDITABLE and k != "drill"}
    editable = [
        {
            "key": k,
            "label": LABELS[k],
            "help": HELP[k],
            "value": values[k],
            "choices": choices,
        }
        for k, choices in EDITABLE.items()
    ]
    return page(
        request,
        "cluster.html",
        fixed=fixed,
        editable=editable,
        drill=is_drill(daemon.cluster),
        manager_url=daemon.manager_url,
        reboots=daemon.actions.reboot_summary(daemon.cluster),
        reboot_list=[
            {**r, "ts": iso8601(r["wall"])}
            for r in reversed(daemon.actions.reboot_list(daemon.cluster))
        ][:REBOOTS_SHOWN],
    )


@routes.post("/cluster/reboots/clear")
async def clear_reboots(request: web.Request) -> web.StreamResponse:
    """The original's reboot-count control: the guard counts from zero again."""
    form = await form_of(request)
    if not confirmed(form):
        return confirm_page(
            request,
            title="Clear the reboot-loop counter?",
            message="The reboot-loop guard then counts from zero: the next reboots or panics "
            "fire as the final action says, up to max_reboots within reboot_window again. "
            "The history of reboots stays.",
            action="/cluster/reboots/clear",
            button="Clear the counter",
            cancel="/cluster",
        )
    message = operator_of(request).clear_reboots()
    session_of(request).flash(message[:1].upper() + message[1:] + ".", "success")
    raise redirect("/cluster")


@routes.post("/cluster")
async def save(request: web.Request) -> web.StreamResponse:
    daemon = manager_of(request).daemon
    form = await form_of(request)
    current = _values(daemon.cluster)
    changes = {k: form[k].strip() for k in EDITABLE if k in form and form[k].strip() != current[k]}
    drastic = {k: v for k, v in changes.items() if k.endswith("_action") and v in DRASTIC}
    if drastic and not confirmed(form):
        drill = is_drill(daemon.cluster)
        outcome = (
            "Drill mode is on: when it fires, it is recorded as an event and not executed."
            if drill
            else "Drill mode is OFF: when it fires, this server really goes down."
        )
        return confirm_page(
            request,
            title="Change to an action that takes the server down?",
            message=", ".join(f"{LABELS[k]}: {v}" for k, v in drastic.items()) + ". " + outcome,
            action="/cluster",
            button="Save " + ", ".join(f"{k}={v}" for k, v in drastic.items()),
            cancel="/cluster",
            fields=changes,
        )
    session = session_of(request)
    try:
        needs_restart = operator_of(request).set_properties(changes)
    except OperatorError as e:
        session.flash(f"Not saved: {e}", "error")
        raise redirect("/cluster") from None
    if not changes:
        session.flash("Nothing changed.")
    else:
        saved = ", ".join(f"{k}={v}" for k, v in changes.items())
        later = f" (needs a daemon restart: {', '.join(needs_restart)})" if needs_restart else ""
        session.flash(f"Saved and applied: {saved}{later}.", "success")
    raise redirect("/cluster")
