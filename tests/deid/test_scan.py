"""The residual-PHI scan in the pipeline and over a collection again: findings name the
element and the kind of identifier, never its value."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.common.events import InstanceDeidentified, ResidualFinding
from tests.deid import dicom
from tests.deid.helpers import Deid, curator_headers, deid_platform, manager_headers
from tests.harness import auth_header, mint

C = "Scan-CT"
#: identifiers of the record that the engine's text cleaning may not know as such
PLANTED = {"StudyID": "STU-778123", "RequestedProcedureID": "RP-99812"}
COMMENTS = {"00204000", "001021B0"}  # ImageComments, AdditionalPatientHistory


def with_comment(raw: bytes) -> bytes:
    """A file whose kept free text repeats identifiers of its own record."""
    ds = dicom.read(raw)
    for keyword, value in PLANTED.items():
        setattr(ds, keyword, value)
    ds.ImageComments = f"see {PLANTED['StudyID']} for the priors"
    ds.AdditionalPatientHistory = f"ordered as {PLANTED['RequestedProcedureID']}"
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


async def deidentified(d: Deid, raw: bytes) -> InstanceDeidentified:
    event = await d.publish_received(C, raw)
    return await d.wait_for(InstanceDeidentified, instance_id=event.data["instance_id"])


async def until_finished(d: Deid, path: str, rounds: int = 200) -> dict[str, object]:
    """Follow a background scan (bounded: at most ``rounds`` looks)."""
    for _ in range(rounds):
        run = (await d.client.get(path, headers=curator_headers(C))).json()
        if run["state"] != "running":
            return dict(run)
        await asyncio.sleep(0.05)
    raise AssertionError(f"the scan did not finish: {run}")


async def test_every_instance_is_scanned_against_its_own_original(tmp_path: Path) -> None:
    clean, leaky = dicom.ct_series("PAT-1", "Smith^Jane", n=2)
    async with deid_platform(tmp_path, with_intake=False) as d:
        await d.create_collection(C)
        assert (await deidentified(d, clean)).findings == []
        done = await deidentified(d, with_comment(leaky))
        assert done.findings
        assert {(f.path, f.kind) for f in done.findings} <= {(p, "id") for p in COMMENTS}
        announced = next(
            e
            for e in d.recorder.events
            if e.type == InstanceDeidentified.TYPE and e.data["instance_id"] == done.instance_id
        )
        for value in PLANTED.values():  # where and what kind, never the value
            assert value.lower() not in str(announced.data["findings"]).lower()


async def test_a_collection_is_scanned_again_after_a_profile_change(tmp_path: Path) -> None:
    url = f"/api/deid/collections/{C}/profile"
    files = dicom.ct_series("PAT-1", "Smith^Jane", n=2)  # InstitutionName "Springfield General"
    async with deid_platform(tmp_path, with_intake=False) as d:
        await d.create_collection(C)
        options = (await d.client.get(url, headers=manager_headers(C))).json()["options"]
        r = await d.client.put(
            url,
            json={"options": [*options, "retain_institution_identity"]},
            headers=manager_headers(C),
        )
        assert r.status_code == 200, r.text
        first = [await deidentified(d, raw) for raw in files]
        assert [x.findings for x in first] == [[], []]  # the institution is kept on purpose

        r = await d.client.put(url, json={"options": options}, headers=manager_headers(C))
        assert r.status_code == 200, r.text
        scan = f"/api/deid/collections/{C}/scan"
        outsider = auth_header(mint("someone", coll={"Other": ["manager"]}))
        r = await d.client.post(scan, headers=outsider)
        assert r.status_code == 403 and "ask a manager" in r.json()["detail"]
        r = await d.client.get(scan, headers=curator_headers(C))
        assert r.status_code == 404 and "imarc qc scan --run" in r.json()["detail"]
        r = await d.client.post(scan, headers=curator_headers(C))
        assert r.status_code == 202, r.text
        started = r.json()
        assert started["state"] == "running" and started["total"] == 2
        run = await until_finished(d, scan)
        assert run["id"] == started["id"]
        assert (run["state"], run["scanned"], run["findings"], run["skipped"]) == ("done", 2, 2, 0)
        assert run["requested_by"] and run["finished_at"]
        await d.settle()
        for x in first:
            latest = d.recorder.of(InstanceDeidentified, instance_id=x.instance_id)[-1]
            assert latest.findings == [ResidualFinding(path="00080080", kind="institution")]
            assert latest.object == x.object and latest.header == x.header
        r = await d.client.post("/api/deid/collections/Nope/scan", headers=manager_headers("Nope"))
        assert r.status_code == 404 and "not known" in r.json()["detail"]


async def test_a_scan_whose_process_ended_is_shown_stalled_and_started_again(
    tmp_path: Path,
) -> None:
    from sqlalchemy import update

    from services.deid.models import ScanRun
    from services.deid.service.scan import STALLED_AFTER

    scan = f"/api/deid/collections/{C}/scan"
    async with deid_platform(tmp_path, with_intake=False) as d:
        await d.create_collection(C)
        await deidentified(d, dicom.ct_series("PAT-1", "Smith^Jane", n=1)[0])
        r = await d.client.post(scan, headers=curator_headers(C))
        assert r.status_code == 202, r.text
        first = await until_finished(d, scan)
        assert first["state"] == "done" and first["scanned"] == 1
        # as a process stopped mid-scan leaves it: running, no longer advancing
        deid = d.p.runtime.deps["deid"]
        long_ago = datetime.now(UTC) - STALLED_AFTER - timedelta(seconds=1)
        async with deid.db.session() as s, s.begin():
            await s.execute(
                update(ScanRun)
                .where(ScanRun.id == first["id"])
                .values(state="running", updated_at=long_ago, finished_at=None)
            )
        r = await d.client.get(scan, headers=curator_headers(C))
        assert r.json()["state"] == "stalled"
        r = await d.client.post(scan, headers=curator_headers(C))
        assert r.status_code == 202 and r.json()["id"] != first["id"]
        again = await until_finished(d, scan)
        assert again["state"] == "done" and again["scanned"] == 1
