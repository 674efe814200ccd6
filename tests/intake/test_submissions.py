"""Submitting DICOM: single files, multipart batches and zips into quarantine, or held."""

from __future__ import annotations

import asyncio
import io
import zipfile
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from services.common.events import Event, InstanceHeld, InstanceReceived
from services.common.store import StoredObject, Zone
from services.intake import domain
from services.intake.models import ReceivedInstance
from tests.harness import Platform, admin_headers, auth_header, mint, platform
from tests.intake.helpers import (
    SUBMIT,
    ct,
    ct_dataset,
    encode,
    events,
    mr,
    sha256,
    submitter,
    without,
    zipped,
)

URL = SUBMIT.format("Demo-CT")
SECRET = b"test-secret-0123456789abcdef"  # tests/harness.py make_settings


def dicom(headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "Content-Type": "application/dicom"}


async def rows(p: Platform) -> list[ReceivedInstance]:
    async with p.runtime.contexts["intake"].db.session() as s:
        return list(await s.scalars(select(ReceivedInstance)))


async def test_a_batch_is_accepted_and_bad_files_are_held_with_reasons(intake: Platform) -> None:
    truncated = ct()[:20_000]
    no_sop = without("SOPInstanceUID")
    files = [
        ("file", ("CT_small.dcm", ct(), "application/dicom")),
        ("file", ("cut.dcm", truncated, "application/dicom")),
        ("file", ("notes.txt", b"not an image at all", "text/plain")),
        ("file", ("MR_small.dcm", mr(), "application/dicom")),
        ("file", ("nosop.dcm", no_sop, "application/dicom")),
    ]
    r = await intake.client.post(URL, params={"site": "S1"}, files=files, headers=submitter())
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["collection"], body["site"]) == ("Demo-CT", "S1")
    assert (body["accepted_count"], body["held_count"]) == (2, 3)
    ct_id = domain.instance_id(SECRET, "Demo-CT", "1CT1", ct_dataset().SOPInstanceUID)
    assert body["accepted"][0] == {
        "filename": "CT_small.dcm",
        "instance_id": ct_id,
        "sop_instance_uid": "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322",
    }
    assert [a["filename"] for a in body["accepted"]] == ["CT_small.dcm", "MR_small.dcm"]
    held = {h["filename"]: h["reason"] for h in body["held"]}
    assert held["notes.txt"] == "not a DICOM Part 10 file (no DICM prefix at byte 128)"
    assert held["nosop.dcm"] == "missing SOPInstanceUID (0008,0018)"
    assert held["cut.dcm"].startswith("truncated or unreadable DICOM: the file ends at byte 20000")

    # events: one instance.received per accepted file, one instance.held per held file
    received = [e.payload(InstanceReceived) for e in await events(intake, InstanceReceived.TYPE)]
    assert [x.filename for x in received] == ["CT_small.dcm", "MR_small.dcm"]
    first = received[0]
    assert (first.instance_id, first.collection, first.site) == (ct_id, "Demo-CT", "S1")
    assert first.object.model_dump() == {
        "zone": "quarantine",
        "key": f"Demo-CT/{ct_id}.dcm",
        "size": len(ct()),
        "sha256": sha256(ct()),
    }
    assert received[1].object.sha256 == sha256(mr())
    held_events = [e.payload(InstanceHeld) for e in await events(intake, InstanceHeld.TYPE)]
    assert {(h.filename, h.reason) for h in held_events} == set(held.items())
    assert {(h.stage, h.collection, h.site) for h in held_events} == {("intake", "Demo-CT", "S1")}

    # the accepted bytes are in quarantine, exactly, under the stable key
    store = intake.runtime.store
    assert await store.get("quarantine", f"Demo-CT/{ct_id}.dcm") == ct()
    stat = await store.stat("quarantine", f"Demo-CT/{ct_id}.dcm")
    assert (stat.size, stat.sha256) == (len(ct()), sha256(ct()))
    # ... and the held ones are kept too, never dropped
    for h in held_events:
        kept = await store.get("quarantine", f"Demo-CT/held/{h.instance_id}")
        assert kept == {"cut.dcm": truncated, "notes.txt": b"not an image at all"}.get(
            h.filename, no_sop
        )

    recorded = {x.sop_instance_uid: x for x in await rows(intake)}
    assert len(recorded) == 2
    row = recorded[first_sop := "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"]
    assert (row.instance_id, row.sha256, row.size, row.filename, row.site) == (
        ct_id,
        sha256(ct()),
        len(ct()),
        "CT_small.dcm",
        "S1",
    )
    assert (row.patient_id, row.modality, row.submission_id) == (
        "1CT1",
        "CT",
        body["submission_id"],
    )
    assert first_sop

    r = await intake.client.get(f"{URL.rsplit('/', 1)[0]}/counts", headers=submitter())
    assert r.json() == {"received": 2, "held": 3}


