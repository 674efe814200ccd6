"""The qc service in a running platform: stage counts, the curation index, review,
publish (copy to public, verify, emit series.published) and withdraw."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from services.common.events import Event, SeriesPublished, SeriesWithdrawn
from services.common.store import ObjectNotFound
from services.qc.models import outbox
from tests.harness import Platform, admin_headers, auth_header, mint, platform
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
async def p(tmp_path: Path) -> AsyncIterator[Platform]:
    async with platform(tmp_path, services=["qc"]) as plat:
        await plat.runtime.bus.publish([collection_event()])
        yield plat


class Collector:
    def __init__(self) -> None:
        self.events: list[Event] = []

    async def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of(self, type_: str) -> list[Event]:
        return [e for e in self.events if e.type == type_]


@pytest.fixture
async def emitted(p: Platform) -> Collector:
    c = Collector()
    await p.runtime.bus.subscribe("test.qc-events", [SeriesPublished.TYPE, SeriesWithdrawn.TYPE], c)
    return c


QUEUES = (
    "qc.on_collection_updated",
    "qc.on_instance_received",
    "qc.on_instance_held",
    "qc.on_instance_deidentified",
)


async def wait_status(p: Platform, **expected: int) -> dict[str, Any]:
    """Wait until every delivered event has been handled and the status shows ``expected``."""
    last: dict[str, Any] = {}

    async def check() -> bool:
        nonlocal last
        for q in QUEUES:
            if await p.runtime.bus.depth(q):
                return False
        r = await p.client.get(STATUS, headers=admin_headers())
        last = r.json() if r.status_code == 200 else {"status": r.status_code}
        return all(last.get(k) == v for k, v in expected.items())

    try:
        await p.wait_until(check, 10, what=f"status {expected}")
    except AssertionError as e:
        raise AssertionError(f"{e}; last status {last}") from None
    return last


async def curate(p: Platform, items: list[Curated]) -> None:
    """Put instances into curation and deliver received + deidentified for each."""
    await put_curated(p.runtime.store, items)
    await p.runtime.bus.publish([c.received() for c in items])
    await p.runtime.bus.publish([c.deidentified() for c in items])


async def published_in_outbox(p: Platform) -> int:
    async with p.runtime.contexts["qc"].db.session() as s:
        return int(
            await s.scalar(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.type == SeriesPublished.TYPE)
            )
            or 0
        )


async def test_counts_are_per_distinct_instance_and_follow_the_latest_event(p: Platform) -> None:
    a, b, c, d = make_series(4)
    await put_curated(p.runtime.store, [a, b, c, d])
    bad = Curated("f" * 32, "Demo-CT", a.ds, b"not dicom", "unused")
    await p.runtime.bus.publish(
        [
            a.received(T0),
            b.received(T0),
            c.received(T0),
            d.received(T0),
            a.received(T0 + timedelta(seconds=5)),  # re-sent: the same instance_id
            bad.held(stage="intake", reason="not a DICOM Part 10 file", at=T0),
        ]
    )
    await wait_status(p, received=4, held=1, deidentified=0)

    await p.runtime.bus.publish(
        [
            a.deidentified(T0 + timedelta(seconds=6)),
            b.deidentified(T0 + timedelta(seconds=1)),
            c.held(at=T0 + timedelta(seconds=1)),
        ]
    )
    s = await wait_status(p, held=2, deidentified=2)
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
    await p.runtime.bus.publish(
        [
            a.received(T0 + timedelta(seconds=5)),
            d.deidentified(T0 + timedelta(seconds=3)),
        ]
    )
    await wait_status(p, deidentified=3)
    # the held instance is released: received again, then de-identified
    await p.runtime.bus.publish([c.received(T0 + timedelta(seconds=8))])
    await p.runtime.bus.publish([c.deidentified(T0 + timedelta(seconds=9))])
    s = await wait_status(p, held=1, deidentified=4)
    assert s["received"] == 4 and s["awaiting_review"] == 4


async def test_status_is_for_the_collection_staff(p: Platform) -> None:
    await p.runtime.bus.publish([make_series(1)[0].received()])
    await wait_status(p, received=1)
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


async def test_publish_copies_verified_objects_and_emits_once_per_series(
    p: Platform, emitted: Collector
) -> None:
    one = make_series(3)
    two = make_series(2, patient="DEMO-CT-0002")
    await curate(p, one + two)
    await wait_status(p, awaiting_review=5)

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
        public = await p.runtime.store.get("public", c.key)
        assert hashlib.sha256(public).hexdigest() == c.sha256 == hashlib.sha256(c.data).hexdigest()
    await p.wait_until(lambda: _n(emitted, SeriesPublished.TYPE, 2), 10, "series.published")
    ev = {e.subject: e.payload(SeriesPublished) for e in emitted.of(SeriesPublished.TYPE)}
    sp = ev[one[0].series]
    assert sp.collection.name == "Demo-CT" and sp.collection.licence.name == "CC BY 4.0"
    assert sp.patient_id == "DEMO-CT-0001" and sp.study_instance_uid == one[0].ds.StudyInstanceUID
    assert {(i.sop_instance_uid, i.key, i.size, i.sha256) for i in sp.instances} == {
        (c.sop, c.key, len(c.data), c.sha256) for c in one
    }
    assert all(i.header["00200013"]["Value"] for i in sp.instances)
    s = await wait_status(p, published=5)
    assert s["awaiting_review"] == 0 and s["deidentified"] == 5

    # nothing new awaits: a second publish does nothing and emits nothing
    r = await p.client.post(PUBLISH, headers=manager())
    assert r.json() == {"published": [], "instances": 0}
    assert await published_in_outbox(p) == 2
    series = (await p.client.get(SERIES, headers=curator())).json()
    assert {s["review_state"] for s in series} == {"Visible"}


async def test_new_instances_republish_the_whole_series(p: Platform, emitted: Collector) -> None:
    items = make_series(4)
    await curate(p, items[:3])
    await wait_status(p, awaiting_review=3)
    assert (await p.client.post(PUBLISH, headers=manager())).json()["instances"] == 3
    await curate(p, items[3:])
    await wait_status(p, awaiting_review=1, published=3)
    r = await p.client.post(PUBLISH, headers=manager(), json={"series": [items[0].series]})
    assert r.json() == {"published": [items[0].series], "instances": 4}
    await p.wait_until(lambda: _n(emitted, SeriesPublished.TYPE, 2), 10, "two publications")
    last = emitted.of(SeriesPublished.TYPE)[-1].payload(SeriesPublished)
    assert len(last.instances) == 4
    await wait_status(p, published=4, awaiting_review=0)


async def test_publish_refusals_are_clear(p: Platform) -> None:
    mine, foreign = make_series(1), make_series(1, collection="Other")
    await p.runtime.bus.publish([collection_event("Other")])
    await curate(p, mine + foreign)
    await wait_status(p, awaiting_review=1)

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


async def test_review_needs_a_curator_of_the_collection(p: Platform) -> None:
    items = make_series(1)
    await curate(p, items)
    await wait_status(p, awaiting_review=1)
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


async def test_a_curation_object_that_changed_is_not_published(
    p: Platform, emitted: Collector
) -> None:
    items = make_series(2)
    await curate(p, items)
    await wait_status(p, awaiting_review=2)
    await p.runtime.store.put("curation", items[1].key, items[1].data + b"\0")
    r = await p.client.post(PUBLISH, headers=manager())
    assert r.status_code == 409 and "try again" in r.json()["detail"]
    await wait_status(p, published=0, awaiting_review=2)
    assert await published_in_outbox(p) == 0
    assert emitted.of(SeriesPublished.TYPE) == []


async def test_withdraw_removes_public_objects_and_tells_others(
    p: Platform, emitted: Collector
) -> None:
    items = make_series(2)
    await curate(p, items)
    await wait_status(p, awaiting_review=2)
    await p.client.post(PUBLISH, headers=manager())
    url = f"/api/qc/series/{items[0].series}/withdraw"
    assert (await p.client.post(url, headers=curator())).status_code == 404
    r = await p.client.post(url, headers=manager(), json={"reason": "consent withdrawn"})
    assert r.json() == {"withdrawn": items[0].series, "deleted": 2}
    for c in items:
        with pytest.raises(ObjectNotFound):
            await p.runtime.store.get("public", c.key)
    await p.wait_until(lambda: _n(emitted, SeriesWithdrawn.TYPE, 1), 10, "series.withdrawn")
    w = emitted.of(SeriesWithdrawn.TYPE)[0].payload(SeriesWithdrawn)
    assert (w.collection, w.reason) == ("Demo-CT", "consent withdrawn")
    await wait_status(p, published=0, deidentified=2)
    series = (await p.client.get(SERIES, headers=curator())).json()
    assert series[0]["review_state"] == "Not Visible"
    r = await p.client.post(url, headers=manager())
    assert r.status_code == 409 and "not published" in r.json()["detail"]
    # a withdrawn (Not Visible) series is not taken by a publish of everything
    assert (await p.client.post(PUBLISH, headers=manager())).json()["published"] == []


async def _n(c: Collector, type_: str, n: int) -> bool:
    return len(c.of(type_)) >= n


async def test_a_resent_instance_awaits_review_only_if_it_changed(p: Platform) -> None:
    items = make_series(2)
    await curate(p, items)
    await wait_status(p, awaiting_review=2)
    await p.client.post(PUBLISH, headers=manager())
    await wait_status(p, published=2)
    later = datetime.now(UTC) + timedelta(seconds=1)
    # the same bytes again (deid re-emitted, or an identical re-send): still published
    await p.runtime.bus.publish([items[0].deidentified(later)])
    await wait_status(p, published=2, awaiting_review=0)
    # changed content: back to awaiting review until published again
    items[1].data += b"\0\0"
    await put_curated(p.runtime.store, items[1:])
    await p.runtime.bus.publish([items[1].deidentified(later)])
    await wait_status(p, published=1, awaiting_review=1, deidentified=2)
    r = await p.client.post(PUBLISH, headers=manager())
    assert r.json() == {"published": [items[0].series], "instances": 2}
    assert await p.runtime.store.get("public", items[1].key) == items[1].data
