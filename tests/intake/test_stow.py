"""STOW-RS: a site stores instances of a collection as a multipart/related body; each takes
the path of an HTTP upload, and the answer is the PS3.18 Store Instances Response."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from dicomweb_client import DICOMwebClient
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from tests.harness import admin_headers, auth_header, make_settings, mint, runtime_app, serving
from tests.intake.helpers import ct_dataset, encode, related, served_pipeline, submitter

C = "Stow-CT"
STORED, FAILED, RETRIEVE = "00081199", "00081198", "00081190"
REASON, WARNING = "00081197", "00081196"
SOP_CLASS, SOP_INSTANCE = "00081150", "00081155"
CANNOT_UNDERSTAND, STUDY_MISMATCH, HELD = 0xC000, 0xC409, 0xB000


def series(n: int, patient: str = "STOW-1", study: str | None = None) -> list[Dataset]:
    study = study or generate_uid()
    series_uid = generate_uid()
    out = []
    for i in range(n):
        ds = ct_dataset()
        ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = patient, study, series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.InstanceNumber = i + 1
        out.append(ds)
    return out


def post(url: str, parts: list[bytes], headers: dict[str, str], **kw: Any) -> httpx.Response:
    body, ctype = related(parts)
    return httpx.post(url, content=body, headers={**headers, "Content-Type": ctype}, **kw)


def items(answer: dict[str, Any], tag: str) -> list[dict[str, Any]]:
    return list(answer.get(tag, {}).get("Value", []))


def uid(item: dict[str, Any], tag: str) -> str:
    return str((item[tag].get("Value") or [""])[0])


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with served_pipeline(tmp_path_factory.mktemp("stow"), {C: False}) as url:
        yield url


def counts(url: str, submission: str) -> dict[str, Any]:
    r = httpx.get(f"{url}/api/intake/submissions/{submission}", headers=admin_headers())
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_dicomweb_client_stores_a_series_that_goes_on_to_de_identification(site: str) -> None:
    instances = series(3)
    r = httpx.get(f"{site}/api/intake/collections/{C}/counts", headers=admin_headers())
    before = r.json()["received"]
    client = DICOMwebClient(url=f"{site}/dicomweb/collections/{C}", headers=submitter(C))
    answer = client.store_instances(instances)
    stored = answer.ReferencedSOPSequence
    assert sorted(i.ReferencedSOPInstanceUID for i in stored) == sorted(
        ds.SOPInstanceUID for ds in instances
    )
    assert {i.ReferencedSOPClassUID for i in stored} == {instances[0].SOPClassUID}
    assert "FailedSOPSequence" not in answer
    assert all("WarningReason" not in i for i in stored)

    # the same instances, now known to intake like any upload
    r = httpx.get(f"{site}/api/intake/collections/{C}/counts", headers=admin_headers())
    assert r.json()["received"] == before + 3


def test_each_request_is_a_submission_counted_by_stage(site: str) -> None:
    instances = series(2)
    r = post(
        f"{site}/dicomweb/collections/{C}/studies", [encode(d) for d in instances], submitter(C)
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/dicom+json"
    submission = r.headers["X-Imarc-Submission"]
    deadline = time.monotonic() + 60
    found = counts(site, submission)
    while found["deidentified"] < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
        found = counts(site, submission)
    assert (found["via"], found["received"], found["deidentified"]) == ("stow-rs", 2, 2)


def test_a_broken_part_fails_a_conflict_warns_and_nothing_is_dropped(site: str) -> None:
    good, other = series(1)[0], series(1, patient="STOW-2")[0]
    twin = series(1, patient="STOW-3", study=other.StudyInstanceUID)[
        0
    ]  # its study, another patient
    parts = [encode(good), b"this is not a DICOM file", encode(other)]
    first = post(f"{site}/dicomweb/collections/{C}/studies", parts, submitter(C))
    assert first.status_code == 202, first.text
    answer = first.json()
    assert [uid(i, SOP_INSTANCE) for i in items(answer, STORED)] == [
        good.SOPInstanceUID,
        other.SOPInstanceUID,
    ]
    [broken] = items(answer, FAILED)
    assert broken[REASON]["Value"] == [CANNOT_UNDERSTAND]
    # the broken part is kept in quarantine, held with its reason, as any upload would be
    r = httpx.get(
        f"{site}/api/intake/submissions/{first.headers['X-Imarc-Submission']}/held",
        headers=admin_headers(),
    )
    assert [h["code"] for h in r.json()] == ["not_part10"]

    second = post(f"{site}/dicomweb/collections/{C}/studies", [encode(twin)], submitter(C))
    assert second.status_code == 202, second.text
    [warned] = items(second.json(), STORED)
    assert uid(warned, SOP_INSTANCE) == twin.SOPInstanceUID
    assert warned[WARNING]["Value"] == [HELD]


def test_a_study_in_the_url_refuses_instances_of_other_studies(site: str) -> None:
    study = generate_uid()
    mine, stray = series(2, study=study), series(1)
    url = f"{site}/dicomweb/collections/{C}/studies/{study}"
    r = post(url, [encode(d) for d in [*mine, *stray]], submitter(C))
    assert r.status_code == 202, r.text
    assert sorted(uid(i, SOP_INSTANCE) for i in items(r.json(), STORED)) == sorted(
        d.SOPInstanceUID for d in mine
    )
    [failed] = items(r.json(), FAILED)
    assert uid(failed, SOP_INSTANCE) == stray[0].SOPInstanceUID
    assert failed[REASON]["Value"] == [STUDY_MISMATCH]
    # none of the study's: nothing stored, 409
    r = post(url, [encode(d) for d in series(1)], submitter(C))
    assert r.status_code == 409 and items(r.json(), FAILED)[0][REASON]["Value"] == [STUDY_MISMATCH]
    assert STORED not in r.json()


def test_bodies_it_cannot_take_are_refused_with_a_sentence(site: str) -> None:
    url = f"{site}/dicomweb/collections/{C}/studies"
    data = encode(series(1)[0])
    r = httpx.post(url, content=data, headers={**submitter(C), "Content-Type": "application/dicom"})
    assert r.status_code == 415 and 'type="application/dicom"' in r.json()["detail"]
    r = httpx.post(
        url,
        content=b"{}",
        headers={
            **submitter(C),
            "Content-Type": 'multipart/related; type="application/dicom+json"; boundary=x',
        },
    )
    assert r.status_code == 415
    r = httpx.post(
        url,
        content=data,
        headers={**submitter(C), "Content-Type": 'multipart/related; type="application/dicom"'},
    )
    assert r.status_code == 400 and "boundary" in r.json()["detail"]
    r = httpx.post(
        url,
        content=b"no parts at all",
        headers={
            **submitter(C),
            "Content-Type": 'multipart/related; type="application/dicom"; boundary=zz',
        },
    )
    assert r.status_code == 400 and "part" in r.json()["detail"]
    r = post(url, [b"not DICOM"], submitter(C))
    assert r.status_code == 409 and items(r.json(), FAILED)[0][REASON]["Value"] == [
        CANNOT_UNDERSTAND
    ]


def test_who_may_store(site: str) -> None:
    data = [encode(series(1)[0])]
    url = f"{site}/dicomweb/collections/{C}/studies"
    assert post(url, data, {}).status_code == 401
    r = post(url, data, auth_header(mint("someone", coll={"Other": ["submitter"]})))
    assert r.status_code == 403 and C in r.json()["detail"]
    r = post(f"{site}/dicomweb/collections/Nope/studies", data, submitter("Nope"))
    assert r.status_code == 404 and "imarc collections create" in r.json()["detail"]


def test_a_part_past_the_file_limit_is_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, intake_max_file_bytes=100_000)
    with serving(runtime_app(settings, ["intake"])[1]) as url:
        r = httpx.post(
            f"{url}/api/intake/collections",
            json={"name": C, "licence": "CC-BY-4.0"},
            headers=admin_headers(),
        )
        assert r.status_code == 201, r.text
        small = encode(series(1)[0])
        big = small + b"\0" * 200_000
        r = post(f"{url}/dicomweb/collections/{C}/studies", [small, big], submitter(C))
        assert r.status_code == 413 and "IMARC_INTAKE_MAX_FILE_BYTES" in r.json()["detail"]
        r = httpx.get(f"{url}/api/intake/collections/{C}/counts", headers=admin_headers())
        assert r.json() == {"received": 0, "held": 0}
    stored = [p for p in tmp_path.rglob("*") if p.is_file() and "quarantine" in p.parts]
    assert stored == []


def test_the_parser_takes_the_body_dicomweb_client_sends(site: str) -> None:
    """Quoted boundary, a leading CRLF, chunked transfer: what the client library sends."""
    ds = series(1)[0]
    body, ctype = related([encode(ds)], boundary=str(uuid.uuid4()))

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(body), 1000):
            yield body[i : i + 1000]

    r = httpx.post(
        f"{site}/dicomweb/collections/{C}/studies",
        content=chunks(),
        headers={**submitter(C), "Content-Type": ctype},
    )
    assert r.status_code == 200, r.text
    assert [uid(i, SOP_INSTANCE) for i in items(r.json(), STORED)] == [ds.SOPInstanceUID]
    assert pydicom.Dataset.from_json(r.json()).ReferencedSOPSequence[0].ReferencedSOPInstanceUID