async def test_a_single_file_body_with_its_name(intake: Platform) -> None:
    r = await intake.client.post(
        URL, content=ct(), headers={**dicom(submitter()), "X-Filename": "series%201/IM1.dcm"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"][0]["filename"] == "series 1/IM1.dcm"
    r = await intake.client.post(
        URL,
        content=mr(),
        headers={**dicom(submitter()), "Content-Disposition": 'attachment; filename="mr.dcm"'},
    )
    assert r.json()["accepted"][0]["filename"] == "mr.dcm"
    r = await intake.client.post(URL, content=b"junk" * 50, headers=dicom(submitter()))
    assert r.json()["held"] == [
        {"filename": "upload.dcm", "reason": domain.NOT_PART10},
    ]
    names = [
        e.payload(InstanceReceived).filename for e in await events(intake, InstanceReceived.TYPE)
    ]
    assert names == ["series 1/IM1.dcm", "mr.dcm"]


async def test_a_zip_of_folders_is_unpacked_skipping_folders_and_macos_forks(
    intake: Platform,
) -> None:
    archive = zipped(
        {
            "patient1/ct/IM0001.dcm": ct(),
            "patient1/mr/IM0001.dcm": mr(),
            "patient1/README.txt": b"hello",
            "__MACOSX/patient1/ct/._IM0001.dcm": b"\x00\x05\x16\x07resource fork",
        },
        dirs=("patient1/", "patient1/ct/", "patient1/mr/"),
    )
    r = await intake.client.post(
        URL, content=archive, headers={**submitter(), "Content-Type": "application/zip"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [a["filename"] for a in body["accepted"]] == [
        "patient1/ct/IM0001.dcm",
        "patient1/mr/IM0001.dcm",
    ]
    assert body["held"] == [{"filename": "patient1/README.txt", "reason": domain.NOT_PART10}]
    assert len(await rows(intake)) == 2


async def test_a_damaged_zip_entry_is_held_and_a_broken_zip_refused(intake: Platform) -> None:
    archive = bytearray(zipped({"a/ct.dcm": ct(), "a/mr.dcm": mr()}))
    archive[archive.index(b"a/ct.dcm") + 100] ^= 0xFF  # corrupt the first entry's data
    r = await intake.client.post(
        URL, content=bytes(archive), headers={**submitter(), "Content-Type": "application/zip"}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert [a["filename"] for a in body["accepted"]] == ["a/mr.dcm"]
    assert body["held"][0]["filename"] == "a/ct.dcm"
    assert body["held"][0]["reason"].startswith("the zip entry could not be unpacked")

    r = await intake.client.post(
        URL,
        content=b"PK\x03\x04 not really",
        headers={**submitter(), "Content-Type": "application/zip"},
    )
    assert r.status_code == 400
    assert r.json()["detail"].startswith("the body is not a readable zip file")


async def test_a_zip_bomb_is_refused_before_unpacking(tmp_path: Path) -> None:
    async with platform(tmp_path, services=["intake"], intake_max_upload_bytes=1_000_000) as p:
        await p.client.post(
            "/api/intake/collections",
            json={"name": "Demo-CT", "licence": "CC-BY-4.0"},
            headers=admin_headers(),
        )
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("zeros.dcm", bytes(5_000_000))  # deflates to about 5 kB
        assert len(out.getvalue()) < 10_000
        headers = {**admin_headers(), "Content-Type": "application/zip"}
        r = await p.client.post(URL, content=out.getvalue(), headers=headers)
        assert r.status_code == 413
        assert r.json()["detail"] == (
            "this zip unpacks to 5000000 bytes, more than the 1000000 bytes this site accepts "
            "at once (IMARC_INTAKE_MAX_UPLOAD_BYTES); send it as several smaller zips"
        )
        # a body over the limit is refused too, whatever its type
        r = await p.client.post(URL, content=bytes(1_000_001), headers=dicom(admin_headers()))
        assert r.status_code == 413
        assert "IMARC_INTAKE_MAX_UPLOAD_BYTES" in r.json()["detail"]

        async def chunked() -> object:  # no Content-Length: counted as it streams
            for _ in range(20):
                yield bytes(100_000)

        r = await p.client.post(URL, content=chunked(), headers=dicom(admin_headers()))  # type: ignore[arg-type]
        assert r.status_code == 413
        assert await events(p, InstanceHeld.TYPE) == []
        assert len(await rows(p)) == 0


async def test_resending_an_instance_replaces_it(intake: Platform) -> None:
    original = ct()
    ds = ct_dataset()
    ds.SeriesDescription = "corrected"
    corrected = encode(ds)
    assert corrected != original
    r1 = await intake.client.post(URL, content=original, headers=dicom(submitter()))
    r2 = await intake.client.post(
        URL, params={"site": "S2"}, content=corrected, headers=dicom(submitter())
    )
    id1, id2 = (r.json()["accepted"][0]["instance_id"] for r in (r1, r2))
    assert id1 == id2

    recorded = await rows(intake)
    assert len(recorded) == 1
    assert (recorded[0].sha256, recorded[0].size, recorded[0].site) == (
        sha256(corrected),
        len(corrected),
        "S2",
    )
    assert recorded[0].times_received == 2
    assert recorded[0].submission_id == r2.json()["submission_id"]
    key = f"Demo-CT/{id1}.dcm"
    assert await intake.runtime.store.get("quarantine", key) == corrected
    received = [e.payload(InstanceReceived) for e in await events(intake, InstanceReceived.TYPE)]
    assert [(x.instance_id, x.object.key, x.object.sha256) for x in received] == [
        (id1, key, sha256(original)),
        (id1, key, sha256(corrected)),
    ]
    r = await intake.client.get(f"{URL.rsplit('/', 1)[0]}/counts", headers=submitter())
    assert r.json() == {"received": 1, "held": 0}


async def test_the_same_instance_twice_in_one_batch_is_one_row(intake: Platform) -> None:
    ds = ct_dataset()
    ds.SeriesDescription = "second"
    second = encode(ds)
    files = [("file", ("a.dcm", ct(), "application/dicom")), ("file", ("b.dcm", second, "x/y"))]
    r = await intake.client.post(URL, files=files, headers=submitter())
    assert r.json()["accepted_count"] == 2
    recorded = await rows(intake)
    assert len(recorded) == 1
    kept = await intake.runtime.store.get("quarantine", recorded[0].key)
    assert sha256(kept) == recorded[0].sha256  # the row describes the object that stayed
    received = await events(intake, InstanceReceived.TYPE)
    assert [e.payload(InstanceReceived).object.sha256 for e in received] == [recorded[0].sha256]


async def test_who_may_submit(intake: Platform) -> None:
    r = await intake.client.post(URL, content=ct(), headers={"Content-Type": "application/dicom"})
    assert r.status_code == 401
    assert r.json()["detail"].startswith("this needs a login")

    other = submitter("Other-MR")
    r = await intake.client.post(URL, content=ct(), headers=dicom(other))
    assert r.status_code == 403
    assert r.json()["detail"] == (
        "you are not allowed to submit to collection Demo-CT; ask a manager for access"
    )
    site_a = submitter(sites=["A"])
    r = await intake.client.post(URL, params={"site": "B"}, content=ct(), headers=dicom(site_a))
    assert r.status_code == 403
    assert "for site B" in r.json()["detail"]
    r = await intake.client.post(URL, params={"site": "A"}, content=ct(), headers=dicom(site_a))
    assert r.status_code == 200
    r = await intake.client.post(URL, content=ct(), headers=dicom(site_a))
    assert r.json()["site"] == "A"  # the token's only site
    manager = auth_header(mint("m", coll={"Demo-CT": ["manager"]}))
    r = await intake.client.post(URL, content=mr(), headers=dicom(manager))
    assert r.status_code == 200
    assert len(await rows(intake)) == 2


async def test_unknown_collection(intake: Platform) -> None:
    r = await intake.client.post(
        SUBMIT.format("Nope"), content=ct(), headers=dicom(admin_headers())
    )
    assert r.status_code == 404
    assert r.json()["detail"] == (
        "no collection named Nope; create it with `imarc collections create Nope --licence ID`"
    )


async def test_a_replica_refuses_submissions(tmp_path: Path) -> None:
    async with platform(tmp_path, services=["intake"], site_role="replica") as p:
        r = await p.client.post(URL, content=ct(), headers=dicom(admin_headers()))
        assert r.status_code == 503
        assert r.json()["detail"] == (
            "this site is a read replica; send submissions to the primary site"
        )


async def test_unusable_bodies_are_refused_with_a_sentence(intake: Platform) -> None:
    r = await intake.client.post(
        URL, content=b"{}", headers={**submitter(), "Content-Type": "application/json"}
    )
    assert r.status_code == 415
    assert "send application/dicom, multipart/form-data or application/zip" in r.json()["detail"]
    r = await intake.client.post(URL, content=b"", headers=dicom(submitter()))
    assert r.status_code == 400
    r = await intake.client.post(
        URL, files=[("other", ("a.dcm", ct(), "application/dicom"))], headers=submitter()
    )
    assert r.status_code == 400
    assert "part named `file`" in r.json()["detail"]
    r = await intake.client.post(
        URL,
        content=zipped({}, dirs=("empty/",)),
        headers={**submitter(), "Content-Type": "application/zip"},
    )
    assert r.status_code == 400
    assert len(await rows(intake)) == 0


async def test_held_files_are_listed_for_curators_only(intake: Platform) -> None:
    files = [
        ("file", ("bad1.txt", b"one", "text/plain")),
        ("file", ("ok.dcm", ct(), "application/dicom")),
        ("file", ("bad2.dcm", without("PatientID"), "application/dicom")),
    ]
    await intake.client.post(URL, params={"site": "S9"}, files=files, headers=submitter())
    held_url = f"{URL.rsplit('/', 1)[0]}/held"
    assert (await intake.client.get(held_url, headers=submitter())).status_code == 403
    curator = auth_header(mint("c", coll={"Demo-CT": ["curator"]}))
    r = await intake.client.get(held_url, headers=curator)
    assert r.status_code == 200
    listed = r.json()
    assert [(h["filename"], h["reason"], h["site"]) for h in listed] == [
        ("bad1.txt", domain.NOT_PART10, "S9"),
        ("bad2.dcm", "missing PatientID (0010,0020)", "S9"),
    ]
    assert listed[0]["sha256"] == sha256(b"one") and listed[0]["received_at"].endswith("Z")
    r = await intake.client.get(held_url, params={"limit": 1, "offset": 1}, headers=curator)
    assert [h["filename"] for h in r.json()] == ["bad2.dcm"]
    other = auth_header(mint("c", coll={"Other": ["curator"]}))
    assert (
        await intake.client.get(f"{URL.rsplit('/', 1)[0]}/counts", headers=other)
    ).status_code == 403


async def test_accepted_events_reach_a_consumer_on_the_bus(intake: Platform) -> None:
    got: list[Event] = []

    async def on_event(e: Event) -> None:
        got.append(e)

    await intake.runtime.bus.subscribe("test.intake_watch", ["org.imarc.instance.*"], on_event)
    await intake.client.post(
        URL,
        files=[("file", ("a.dcm", ct(), "application/dicom")), ("file", ("b", b"x", "x/y"))],
        headers=submitter(),
    )

    async def both() -> bool:
        return len(got) == 2

    await intake.wait_until(both, timeout=10, what="two events on the bus")
    assert sorted(e.type for e in got) == [InstanceHeld.TYPE, InstanceReceived.TYPE]


async def test_metrics_count_received_and_held(intake: Platform) -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = value("imarc_instances_received_total", collection="Demo-CT")
    held_before = value("imarc_instances_held_total", stage="intake", reason="not_part10")
    files = [("file", ("a.dcm", ct(), "application/dicom")), ("file", ("b", b"x", "x/y"))]
    await intake.client.post(URL, files=files, headers=submitter())
    assert value("imarc_instances_received_total", collection="Demo-CT") == before + 1
    assert (
        value("imarc_instances_held_total", stage="intake", reason="not_part10") == held_before + 1
    )


async def test_concurrent_batches_of_one_series_all_arrive(intake: Platform) -> None:
    series = []
    for i in range(24):
        ds = ct_dataset()
        ds.SOPInstanceUID = f"1.2.826.0.1.3680043.8.498.{i + 1}"
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        series.append(encode(ds))

    async def send(part: list[bytes], start: int) -> int:
        files = [("file", (f"{start + i}.dcm", d, "application/dicom")) for i, d in enumerate(part)]
        r = await intake.client.post(URL, files=files, headers=submitter())
        return int(r.json()["accepted_count"])

    counts = await asyncio.gather(*(send(series[i : i + 6], i) for i in range(0, 24, 6)))
    assert sum(counts) == 24
    r = await intake.client.get(f"{URL.rsplit('/', 1)[0]}/counts", headers=submitter())
    assert r.json() == {"received": 24, "held": 0}


async def test_a_store_failure_records_nothing_and_says_to_resend(
    intake: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = intake.runtime.store
    real_put = store.put
    calls = 0

    async def flaky_put(zone: Zone, key: str, data: bytes) -> StoredObject:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("disk full")
        return await real_put(zone, key, data)

    monkeypatch.setattr(store, "put", flaky_put)
    files = [("file", (f"{i}.dcm", d, "application/dicom")) for i, d in enumerate([ct(), mr()])]
    r = await intake.client.post(URL, files=files, headers=submitter())
    assert r.status_code == 503
    assert r.json()["detail"] == (
        "the object store did not take the files; nothing was recorded, "
        "so send the submission again"
    )
    assert await rows(intake) == []
    assert await events(intake, InstanceReceived.TYPE) == []
    r = await intake.client.post(URL, files=files, headers=submitter())
    assert r.json()["accepted_count"] == 2
