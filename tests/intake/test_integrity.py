"""Integrity rules at intake: one patient per Study/Series/SOP Instance UID (PatientID +
IssuerOfPatientID), a study under two patients held as a whole, a changed re-send
replacing its instance (audited), and values that break their VR held naming the element,
never the value. Nothing is dropped: every held file stays in quarantine."""

from __future__ import annotations

import logging

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from sqlalchemy import select

from services.common.events import InstanceHeld
from services.intake.models import AuditEntry
from tests.harness import Platform, auth_header, mint
from tests.intake.helpers import SUBMIT, ct_dataset, encode, events, submitter

URL = SUBMIT.format("Demo-CT")


def instance(patient: str, study: str, series: str, issuer: str | None = None) -> Dataset:
    ds = ct_dataset()
    ds.PatientID = patient
    if issuer is not None:
        ds.IssuerOfPatientID = issuer
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


async def send(p: Platform, *datasets: Dataset) -> dict:
    files = [
        ("file", (f"f{i}.dcm", encode(ds), "application/dicom")) for i, ds in enumerate(datasets)
    ]
    r = await p.client.post(URL, files=files, headers=submitter())
    assert r.status_code == 200, r.text
    return r.json()


async def held_events(p: Platform) -> dict[str, InstanceHeld]:
    return {
        e.payload(InstanceHeld).instance_id: e.payload(InstanceHeld)
        for e in await events(p, InstanceHeld.TYPE)
    }


async def quarantined(p: Platform, key: str) -> bytes:
    return await p.runtime.contexts["intake"].store.get("quarantine", key)


async def test_a_study_under_two_patients_is_held_as_a_whole(intake: Platform) -> None:
    study, series = generate_uid(), generate_uid()
    first = await send(intake, instance("PAT-A", study, series))
    assert first["accepted_count"] == 1
    earlier = first["accepted"][0]["instance_id"]

    other = await send(intake, instance("PAT-B", study, generate_uid()))
    assert other["accepted_count"] == 0
    (held,) = other["held"]
    assert (
        "StudyInstanceUID (0020,000D) already received in this collection under another"
        in (held["reason"])
    )
    holds = await held_events(intake)
    assert holds[earlier].code == "patient_conflict"  # what came before is held with it
    assert "whole study is held" in holds[earlier].reason

    later = await send(intake, instance("PAT-A", study, series))
    assert later["accepted_count"] == 0 and "whole study is held" in later["held"][0]["reason"]
    status = await intake.client.get(
        "/api/intake/collections/Demo-CT/quarantine/counts", headers=submitter()
    )
    assert status.json() == {"intake": {"patient_conflict": 3}}


async def test_a_sop_instance_under_another_patient_is_held(intake: Platform) -> None:
    ds = instance("PAT-C", generate_uid(), generate_uid())
    assert (await send(intake, ds))["accepted_count"] == 1
    ds.PatientID = "PAT-D"
    r = await send(intake, ds)
    (held,) = r["held"]
    assert held["reason"].startswith(
        "StudyInstanceUID (0020,000D) and SeriesInstanceUID (0020,000E) and SOPInstanceUID "
        "(0008,0018) already received"
    )
    # nothing dropped: the held file is in quarantine, byte for byte
    rows = (
        await intake.client.get(
            "/api/intake/collections/Demo-CT/held",
            headers=auth_header(mint("curator-1", coll={"Demo-CT": ["curator"]})),
        )
    ).json()
    assert any(h["reason"] == held["reason"] for h in rows)


async def test_one_patient_id_from_two_issuers_is_two_patients(intake: Platform) -> None:
    study = generate_uid()
    a = await send(intake, instance("1234", study, generate_uid(), issuer="HOSPITAL-A"))
    b = await send(intake, instance("1234", study, generate_uid(), issuer="HOSPITAL-B"))
    assert a["accepted_count"] == 1 and b["accepted_count"] == 0
    assert b["held"][0]["reason"].startswith("StudyInstanceUID (0020,000D) already received")
    # and one issuer's instances are one patient
    c = await send(intake, instance("1234", study, generate_uid(), issuer="HOSPITAL-A"))
    assert c["accepted_count"] == 0, "the study is now held as a whole"


async def test_a_changed_resend_replaces_the_instance_and_is_audited(intake: Platform) -> None:
    ds = instance("PAT-E", generate_uid(), generate_uid())
    first = await send(intake, ds)
    ds.SeriesDescription = "corrected"
    again = await send(intake, ds)
    iid = first["accepted"][0]["instance_id"]
    assert again["accepted"][0]["instance_id"] == iid
    async with intake.runtime.contexts["intake"].db.session() as s:
        audit = list(await s.scalars(select(AuditEntry).where(AuditEntry.instance_id == iid)))
    assert [(a.action, a.submission_id) for a in audit] == [("replaced", again["submission_id"])]


@pytest.mark.parametrize(
    ("keyword", "placeholder", "value", "named"),
    [
        ("StudyDate", "20240103", "2024.1.3", "(0008,0020) StudyDate does not hold a valid DA"),
        ("StudyTime", "235959", "256000", "(0008,0030) StudyTime does not hold a valid TM"),
        ("SeriesNumber", "123456", "twelve", "(0020,0011) SeriesNumber does not hold a valid IS"),
        ("SliceThickness", "7.25", "7,25", "(0018,0050) SliceThickness does not hold a valid DS"),
        ("Modality", "ZQ", "Zq", "(0008,0060) Modality does not hold a valid CS value"),
        ("StationName", "X" * 17, "X" * 17, "(0008,1010) StationName does not hold a valid SH"),
        ("FrameOfReferenceUID", "1.2.999", "1.2.abc", "(0020,0052) FrameOfReferenceUID does"),
        ("InstitutionName", "HospitalZ", "Hospital\x07", "(0008,0080) InstitutionName does"),
    ],
)
async def test_a_value_that_breaks_its_vr_is_held_naming_the_element_not_the_value(
    intake: Platform,
    caplog: pytest.LogCaptureFixture,
    keyword: str,
    placeholder: str,
    value: str,
    named: str,
) -> None:
    ds = instance("PAT-F", generate_uid(), generate_uid())
    setattr(ds, keyword, placeholder)
    data = encode(ds)
    assert data.count(placeholder.encode()) == 1
    data = data.replace(placeholder.encode(), value.encode())
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    r = await intake.client.post(
        URL, files=[("file", ("bad.dcm", data, "application/dicom"))], headers=submitter()
    )
    (held,) = r.json()["held"]
    assert named in held["reason"] and value not in held["reason"]
    assert "correct it at the source" in held["reason"]
    assert value not in caplog.text  # nor in any log line
    holds = await held_events(intake)
    assert {h.code for h in holds.values()} == {"invalid_value"}
