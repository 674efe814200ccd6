"""The curators' and managers' workspace: review with history and in bulk, residual-PHI
findings that stop a publish unless a manager overrides (audited), the submitter's
approval, tag inventories of the curation and public zones, every collection at a
glance, and slices rendered with their headers — on the in-memory bus."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from services.common.events import Event, ResidualFinding
from tests.harness import auth_header, mint
from tests.memory import InMemory, in_memory
from tests.qc.curation import Curated, collection_event, dicom_bytes, make_series, put_curated

C = "Demo-CT"
RECEIVED = datetime(2026, 1, 1, tzinfo=UTC)


def manager() -> dict[str, str]:
    return auth_header(mint("mia", coll={C: ["manager"]}))


def curator() -> dict[str, str]:
    return auth_header(mint("cora", coll={C: ["curator"]}))


def submitter() -> dict[str, str]:
    return auth_header(mint("sam", coll={C: ["submitter"]}, sites=["site-1"]))


@pytest.fixture
async def p(tmp_path: Path) -> AsyncIterator[InMemory]:
    async with in_memory(tmp_path, ["qc"]) as plat:
        await plat.publish(collection_event(C))
        yield plat


def flagged(c: Curated, *findings: ResidualFinding) -> Event:
    ev = c.deidentified()
    return ev.model_copy(
        update={"data": {**ev.data, "findings": [f.model_dump() for f in findings]}}
    )


async def curate(
    p: InMemory, items: list[Curated], events: Callable[[], list[Event]] | None = None
) -> None:
    """Put ``items`` into curation: received (earlier), then de-identified (what
    ``events`` makes once the objects are stored, or a plain instance.deidentified each)."""
    await put_curated(p.store, items)
    await p.publish(*(c.received(at=RECEIVED) for c in items))
    await p.publish(*(events() if events else [c.deidentified() for c in items]))


async def publish(p: InMemory, **body: object) -> dict:
    r = await p.client.post(f"/api/qc/collections/{C}/publish", json=body, headers=manager())
    return {"status": r.status_code, **r.json()}


async def test_review_keeps_its_history_and_works_in_bulk(p: InMemory) -> None:
    a, b = make_series(2), make_series(3)
    await curate(p, a + b)
    uid = a[0].series
    r = await p.client.put(
        f"/api/qc/series/{uid}/review",
        json={"state": "Not Visible", "comment": "motion artefact"},
        headers=curator(),
    )
    assert r.status_code == 200, r.text
    await p.client.put(f"/api/qc/series/{uid}/review", json={"state": "Visible"}, headers=curator())
    detail = (await p.client.get(f"/api/qc/series/{uid}", headers=curator())).json()
    assert [(h["state"], h["by"], h["comment"]) for h in detail["history"]] == [
        ("Not Visible", "cora", "motion artefact"),
        ("Visible", "cora", ""),
    ]
    assert [s["instance_number"] for s in detail["slices"]] == [1, 2]
    # bulk: every series still Not Reviewed becomes To Be Deleted
    r = await p.client.put(
        f"/api/qc/collections/{C}/review",
        json={"state": "To Be Deleted", "only_states": ["Not Reviewed"], "comment": "duplicate"},
        headers=curator(),
    )
    assert r.json() == {"state": "To Be Deleted", "series": [b[0].series]}
    assert (await publish(p))["published"] == [uid], "only series a curator may release go"


async def test_findings_stop_a_publish_until_a_manager_overrides_with_a_reason(
    p: InMemory,
) -> None:
    dirty, clean = make_series(2), make_series(1)
    finding = ResidualFinding(path="00204000", kind="name")
    await curate(
        p,
        dirty + clean,
        lambda: [flagged(dirty[0], finding), dirty[1].deidentified(), clean[0].deidentified()],
    )
    listed = (await p.client.get(f"/api/qc/collections/{C}/findings", headers=curator())).json()
    assert listed == [
        {
            "series_instance_uid": dirty[0].series,
            "sop_instance_uid": dirty[0].sop,
            "path": "00204000",
            "kind": "name",
        }
    ]
    # a publish of everything leaves the flagged series out; naming it is refused
    first = await publish(p)
    assert first.get("published") == [clean[0].series], first
    refused = await publish(p, series=[dirty[0].series])
    assert refused["status"] == 409 and "residual-PHI" in refused["detail"]
    no_reason = await publish(p, series=[dirty[0].series], override_findings=True)
    assert no_reason["status"] == 403 and "--why" in no_reason["detail"]
    ok = await publish(
        p, series=[dirty[0].series], override_findings=True, why="pseudonym, not a name"
    )
    assert ok["published"] == [dirty[0].series]
    audit = (await p.client.get(f"/api/qc/collections/{C}/audit", headers=manager())).json()
    assert [(a["action"], a["by"], a["why"], a["subject"]) for a in audit] == [
        ("publish_despite_findings", "mia", "pseudonym, not a name", dirty[0].series)
    ]
    # a new de-identification without findings clears the flag
    await p.publish(dirty[0].deidentified())
    listed = (await p.client.get(f"/api/qc/collections/{C}/findings", headers=curator())).json()
    assert listed == []


async def test_publishing_waits_for_the_submitters_approval_when_the_collection_asks(
    p: InMemory,
) -> None:
    a = make_series(2)
    await curate(p, a)
    r = await p.client.patch(
        f"/api/qc/collections/{C}/settings",
        json={"submitter_approval": True, "priority": 5, "status": "active"},
        headers=manager(),
    )
    assert r.json() == {
        "collection": C,
        "status": "active",
        "priority": 5,
        "submitter_approval": True,
    }
    assert (await publish(p))["published"] == []
    refused = await publish(p, series=[a[0].series])
    assert refused["status"] == 409 and "approval" in refused["detail"]
    r = await p.client.post(f"/api/qc/collections/{C}/approve", json={}, headers=submitter())
    assert r.json() == {"approved": [a[0].series]}
    assert (await publish(p))["published"] == [a[0].series]


async def test_inventories_of_curation_and_public_and_their_diff(p: InMemory) -> None:
    a, b = make_series(2), make_series(1)
    b[0].ds.StudyDescription = "ONLY IN B"
    b[0].data = dicom_bytes(b[0].ds)
    await curate(p, a + b)
    inv = (await p.client.get(f"/api/qc/collections/{C}/inventory", headers=curator())).json()
    desc = {r["value"]: r["count"] for r in inv if r["path"] == "00081030"}
    assert desc == {str(a[0].ds.StudyDescription): 2, "ONLY IN B": 1}
    assert {r["section"] for r in inv} >= {"text", "datetime", "private"}
    assert all(r["element"] for r in inv)
    await publish(p, series=[a[0].series])
    public = (
        await p.client.get(f"/api/qc/collections/{C}/inventory?zone=public", headers=curator())
    ).json()
    assert {r["value"]: r["count"] for r in public if r["path"] == "00081030"} == {
        str(a[0].ds.StudyDescription): 2
    }
    changes = (
        await p.client.get(f"/api/qc/collections/{C}/inventory/diff", headers=curator())
    ).json()
    assert {"path": "00081030", "value": "ONLY IN B", "before": 1, "after": 0}.items() <= next(
        c for c in changes if c["value"] == "ONLY IN B"
    ).items()
    csv_text = (
        await p.client.get(f"/api/qc/collections/{C}/inventory?format=csv", headers=curator())
    ).text
    assert csv_text.startswith("device,section,path,element,vr,creator,value,count")
    # a re-sent, re-de-identified instance takes its old values back
    a[1].ds.StudyDescription = "CORRECTED"
    a[1].data = dicom_bytes(a[1].ds)
    await put_curated(p.store, [a[1]])
    await p.publish(a[1].deidentified())
    inv = (await p.client.get(f"/api/qc/collections/{C}/inventory", headers=curator())).json()
    desc = {r["value"]: r["count"] for r in inv if r["path"] == "00081030"}
    assert desc == {str(a[0].ds.StudyDescription): 1, "CORRECTED": 1, "ONLY IN B": 1}
    # withdrawing takes the series out of the public inventory again
    await p.client.post(f"/api/qc/series/{a[0].series}/withdraw", json={}, headers=manager())
    public = (
        await p.client.get(f"/api/qc/collections/{C}/inventory?zone=public", headers=curator())
    ).json()
    assert public == []


async def test_collections_at_a_glance(p: InMemory) -> None:
    a = make_series(2)
    await curate(p, a)
    held = make_series(1)[0]
    await p.publish(held.received(), held.held(reason="burned-in annotation suspected"))
    await p.client.patch(f"/api/qc/collections/{C}/settings", json={"priority": 3},
                         headers=manager())  # fmt: skip
    await publish(p)
    rows = (await p.client.get("/api/qc/collections", headers=curator())).json()
    assert len(rows) == 1
    row = rows[0]
    assert row["collection"] == C and row["priority"] == 3
    assert (row["received"], row["held"], row["published"]) == (3, 1, 2)
    assert row["held_by_reason"] == {"deid: burned-in annotation suspected": 1}
    assert row["published_counts"] == {"patients": 1, "studies": 1, "series": 1, "instances": 2}
    # no catalog runs here: the publication is published but not yet confirmed as public
    assert row["public"] == {"patients": 0, "studies": 0, "series": 0, "instances": 0}
    assert row["public_check"] == {"state": "pending", "pending_series": 1, "mismatched_series": []}
    other = auth_header(mint("olga", coll={"Other": ["curator"]}))
    assert (await p.client.get("/api/qc/collections", headers=other)).json() == []


async def test_a_curator_sees_slices_rendered_and_the_header(p: InMemory) -> None:
    a = make_series(1)
    await curate(p, a)
    iid = a[0].instance_id
    r = await p.client.get(f"/api/qc/instances/{iid}/render", headers=curator())
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    img = np.asarray(Image.open(io.BytesIO(r.content)))
    assert img.shape == (a[0].ds.Rows, a[0].ds.Columns) and img.std() > 5
    header = (await p.client.get(f"/api/qc/instances/{iid}/header", headers=curator())).json()
    assert {
        "tag": "00080060",
        "keyword": "Modality",
        "vr": "CS",
        "value": "CT",
        "depth": 0,
    } in header
    outsider = auth_header(mint("olga", coll={"Other": ["curator"]}))
    r = await p.client.get(f"/api/qc/instances/{iid}/render", headers=outsider)
    assert r.status_code == 403


async def test_head_and_neck_ct_is_not_published_into_a_public_collection(p: InMemory) -> None:
    head = make_series(1)
    head[0].ds.BodyPartExamined = "HEAD"
    head[0].data = dicom_bytes(head[0].ds)
    chest = make_series(1)
    await curate(p, head + chest)
    glance = (await p.client.get("/api/qc/collections", headers=manager())).json()[0]
    assert glance["face_suggestion"].startswith("1 series look like head or neck")
    assert "BodyPartExamined says HEAD" in glance["face_suggestion"]
    first = await publish(p)
    assert first["published"] == [chest[0].series]
    refused = await publish(p, series=[head[0].series])
    assert refused["status"] == 409
    assert "face" in refused["detail"] and "BodyPartExamined says HEAD" in refused["detail"]
    # once the collection is marked (and so limited), the series may be published
    await p.publish(
        collection_event(C, access="limited").model_copy(
            update={"data": {**collection_event(C, access="limited").data,
                             "face_reconstructable": True}}
        )
    )  # fmt: skip
    assert (await publish(p, series=[head[0].series]))["published"] == [head[0].series]
    glance = (await p.client.get("/api/qc/collections", headers=manager())).json()[0]
    assert glance["face_suggestion"] is None  # marked: nothing left to suggest
