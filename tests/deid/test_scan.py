"""The residual-PHI scan in the pipeline and over a collection again: findings name the
element and the kind of identifier, never its value."""

from __future__ import annotations

import io
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
        r = await d.client.post(scan, headers=curator_headers(C))
        assert r.status_code == 200, r.text
        assert r.json() == {"instances": 2, "findings": 2, "skipped": 0}
        await d.settle()
        for x in first:
            latest = d.recorder.of(InstanceDeidentified, instance_id=x.instance_id)[-1]
            assert latest.findings == [ResidualFinding(path="00080080", kind="institution")]
            assert latest.object == x.object and latest.header == x.header
        r = await d.client.post("/api/deid/collections/Nope/scan", headers=manager_headers("Nope"))
        assert r.status_code == 404 and "not known" in r.json()["detail"]
