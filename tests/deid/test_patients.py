"""Who a patient is: the same PatientID under two issuers is two people, and a study
holding instances of two patients is held for review instead of published."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from pydicom.uid import generate_uid

from services.common.events import InstanceDeidentified, InstanceHeld
from services.deid.domain import STUDY_OF_TWO_PATIENTS
from tests.deid import dicom
from tests.deid.helpers import Deid, curator_headers, deid_platform, manager_headers

C = "Issuer-CT"


def issued(files: list[bytes], issuer: str) -> list[bytes]:
    out = []
    for raw in files:
        ds = dicom.read(raw)
        ds.IssuerOfPatientID = issuer
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        out.append(buf.getvalue())
    return out


async def deidentified(d: Deid, files: list[bytes]) -> list[InstanceDeidentified]:
    events = [await d.publish_received(C, raw) for raw in files]
    return [
        await d.wait_for(InstanceDeidentified, instance_id=e.data["instance_id"]) for e in events
    ]


async def test_one_patient_id_under_two_issuers_is_two_patients(tmp_path: Path) -> None:
    first_a = issued(dicom.ct_series("MRN-0042", "Smith^Jane", n=2), "HOSPITAL-A")
    first_b = issued(dicom.ct_series("MRN-0042", "Jones^Ann", n=2), "HOSPITAL-B")
    later_a = issued(dicom.ct_series("MRN-0042", "Smith^Jane", n=1), "HOSPITAL-A")
    no_issuer = dicom.ct_series("MRN-0042", "Brown^Bob", n=1)
    async with deid_platform(tmp_path, with_intake=False) as d:
        await d.create_collection(C)
        a = await deidentified(d, first_a)
        b = await deidentified(d, first_b)
        # a second submission: each patient keeps their own pseudonym
        again = await deidentified(d, later_a)
        plain = await deidentified(d, no_issuer)

        assert {x.patient_id for x in a} == {x.patient_id for x in again} == {f"{C}-0001"}
        assert {x.patient_id for x in b} == {f"{C}-0002"}
        assert plain[0].patient_id == f"{C}-0003"
        # each person's dates move by their own offset (the same original date here)
        shifted = {
            x.patient_id: dicom.read(
                await d.p.runtime.store.get("curation", x.object.key)
            ).StudyDate
            for x in (a[0], b[0], plain[0])
        }
        assert len(set(shifted.values())) == 3, shifted

        r = await d.client.get(
            f"/api/deid/collections/{C}/maps/patients.csv", headers=manager_headers(C)
        )
        rows = list(csv.reader(io.StringIO(r.text)))
        assert sorted(map(tuple, rows[1:])) == [
            ("MRN-0042", f"{C}-0001"),
            ("MRN-0042", f"{C}-0002"),
            ("MRN-0042", f"{C}-0003"),
        ]


async def test_a_study_holding_two_patients_is_held_with_its_reason(tmp_path: Path) -> None:
    study = generate_uid(dicom.ROOT)
    owner = dicom.ct_series("PAT-OWNER", "Smith^Jane", n=3, study=study)
    stray = dicom.ct_series("PAT-STRAY", "Jones^Ann", n=1, study=study)
    strays_own = dicom.ct_series("PAT-STRAY", "Jones^Ann", n=2)
    async with deid_platform(tmp_path, with_intake=False) as d:
        await d.create_collection(C)
        done = await deidentified(d, owner)
        event = await d.publish_received(C, stray[0])
        iid = event.data["instance_id"]
        held = await d.wait_for(InstanceHeld, instance_id=iid)
        assert held.stage == "deid" and held.reason == STUDY_OF_TWO_PATIENTS
        # a later submission: the owner's next slice still goes through, the stray
        # patient's own study too
        more = await deidentified(d, dicom.ct_series("PAT-OWNER", "Smith^Jane", n=1, study=study))
        own = await deidentified(d, strays_own)
        assert {x.patient_id for x in done + more} == {f"{C}-0001"}
        assert {x.patient_id for x in own} == {f"{C}-0002"}
        assert len({x.study_instance_uid for x in done + more}) == 1
        await d.settle()
        assert not d.recorder.of(InstanceDeidentified, instance_id=iid)

        listing = await d.client.get(f"/api/deid/collections/{C}/held", headers=curator_headers(C))
        assert [(h["instance_id"], h["code"], h["reason"]) for h in listing.json()] == [
            (iid, "study_two_patients", STUDY_OF_TWO_PATIENTS)
        ]
        # releasing it changes nothing while the study still names two patients
        r = await d.client.post(
            f"/api/deid/collections/{C}/held/{iid}/release", headers=curator_headers(C)
        )
        assert r.status_code == 200 and r.json()["outcome"] == "held"
        assert r.json()["reason"] == STUDY_OF_TWO_PATIENTS
