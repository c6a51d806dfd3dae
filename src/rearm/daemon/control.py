"""The control API's operations: requests in, calls on the daemon's parts, plain data out.

Requests from the arm commands arrive already parsed by rearm.arm on the client side; they are
parsed again here from their dict form, so a hand-made request meets the same rules.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from rearm.api.access import Caller
from rearm.api.server import ApiError
from rearm.arm import ArmUsageError, parse_armload
from rearm.model import KillRequest, LoadRequest, request_from_dict
from rearm.store import iso8601
from rearm.validate import environment_problem
from rearm.web import eventlog

if TYPE_CHECKING:
    from rearm.daemon.main import Daemon

FOLLOW_PAGE = 500


def _int_arg(args: dict[str, Any], key: str, default: int, low: int, high: int) -> int:
    value = args.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ApiError(f"'{key}' must be a whole number from {low} to {high}")
    return value


def _str_arg(args: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    value = args.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ApiError(f"'{key}' must be a non-empty string")
    return value


def _load_request(args: dict[str, Any]) -> LoadRequest:
    """Re-check a transmitted armload request with the parser's own rules."""
    raw = args.get("request")
    if not isinstance(raw, dict):
        raise ApiError("'request' is missing")
    try:
        req = request_from_dict(raw)
        argv = [req.watch_id]
        if req.service is not None:
            argv.append("/S")
        if req.adopt:
            argv.append("/A")
        p = req.policy
        for option, value in (("/R", p.retry), ("/H", p.hours), ("/WAIT", req.wait)):
            if value is not None:
                argv += [option, str(value)]
        if p.retry is not None:
            argv += ["/INT", str(p.interval)]
        if p.script:
            argv.append("/SCR")
        if req.user is not None:
            argv += ["/U", req.user]
        argv += [req.service] if req.service is not None else list(req.argv or ())
        checked = parse_armload(argv)
    except (ArmUsageError, KeyError, TypeError, ValueError) as e:
        raise ApiError(str(e)) from None
    if checked.argv is not None and not checked.argv[0].startswith("/"):
        raise ApiError(f"'{checked.argv[0]}': the program must be an absolute path")
    return checked


class Control:
    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def register(self) -> None:
        server = self.daemon.server
        for op in (
            "ping",
            "status",
            "armload",
            "armkill",
            "restart",
            "reboots",
            "reboots_clear",
            "reload",
            "group_start",
            "group_stop",
            "shutdown",
            "events",
        ):
            server.register(op, getattr(self, "op_" + op))
        server.register_stream("follow", self.follow)

    async def op_ping(self, args: dict[str, Any], caller: Caller) -> Any:
        return {"pid": self.daemon.pid, "version": self.daemon.version}

    async def op_status(self, args: dict[str, Any], caller: Caller) -> Any:
        return self.daemon.status()

    async def op_armload(self, args: dict[str, Any], caller: Caller) -> Any:
        req = _load_request(args)
        group = _str_arg(args, "group", required=False)
        event = _str_arg(args, "event", required=False)
        env = args.get("env") or {}
        if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise ApiError("'env' must map names to strings")
        problem = environment_problem(env)
        if problem is not None:
            raise ApiError(f"'env': {problem}")
        if group is not None and group not in self.daemon.groups.states:
            raise ApiError(f"no group named '{group}' (REARM_GROUP names an unknown group)")
        return await self.daemon.supervisor.load(req, group, event, env)

    async def op_armkill(self, args: dict[str, Any], caller: Caller) -> Any:
        watch_id = _str_arg(args, "watch_id")
        assert watch_id is not None
        req = KillRequest(
            watch_id=watch_id,
            keep_running=bool(args.get("keep_running")),
            timeout=_int_arg(args, "timeout", 40, 0, 3600),
        )
        return await self.daemon.supervisor.kill(req)

    async def op_restart(self, args: dict[str, Any], caller: Caller) -> Any:
        """`rearm restart WATCHID`: stop the target and start it again, counting no fault."""
        watch_id = _str_arg(args, "watch_id")
        assert watch_id is not None
        timeout = _int_arg(args, "timeout", 40, 0, 3600)
        self.daemon.bus.emit(
            "operator_restart",
            f"restart of {watch_id} asked on the control socket (uid {caller.uid})",
            watch=watch_id,
            data={"uid": caller.uid},
        )
        return await self.daemon.supervisor.restart(watch_id, timeout)

    async def op_reboots(self, args: dict[str, Any], caller: Caller) -> Any:
        """`rearm reboots`: the reboot-loop counter and each reboot with its cause."""
        actions, cluster = self.daemon.actions, self.daemon.cluster
        return {
            **actions.reboot_summary(cluster),
            "reboots": [{**r, "ts": iso8601(r["wall"])} for r in actions.reboot_list(cluster)],
        }

    async def op_reboots_clear(self, args: dict[str, Any], caller: Caller) -> Any:
        return self.daemon.actions.clear_reboots(f"uid {caller.uid} on the control socket")

    async def op_reload(self, args: dict[str, Any], caller: Caller) -> Any:
        return self.daemon.reload()

    async def op_group_start(self, args: dict[str, Any], caller: Caller) -> Any:
        name = _str_arg(args, "group")
        assert name is not None
        return await self.daemon.groups.start(name)

    async def op_group_stop(self, args: dict[str, Any], caller: Caller) -> Any:
        name = _str_arg(args, "group")
        assert name is not None
        return await self.daemon.groups.stop(name)

    async def op_shutdown(self, args: dict[str, Any], caller: Caller) -> Any:
        stop_groups = bool(args.get("stop_groups"))
        asyncio.get_running_loop().call_soon(self.daemon.request_exit, stop_groups, True)
        return {
            "message": "the daemon is stopping"
            + (" after taking every group offline" if stop_groups else "")
        }

    async def op_events(self, args: dict[str, Any], caller: Caller) -> Any:
        """The newest `limit` events (oldest first) matching the filters, as `rearm log`."""
        for key in ("since", "until"):
            value = args.get(key)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float)
            ):
                raise ApiError(f"'{key}' must be a time in seconds since the epoch")
        chosen = eventlog.EventFilter(
            kind=_str_arg(args, "kind", required=False) or "",
            group=_str_arg(args, "group", required=False) or "",
            watch=_str_arg(args, "watch", required=False) or "",
            since=args.get("since"),
            until=args.get("until"),
            limit=_int_arg(args, "limit", 1000, 1, 1_000_000),
        )
        return [e.as_json() for e in reversed(eventlog.query(self.daemon.store.db, chosen))]

    async def follow(self, args: dict[str, Any], caller: Caller) -> AsyncIterator[Any]:
        """Past events (from `since`, or the last `limit`), then each new one as it happens."""
        bus = self.daemon.bus
        store = self.daemon.store
        sub = bus.subscribe()  # before reading the past, so nothing falls in between
        try:
            since = args.get("since")
            limit = args.get("limit", 20)
            last = 0
            # The past is read a page at a time, each page whole: no statement stays open
            # while a slow client takes it (that would hold off every WAL checkpoint).
            if not isinstance(since, int | float):
                since = None
                count = limit if isinstance(limit, int) and limit >= 0 else 20
                last = store.id_before_last(count)
            while page := store.events_page(last, since, FOLLOW_PAGE):
                for event in page:
                    last = event.id
                    yield event.as_json()
            while True:
                event = await sub.queue.get()
                if event.id > last:
                    yield event.as_json()
        finally:
            bus.unsubscribe(sub)


def now_iso() -> str:
    return iso8601(time.time())
