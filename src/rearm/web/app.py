"""The application the daemon serves on the management address: the Manager and /metrics.

GET  /login, POST /login, POST /logout
GET  /                                  the tree (cluster, server, groups, watches), live
POST /groups                            create a group
GET  /groups/NAME                       a group: state, watches, last faults, live
POST /groups/NAME/start|stop            (stop asks for confirmation)
POST /groups/NAME/watches/ID/drill      SIGKILL the watch's process (confirmed)
GET  /groups/NAME/scripts/start|stop    view, and edit while the group is offline
POST /groups/NAME/scripts/start|stop    save
POST /groups/NAME/template              import a script template (confirmed)
GET  /events                            the event log with filters, live
GET  /cluster, POST /cluster            properties and final action (drastic ones confirmed)
GET  /licenses, POST /licenses          registered licenses, register one
GET  /live?view=...                     server-sent events for the pages above
GET  /api/status                        `rearm status --json`, for a logged-in client
GET  /metrics                           Prometheus, without login (see metrics.py)
GET  /static/...                        the style sheet and the one script
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from rearm.web import guard
from rearm.web.context import MANAGER, Manager
from rearm.web.live import live
from rearm.web.metrics import metrics_app, metrics_handler
from rearm.web.pages import cluster, events, group, licenses, login, scripts, tree
from rearm.web.render import STATIC
from rearm.web.settings import ManagerSettings

if TYPE_CHECKING:
    from rearm.daemon.main import Daemon

# Form posts hold at most a script (256 KiB) and a few fields.
MAX_BODY = 512 * 1024


async def _favicon(request: web.Request) -> web.StreamResponse:
    raise web.HTTPMovedPermanently("/static/favicon.svg")


def manager_app(daemon: Daemon, settings: ManagerSettings | None) -> web.Application:
    """The Manager with /metrics; with `settings` None (disabled), /metrics alone."""
    if settings is None or not settings.enabled:
        return metrics_app(daemon.status, daemon.alerts, daemon.event_counts)
    app = web.Application(middlewares=guard.MIDDLEWARES, client_max_size=MAX_BODY)
    manager = Manager(daemon, settings)
    app[MANAGER] = manager
    for module in (login, tree, group, scripts, events, cluster, licenses):
        app.router.add_routes(module.routes)
    app.router.add_get("/live", live)
    app.router.add_get("/favicon.ico", _favicon)
    app.router.add_static("/static/", STATIC, follow_symlinks=False)
    app.router.add_get(
        "/metrics", metrics_handler(daemon.status, daemon.alerts, daemon.event_counts)
    )
    app.on_response_prepare.append(guard.add_headers)

    async def close_streams(app: web.Application) -> None:
        manager.closing.set()

    app.on_shutdown.append(close_streams)
    return app
