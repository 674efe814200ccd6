"""Prometheus metrics shared by every service (one registry per process)."""

from __future__ import annotations

import time
from collections.abc import MutableMapping
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    start_http_server,
)
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common.contracts import service_for_path

HTTP_REQUESTS = Counter(
    "imarc_http_requests_total", "HTTP requests served", ["service", "route", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "imarc_http_request_duration_seconds",
    "HTTP request latency (to the first byte of the response)",
    ["service", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
EVENTS_CONSUMED = Counter(
    "imarc_events_consumed_total", "Events handled by a consumer", ["queue", "outcome"]
)
EVENTS_PUBLISHED = Counter(
    "imarc_events_published_total", "Events relayed from an outbox", ["service"]
)
OUTBOX_PENDING = Gauge("imarc_outbox_pending", "Events in an outbox not yet published", ["service"])
INSTANCES_RECEIVED = Counter(
    "imarc_instances_received_total", "Instances accepted into quarantine", ["collection"]
)
INSTANCES_HELD = Counter("imarc_instances_held_total", "Instances held", ["stage", "reason"])
INSTANCES_DEIDENTIFIED = Counter(
    "imarc_instances_deidentified_total", "Instances de-identified", ["collection"]
)
DEID_SECONDS = Histogram(
    "imarc_deid_seconds",
    "De-identification time per instance",
    buckets=(0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
SERIES_PUBLISHED = Counter("imarc_series_published_total", "Series published", ["collection"])
DOWNLOADS = Counter("imarc_downloads_total", "Downloads served", ["collection", "kind"])
DOWNLOAD_BYTES = Counter("imarc_download_bytes_total", "Bytes of DICOM served", ["collection"])


def collection_label(name: str, access: str) -> str:
    """A collection as a metric label: its name when public; a limited collection's name
    is not for everyone who can read the metrics, so it is counted as ``limited``."""
    return name if access == "public" else "limited"


def metrics_response() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


def start_metrics_server(port: int, host: str = "127.0.0.1") -> WSGIServer:
    """Serve this process's metrics on a port of their own (``IMARC_METRICS_PORT``).

    They are never served on the public port: only what may reach this port (Prometheus,
    through the chart's NetworkPolicy) reads them.
    """
    server, _ = start_http_server(port, addr=host)
    return server


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


def route_label(scope: Scope) -> str:
    """The template of the route that answered (``/api/catalog/series/{uid}``), or
    ``unmatched`` — never the requested path, which holds ids, user and collection names.

    Read after routing: the router records the route it chose in the scope.
    """
    route = scope.get("route")
    template = getattr(route, "path_format", None)
    if not isinstance(template, str):
        return UNMATCHED
    regex = getattr(route, "path_regex", None)
    path = scope.get("path", "")
    root = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    if regex is not None and regex.fullmatch(path):
        return template
    # an included router's prefix is not part of the route's own template: keep the
    # template without it rather than any part of the requested path
    return "…" + template


class HttpMetrics:
    """Pure ASGI middleware (does not buffer streamed responses)."""

    def __init__(self, app: ASGIApp, service: str | None = None) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        service = self.service or service_for_path(scope["path"]) or "gateway"
        method = scope["method"] if scope["method"] in METHODS else "other"

        async def send_wrapper(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                HTTP_LATENCY.labels(service, route_label(scope)).observe(
                    time.perf_counter() - start
                )
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            HTTP_REQUESTS.labels(service, route_label(scope), method, str(status)).inc()
