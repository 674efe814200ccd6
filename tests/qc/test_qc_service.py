"""The qc service: stage counts, the curation index, review, publish (copy to public,
verify, emit series.published) and withdraw — its consumers and routes on the in-memory
bus (tests/download/test_integration.py runs publishing on PostgreSQL and S3)."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from services.common.events import Event, SeriesPublished, SeriesWithdrawn
from services.common.store import ObjectNotFound
from tests.harness import admin_headers, auth_header, mint
from tests.memory import InMemory, in_memory
from tests.qc.curation import Curated, collection_event, make_series, put_curated

STATUS = "/api/qc/collections/Demo-CT/status"
PUBLISH = "/api/qc/collections/Demo-CT/publish"
SERIES = "/api/qc/collections/Demo-CT/series"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def manager() -> dict[str, str]:
    return auth_header(mint("mia", coll={"Demo-CT": ["manager"]}))


def curator() -> dict[str, str]:
    return auth_header(mint("cora", coll={"Demo-CT": ["curator"]}))


@pytest.fixture
async def p(tmp_path: Path) -> AsyncIterator[InMemory]:
    async with in_memory(tmp_path, ["qc"]) as plat:
        await plat.publish(collection_event())
        yield plat


async def emitted(p: InMemory, type_: str) -> list[Event]:
    return [e for e in await p.emitted("qc") if e.type == type_]


async def status(p: InMemory, **expected: int) -> dict[str, Any]:
    """The collection's status, checked against ``expected``."""
    r = await p.client.get(STATUS, headers=admin_headers())
    assert r.status_code == 200, r.text
    got: dict[str, Any] = r.json()
    assert {k: got.get(k) for k in expected} == expected, got
    return got


async def curate(p: InMemory, items: list[Curated]) -> None:
    """Put instances into curation and deliver received + deidentified for each."""
    await put_curated(p.store, items)
    await p.publish(*(c.received() for c in items))
    await p.publish(*(c.deidentified() for c in items))


async def test_counts_are_per_distinct_instance_and_follow_the_latest_event(p: InMemory) -> None:
    a, b, c, d = make_series(4)
    await put_curated(p.store, [a, b, c, d])
    bad = Curated("f" * 32, "Demo-CT", a.ds, b"not dicom", "unused")
    await p.publish(
        a.received(T0),
        b.received(T0),
        c.received(T0),
        d.received(T0),
        a.received(T0 + timedelta(seconds=5)),  # re-sent: the same instance_id
        bad.held(stage="intake", reason="not a DICOM Part 10 file", at=T0),
    )
    await status(p, received=4, held=1, deidentified=0)

    await p.publish(
        a.deidentified(T0 + timedelta(seconds=6)),
        b.deidentified(T0 + timedelta(seconds=1)),
        c.held(at=T0 + timedelta(seconds=1)),
    )
    s = await status(p, held=2, deidentified=2)
    assert s == {
        "collection": "Demo-CT",
        "received": 4,
        "held": 2,
        "deidentified": 2,
        "awaiting_review": 2,
        "published": 0,
    }

    # a late, older event never moves an instance back: a's received at T0+5 is older
    # than its de-identification; d is de-identified before its received arrives
    await p.publish(
        a.received(T0 + timedelta(seconds=5)),
        d.deidentified(T0 + timedelta(seconds=3)),
    )
    await status(p, deidentified=3)
    # the held instance is released: received again, then de-identified
    await p.publish(c.received(T0 + timedelta(seconds=8)))
    await p.publish(c.deidentified(T0 + timedelta(seconds=9)))
    s = await status(p, held=1, deidentified=4)
    assert s["received"] == 4 and s["awaiting_review"] == 4


async def test_status_is_for_the_collection_staff(p: InMemory) -> None:
    await p.publish(make_series(1)[0].received())
    await status(p, received=1)
    assert (await p.client.get(STATUS)).status_code == 401
    r = await p.client.get(STATUS, headers=auth_header(mint("eve", roles=["user"])))
    assert r.status_code == 403 and "ask a manager" in r.json()["detail"]
    other = auth_header(mint("sam", coll={"Other": ["submitter"]}))
    assert (await p.client.get(STATUS, headers=other)).status_code == 403
    sub = auth_header(mint("sam", coll={"Demo-CT": ["submitter"]}, sites=["site-1"]))
    r = await p.client.get(STATUS, headers=sub)
    assert r.status_code == 200 and r.json()["received"] == 1
    r = await p.client.get("/api/qc/collections/Nope/status", headers=admin_headers())
    assert r.status_code == 404 and "Nope" in r.json()["detail"]


