"""What each service costs: SQL statements and transactions, event bytes, and (on demand)
the CPU time of the event loop spent on its behalf.

The counters are Prometheus metrics of the process (served with the others on
``IMARC_METRICS_PORT``); ``bench/submit_bench.py`` divides them by the instances it sent.

CPU time per service matters in embedded mode, where every service shares one event loop:
with ``IMARC_ACCOUNT_CPU=1`` each callback the loop runs is timed (thread CPU time) and
charged to the service named in the :data:`OWNER` context variable of the context it ran
in. Consumers, relays and requests set it; a task inherits it from where it was made.
That costs two clock reads per callback, so it is off unless asked for.
"""

from __future__ import annotations

import asyncio
import os
import time
from contextvars import ContextVar
from typing import Any

from prometheus_client import REGISTRY, Counter
from prometheus_client.core import CounterMetricFamily

from services.common.contracts import service_for_path

#: the service an event-loop callback works for (``-`` when none says)
OWNER: ContextVar[str] = ContextVar("imarc_owner", default="-")

SQL_STATEMENTS = Counter(
    "imarc_sql_statements_total", "SQL statements sent to a service's database", ["service"]
)
SQL_TRANSACTIONS = Counter(
    "imarc_sql_transactions_total", "Transactions committed in a service's database", ["service"]
)
EVENT_BYTES = Counter(
    "imarc_event_bytes_total", "Bytes of event JSON a service staged in its outbox", ["service"]
)
_installed = False


def cpu_accounting_requested() -> bool:
    return os.environ.get("IMARC_ACCOUNT_CPU", "") not in ("", "0", "false")


class _LoopCpu:
    """Exports the CPU time charged per service (kept in a plain dict: the callback timer
    runs for every callback and must cost next to nothing)."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    def collect(self) -> Any:
        family = CounterMetricFamily(
            "imarc_loop_cpu_seconds",
            "CPU time of event-loop callbacks, by the service they ran for (IMARC_ACCOUNT_CPU=1)",
            labels=["service"],
        )
        for service, seconds in sorted(self.spent.items()):
            family.add_metric([service], seconds)
        yield family


def install_loop_accounting() -> None:
    """Time every callback of asyncio's pure-Python loop and charge it to its OWNER."""
    global _installed
    if _installed:
        return
    _installed = True
    loop_cpu = _LoopCpu()
    REGISTRY.register(loop_cpu)
    spent = loop_cpu.spent
    original = asyncio.events.Handle._run
    clock = time.thread_time

    def _run(self: asyncio.events.Handle) -> None:
        start = clock()
        original(self)
        context = self._context  # type: ignore[attr-defined]
        owner = context.get(OWNER, "-") if context is not None else "-"
        spent[owner] = spent.get(owner, 0.0) + clock() - start

    asyncio.events.Handle._run = _run  # type: ignore[method-assign]


class OwnerMiddleware:
    """Charges a request's work to the service its path belongs to (pure ASGI)."""

    def __init__(self, app: Any, service: str | None = None) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            OWNER.set(self.service or service_for_path(scope["path"]) or "gateway")
        await self.app(scope, receive, send)
