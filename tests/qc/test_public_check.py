"""After a publish, a manager sees whether the public catalog holds exactly what curation
released: patients, studies, series and images on both sides, from the catalog's own
account of each series it indexed (series.indexed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.common.events import SeriesIndexed
from tests.harness import auth_header, mint
from tests.memory import InMemory, in_memory
from tests.qc.curation import collection_event, make_series, put_curated

C = "Demo-CT"
MANAGER = auth_header(mint("mia", coll={C: ["manager"]}))


@pytest.fixture
async def p(tmp_path: Path) -> AsyncIterator[InMemory]:
    async with in_memory(tmp_path, ["qc", "catalog"]) as plat:
        await plat.publish(collection_event(C))
        yield plat


async def glance(p: InMemory) -> dict:
    rows = (await p.client.get("/api/qc/collections", headers=MANAGER)).json()
    return next(r for r in rows if r["collection"] == C)


async def publish_two_series(p: InMemory) -> list[str]:
    items = make_series(3) + make_series(2, patient="DEMO-CT-0002")
    await put_curated(p.store, items)
    await p.publish(*(c.received(at=datetime(2026, 1, 1, tzinfo=UTC)) for c in items))
    await p.publish(*(c.deidentified() for c in items))
    r = await p.client.post(f"/api/qc/collections/{C}/publish", json={}, headers=MANAGER)
    assert r.status_code == 200, r.text
    await p.settle()  # the catalog indexes, then reports back to qc
    return sorted({c.series for c in items})


async def test_what_was_published_is_what_the_public_catalog_holds(p: InMemory) -> None:
    await publish_two_series(p)
    row = await glance(p)
    both = {"patients": 2, "studies": 2, "series": 2, "instances": 5}
    assert row["published_counts"] == both
    assert row["public"] == both
    assert row["public_check"] == {"state": "match", "pending_series": 0, "mismatched_series": []}
    series = (
        await p.client.get("/nbia-api/services/v4/getSeries", params={"Collection": C})
    ).json()
    assert sum(int(s["ImageCount"]) for s in series) == 5


async def test_a_series_the_catalog_holds_differently_is_shown_as_a_mismatch(p: InMemory) -> None:
    uids = await publish_two_series(p)
    indexed = [e for e in await p.emitted("catalog") if e.type == SeriesIndexed.TYPE]
    assert sorted(e.payload(SeriesIndexed).series_instance_uid for e in indexed) == uids
    # the catalog re-indexes one series with an image fewer (a later account of the same
    # publication): the manager must see that series named
    first = indexed[0].payload(SeriesIndexed)
    short = first.model_copy(update={"instances": first.instances - 1})
    await p.publish(short.event("/site-a/catalog", subject=first.series_instance_uid))
    row = await glance(p)
    assert row["public_check"]["state"] == "mismatch"
    assert row["public_check"]["mismatched_series"] == [first.series_instance_uid]
    assert row["public"]["instances"] == row["published_counts"]["instances"] - 1


async def test_an_account_of_an_earlier_publication_changes_nothing(p: InMemory) -> None:
    await publish_two_series(p)
    indexed = next(e for e in await p.emitted("catalog") if e.type == SeriesIndexed.TYPE)
    older = indexed.payload(SeriesIndexed)
    stale = older.model_copy(
        update={"instances": 0, "released_at": datetime(2020, 1, 1, tzinfo=UTC)}
    )
    await p.publish(stale.event("/site-a/catalog"))
    assert (await glance(p))["public_check"]["state"] == "match"
