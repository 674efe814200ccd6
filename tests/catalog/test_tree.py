"""The patient → study → series tree stays whole when one StudyInstanceUID arrives under
two patients, or in two collections (intake stops such data at the door; the catalog must
still not corrupt itself)."""

from __future__ import annotations

import csv
import io

from tests.catalog import helpers as h
from tests.harness import Platform, auth_header, mint

V4 = "/nbia-api/services/v4"
STUDY = "1.2.826.0.1.3680043.10.999.1"


async def get(p: Platform, endpoint: str, token: str | None = None, **params: str) -> list[dict]:
    headers = auth_header(token) if token else {}
    r = await p.client.get(f"{V4}/{endpoint}", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json() if r.content else []


def studies_by_patient(rows: list[dict]) -> dict[str, tuple[str, int]]:
    return {r["PatientID"]: (r["StudyInstanceUID"], r["SeriesCount"]) for r in rows}


async def test_one_study_uid_under_two_patients_is_two_studies(catalog: Platform) -> None:
    a = h.ct(2, patient_id="PAT-A", study_uid=STUDY, StudyID="A-1")
    b = h.mr(1, patient_id="PAT-B", study_uid=STUDY, StudyID="B-1")
    await h.deliver(catalog, h.published(a), h.published(b))

    assert studies_by_patient(await get(catalog, "getPatientStudy")) == {
        "PAT-A": (STUDY, 1),
        "PAT-B": (STUDY, 1),
    }
    assert len(await get(catalog, "getPatientStudy", PatientID="PAT-A")) == 1
    assert len(await get(catalog, "getPatientStudy", StudyInstanceUID=STUDY)) == 2
    summary = (await catalog.client.get("/api/catalog/collections")).json()
    assert (summary[0]["patients"], summary[0]["studies"], summary[0]["series"]) == (2, 2, 2)

    # each series' metadata comes from its own patient's study
    r = await catalog.client.post(
        f"{V4}/getSeriesMetadata",
        data={"list": f"{a[0].SeriesInstanceUID},{b[0].SeriesInstanceUID}"},
    )
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [(x["PatientID"], x["StudyID"]) for x in rows] == [("PAT-A", "A-1"), ("PAT-B", "B-1")]

    # withdrawing one patient's series leaves the other patient's study as it was
    await h.deliver(catalog, h.withdrawn("Demo-CT", b[0].SeriesInstanceUID))
    assert studies_by_patient(await get(catalog, "getPatientStudy")) == {"PAT-A": (STUDY, 1)}
    assert [p["PatientId"] for p in await get(catalog, "getPatient")] == ["PAT-A"]


async def test_a_study_uid_in_a_limited_collection_reveals_nothing_in_a_public_one(
    catalog: Platform,
) -> None:
    limited = h.collection("Secret-MR", licence=h.TCIA_RESTRICTED, access="limited")
    public = h.ct(1, patient_id="PUB-1", study_uid=STUDY)
    secret = h.mr(3, patient_id="PUB-1", study_uid=STUDY)
    await h.deliver(catalog, h.published(public), h.published(secret, limited))

    # anonymous: the public study counts its own series only
    assert [(s["Collection"], s["SeriesCount"]) for s in await get(catalog, "getPatientStudy")] == [
        ("Demo-CT", 1)
    ]
    token = mint("alice", lic=["tcia-restricted"], dup=True)
    rows = await get(catalog, "getPatientStudy", token)
    assert [(s["Collection"], s["SeriesCount"]) for s in rows] == [("Demo-CT", 1), ("Secret-MR", 1)]

    await h.deliver(catalog, h.withdrawn("Demo-CT", public[0].SeriesInstanceUID))
    assert await get(catalog, "getPatientStudy") == []
    rows = await get(catalog, "getPatientStudy", token)
    assert [(s["Collection"], s["SeriesCount"]) for s in rows] == [("Secret-MR", 1)]
