"""Metrics say which route answered, never what was asked for: no path, id, user or
collection name in a label, a fixed number of series however many distinct requests come,
and they are served only on their own port."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from imarc.stack import free_port
from services.common.metrics import start_metrics_server
from tests.harness import Platform, platform

in_module_loop = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def everything(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Platform]:
    async with platform(tmp_path_factory.mktemp("metrics")) as p:
        yield p


async def admin_token(p: Platform) -> dict[str, str]:
    resp = await p.client.post(
        "/api/auth/token",
        data={"grant_type": "password", "username": "admin", "password": "admin-test-password"},
    )
    assert resp.status_code == 200, resp.text
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def paths(secret: str) -> list[str]:
    """Requests naming ``secret`` as a series, collection, user, instance or a stray path."""
    return [
        f"/api/catalog/series/1.2.826.0.1.{secret}",
        f"/api/intake/collections/{secret}",
        f"/api/qc/collections/{secret}/status",
        f"/api/auth/users/{secret}",
        f"/api/deid/instances/{secret}/audit",
        f"/nbia-api/services/v4/getSeries?Collection={secret}",
        f"/{secret}/etc/passwd",
        f"/api/intake/{secret}",
    ]


def series_of(text: str, name: str) -> set[str]:
    return {line.rsplit(" ", 1)[0] for line in text.splitlines() if line.startswith(name + "{")}


async def send_round(p: Platform, secrets: list[str], headers: dict[str, str]) -> None:
    for secret in secrets:
        for path in paths(secret):
            await p.client.get(path)
            await p.client.get(path, headers=headers)
        await p.client.request(f"X{secret[:8].upper()}", f"/api/intake/collections/{secret}")


@in_module_loop
async def test_distinct_paths_and_ids_add_no_series_and_appear_nowhere(
    everything: Platform,
) -> None:
    headers = await admin_token(everything)
    first = [f"s{uuid.uuid4().hex[:12]}" for _ in range(15)]
    second = [f"s{uuid.uuid4().hex[:12]}" for _ in range(15)]

    await send_round(everything, first, headers)
    text = everything.metrics()
    counted = series_of(text, "imarc_http_requests_total")
    timed = series_of(text, "imarc_http_request_duration_seconds_count")
    assert 'route="/api/catalog/series/{uid}"' in "".join(counted)
    assert 'route="unmatched"' in "".join(counted)

    await send_round(everything, second, headers)
    text = everything.metrics()
    assert series_of(text, "imarc_http_requests_total") == counted
    assert series_of(text, "imarc_http_request_duration_seconds_count") == timed
    leaked = [s for s in first + second if s in text or s[:8].upper() in text]
    assert leaked == [], "a requested id, name or method reached the metrics"


@in_module_loop
async def test_metrics_are_not_served_on_the_public_port(everything: Platform) -> None:
    assert (await everything.client.get("/metrics")).status_code == 404
    openapi = (await everything.client.get("/openapi.json")).json()
    assert "/metrics" not in openapi["paths"]


def test_metrics_are_served_on_their_own_port() -> None:
    port = free_port()
    server = start_metrics_server(port)
    try:
        resp = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert resp.status_code == 200
    assert "imarc_http_requests_total" in resp.text