async def test_publish_copies_verified_objects_and_emits_once_per_series(p: InMemory) -> None:
    one = make_series(3)
    two = make_series(2, patient="DEMO-CT-0002")
    await curate(p, one + two)
    await status(p, awaiting_review=5)

    series = (await p.client.get(SERIES, headers=curator())).json()
    assert {
        s["series_instance_uid"]: (s["review_state"], s["instances"], s["modality"]) for s in series
    } == {one[0].series: ("Not Reviewed", 3, "CT"), two[0].series: ("Not Reviewed", 2, "CT")}
    assert {s["patient_id"] for s in series} == {"DEMO-CT-0001", "DEMO-CT-0002"}

    r = await p.client.post(PUBLISH, headers=manager(), json={})
    assert r.status_code == 200, r.text
    assert sorted(r.json()["published"]) == sorted([one[0].series, two[0].series])
    assert r.json()["instances"] == 5

    for c in one + two:
        public = await p.store.get("public", c.key)
        assert hashlib.sha256(public).hexdigest() == c.sha256 == hashlib.sha256(c.data).hexdigest()
    ev = {e.subject: e.payload(SeriesPublished) for e in await emitted(p, SeriesPublished.TYPE)}
    assert len(ev) == 2
    sp = ev[one[0].series]
    assert sp.collection.name == "Demo-CT" and sp.collection.licence.name == "CC BY 4.0"
    assert sp.patient_id == "DEMO-CT-0001" and sp.study_instance_uid == one[0].ds.StudyInstanceUID
    assert {(i.sop_instance_uid, i.key, i.size, i.sha256) for i in sp.instances} == {
        (c.sop, c.key, len(c.data), c.sha256) for c in one
    }
    assert all(i.header["00200013"]["Value"] for i in sp.instances)
    s = await status(p, published=5)
    assert s["awaiting_review"] == 0 and s["deidentified"] == 5

    # nothing new awaits: a second publish does nothing and emits nothing
    r = await p.client.post(PUBLISH, headers=manager())
    assert r.json() == {"published": [], "instances": 0}
    assert len(await emitted(p, SeriesPublished.TYPE)) == 2
    series = (await p.client.get(SERIES, headers=curator())).json()
    assert {s["review_state"] for s in series} == {"Visible"}


async def test_new_instances_republish_the_whole_series(p: InMemory) -> None:
    items = make_series(4)
    await curate(p, items[:3])
    await status(p, awaiting_review=3)
    assert (await p.client.post(PUBLISH, headers=manager())).json()["instances"] == 3
    await curate(p, items[3:])
    await status(p, awaiting_review=1, published=3)
    r = await p.client.post(PUBLISH, headers=manager(), json={"series": [items[0].series]})
    assert r.json() == {"published": [items[0].series], "instances": 4}
    publications = await emitted(p, SeriesPublished.TYPE)
    assert len(publications) == 2
    last = publications[-1].payload(SeriesPublished)
    assert len(last.instances) == 4
    await status(p, published=4, awaiting_review=0)


async def test_publish_refusals_are_clear(p: InMemory) -> None:
    mine, foreign = make_series(1), make_series(1, collection="Other")
    await p.publish(collection_event("Other"))
    await curate(p, mine + foreign)
    await status(p, awaiting_review=1)

    r = await p.client.post(PUBLISH, headers=curator())
    assert r.status_code == 403
    for uid in ("1.2.3.4", foreign[0].series):
        r = await p.client.post(PUBLISH, headers=manager(), json={"series": [uid]})
        assert r.status_code == 404
        assert r.json()["detail"].startswith(f"series {uid} is not in curation for collection")

    r = await p.client.put(
        f"/api/qc/series/{mine[0].series}/review", headers=curator(), json={"state": "Rejected"}
    )
    assert r.status_code == 200 and r.json()["review_state"] == "Not Visible"
    assert r.json()["reviewed_by"] == "cora"
    r = await p.client.post(PUBLISH, headers=manager(), json={"series": [mine[0].series]})
    assert r.status_code == 409 and "'Visible'" in r.json()["detail"]
    r = await p.client.post(PUBLISH, headers=manager())
    assert r.json() == {"published": [], "instances": 0}  # rejected series are left out


