"""`rearm alert test`: one test alert to each sink, straight from the CLI, with what happened.

It does not go through the daemon: an operator checks a receiver before the daemon runs, or while
it is down, and sees the receiver's own answer (HTTP status, SMTP reply) rather than a queue.
One attempt per sink, all sinks at once, each bounded by its own timeout.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from rearm.alerts.config import SinkConfig
from rearm.alerts.model import Alert, DeliveryError, make_test_alert


@dataclass(frozen=True)
class TestResult:
    __test__ = False  # not a pytest test class, despite the name

    name: str
    type: str
    ok: bool
    detail: str  # the receiver's answer, or why it failed
    seconds: float


async def send_test(
    sinks: Sequence[SinkConfig], cluster_name: str, server: str
) -> list[TestResult]:
    alert = make_test_alert(cluster_name, server)
    return list(await asyncio.gather(*(_one(sink, alert) for sink in sinks)))


async def _one(config: SinkConfig, alert: Alert) -> TestResult:
    start = time.monotonic()
    sink = config.create()
    ok, detail = False, ""
    try:
        async with asyncio.timeout(config.timeout):
            await sink.open()
            detail = await sink.send(alert)
        ok = True
    except DeliveryError as e:
        detail = str(e)
    except TimeoutError:
        detail = f"no answer within {config.timeout:g} s"
    except Exception as e:
        detail = f"{type(e).__name__}: {e}"
    finally:
        try:
            async with asyncio.timeout(2):
                await sink.close()
        except Exception as e:
            detail += f" (closing: {e})"
    return TestResult(config.name, config.type, ok, detail, time.monotonic() - start)
