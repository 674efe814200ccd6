"""The monthly usage figures: series downloads and bytes by collection and month,
distinct downloading users by month — through the API and `imarc report usage`; the
download metrics never name a limited collection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
import pytest_asyncio
from prometheus_client import generate_latest
from sqlalchemy import update
from typer.testing import CliRunner

from imarc.cli import app
from services.download.models import DownloadRecord
from tests.download.test_download_service import publish
from tests.harness import admin_headers, auth_header, mint
from tests.memory import InMemory, in_memory, over_http
from tests.qc.curation import collection_event, make_series

pytestmark = pytest.mark.asyncio(loop_scope="module")
V4 = "/nbia-api/services/v4"
THIS_MONTH = datetime.now(UTC).strftime("%Y-%m")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def p(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InMemory]:
    async with in_memory(tmp_path_factory.mktemp("usage"), ["qc", "download"]) as plat:
        await plat.publish(collection_event("Open-A"), collection_event("Shut-B", access="limited"))
        yield plat


async def test_downloads_by_collection_and_month_and_users_by_month(p: InMemory) -> None:
    a, b = make_series(3, collection="Open-A"), make_series(2, collection="Shut-B")
    await publish(p, a, collection="Open-A")
    await publish(p, b, collection="Shut-B")
    ann, bob = (auth_header(mint(n, roles=["user"])) for n in ("ann", "bob"))
    for headers in (ann, bob, ann, {}):  # two users, one twice, and one anonymous download
        r = await p.client.get(f"{V4}/getImage", params={"SeriesInstanceUID": a[0].series},
                               headers=headers)  # fmt: skip
        assert r.status_code == 200
    one = {"SeriesInstanceUID": a[0].series, "SOPInstanceUID": a[1].sop}
    r = await p.client.get(f"{V4}/getSingleImage", headers=ann, params=one)
    assert r.status_code == 200
    r = await p.client.get(f"{V4}/getImage", params={"SeriesInstanceUID": b[0].series},
                           headers=admin_headers())  # fmt: skip
    assert r.status_code == 200
    # an older download, in another month, must be counted in that month only
    async with p.contexts["download"].db.session() as s, s.begin():
        await s.execute(
            update(DownloadRecord)
            .where(DownloadRecord.subject == "bob")
            .values(at=datetime(2026, 2, 14, 12, tzinfo=UTC))
        )

    r = await p.client.get("/api/download/usage", params={"since": "2026-01"},
                           headers=admin_headers())  # fmt: skip
    assert r.status_code == 200, r.text
    usage = r.json()
    size_a, size_b = sum(len(i.data) for i in a), sum(len(i.data) for i in b)
    assert usage["since"] == "2026-01" and usage["until"] == THIS_MONTH
    rows = {(c["collection"], c["month"]): c for c in usage["collections"]}
    feb = rows[("Open-A", "2026-02")]
    assert (feb["series_downloads"], feb["image_downloads"], feb["bytes"]) == (1, 0, size_a)
    now = rows[("Open-A", THIS_MONTH)]
    assert (now["series_downloads"], now["image_downloads"]) == (3, 1)
    assert now["bytes"] == 3 * size_a + len(a[1].data)
    assert rows[("Shut-B", THIS_MONTH)]["bytes"] == size_b
    users = {u["month"]: u for u in usage["users"]}
    assert users["2026-02"] == {"month": "2026-02", "users": 1, "anonymous_downloads": 0}
    # ann and the admin logged in; one download had no login
    assert (users[THIS_MONTH]["users"], users[THIS_MONTH]["anonymous_downloads"]) == (2, 1)

    # a manager of Open-A sees its rows only, and no user counts
    mine = auth_header(mint("mia", coll={"Open-A": ["manager"]}))
    r = await p.client.get("/api/download/usage", params={"since": "2026-01"}, headers=mine)
    assert {c["collection"] for c in r.json()["collections"]} == {"Open-A"}
    assert r.json()["users"] == []
    # everyone else: refused, with what would allow it
    r = await p.client.get("/api/download/usage", headers=ann)
    assert r.status_code == 403 and "admins" in r.json()["detail"]

    # the metrics count the limited collection's downloads without naming it
    text = generate_latest().decode()
    for line in text.splitlines():
        if line.startswith(("imarc_download", "imarc_series_published")):
            assert "Shut-B" not in line, line
    assert 'imarc_download_bytes_total{collection="limited"}' in text


async def test_months_are_checked(p: InMemory) -> None:
    for params in ({"since": "2026-13"}, {"until": "26-01"}):
        r = await p.client.get("/api/download/usage", params=params, headers=admin_headers())
        assert r.status_code == 422
    r = await p.client.get("/api/download/usage", params={"since": "2026-05", "until": "2026-03"},
                           headers=admin_headers())  # fmt: skip
    assert r.status_code == 422 and "since (2026-05) is after until (2026-03)" in r.text


async def test_imarc_report_usage_prints_the_figures(p: InMemory) -> None:
    a = make_series(2, collection="Open-A")
    await publish(p, a, collection="Open-A")
    r = await p.client.get(f"{V4}/getImage", params={"SeriesInstanceUID": a[0].series})
    assert r.status_code == 200
    async with over_http(p.app) as url:
        argv = ["--url", url, "--token", mint("root", roles=["admin"]), "report", "usage",
                "--since", THIS_MONTH]  # fmt: skip
        env = {"XDG_CONFIG_HOME": "/nonexistent", "IMARC_TOKEN": "", "COLUMNS": "200"}
        result = await asyncio.to_thread(CliRunner().invoke, app, argv, env=env)
    assert result.exit_code == 0, result.output
    assert f"Downloads, {THIS_MONTH} to {THIS_MONTH}" in result.output
    assert "Open-A" in result.output and "Downloading users" in result.output