async def test_review_needs_a_curator_of_the_collection(p: InMemory) -> None:
    items = make_series(1)
    await curate(p, items)
    await status(p, awaiting_review=1)
    url = f"/api/qc/series/{items[0].series}/review"
    r = await p.client.put(url, headers=curator(), json={"state": "sometimes"})
    assert r.status_code == 422 and "'To Be Deleted'" in r.json()["detail"]
    outsider = auth_header(mint("oz", coll={"Other": ["curator"]}))
    r = await p.client.put(url, headers=outsider, json={"state": "Visible"})
    assert r.status_code == 404
    assert (await p.client.get(SERIES, headers=outsider)).status_code == 403
    r = await p.client.put(
        "/api/qc/series/1.2.3/review", headers=curator(), json={"state": "Visible"}
    )
    assert r.status_code == 404 and "1.2.3" in r.json()["detail"]
    r = await p.client.put(url, headers=curator(), json={"state": "approved"})
    assert r.json()["review_state"] == "Visible"


async def test_a_curation_object_that_changed_is_not_published(p: InMemory) -> None:
    items = make_series(2)
    await curate(p, items)
    await status(p, awaiting_review=2)
    await p.store.put("curation", items[1].key, items[1].data + b"\0")
    r = await p.client.post(PUBLISH, headers=manager())
    assert r.status_code == 409 and "try again" in r.json()["detail"]
    await status(p, published=0, awaiting_review=2)
    assert await emitted(p, SeriesPublished.TYPE) == []


async def test_withdraw_removes_public_objects_and_tells_others(p: InMemory) -> None:
    items = make_series(2)
    await curate(p, items)
    await status(p, awaiting_review=2)
    await p.client.post(PUBLISH, headers=manager())
    url = f"/api/qc/series/{items[0].series}/withdraw"
    assert (await p.client.post(url, headers=curator())).status_code == 404
    r = await p.client.post(url, headers=manager(), json={"reason": "consent withdrawn"})
    assert r.json() == {"withdrawn": items[0].series, "deleted": 2}
    for c in items:
        with pytest.raises(ObjectNotFound):
            await p.store.get("public", c.key)
    (withdrawal,) = await emitted(p, SeriesWithdrawn.TYPE)
    w = withdrawal.payload(SeriesWithdrawn)
    assert (w.collection, w.reason) == ("Demo-CT", "consent withdrawn")
    await status(p, published=0, deidentified=2)
    series = (await p.client.get(SERIES, headers=curator())).json()
    assert series[0]["review_state"] == "Not Visible"
    r = await p.client.post(url, headers=manager())
    assert r.status_code == 409 and "not published" in r.json()["detail"]
    # a withdrawn (Not Visible) series is not taken by a publish of everything
    assert (await p.client.post(PUBLISH, headers=manager())).json()["published"] == []


async def test_a_resent_instance_awaits_review_only_if_it_changed(p: InMemory) -> None:
    items = make_series(2)
    await curate(p, items)
    await status(p, awaiting_review=2)
    await p.client.post(PUBLISH, headers=manager())
    await status(p, published=2)
    later = datetime.now(UTC) + timedelta(seconds=1)
    # the same bytes again (deid re-emitted, or an identical re-send): still published
    await p.publish(items[0].deidentified(later))
    await status(p, published=2, awaiting_review=0)
    # changed content: back to awaiting review until published again
    items[1].data += b"\0\0"
    await put_curated(p.store, items[1:])
    await p.publish(items[1].deidentified(later))
    await status(p, published=1, awaiting_review=1, deidentified=2)
    r = await p.client.post(PUBLISH, headers=manager())
    assert r.json() == {"published": [items[0].series], "instances": 2}
    assert await p.store.get("public", items[1].key) == items[1].data
