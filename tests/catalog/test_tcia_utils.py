"""Unmodified tcia_utils (its ``nbia`` module, as published) against a catalog served on a
loopback port: every search function that talks to an NBIA server, and the v1 forms
older clients call. Only ``setApiUrl`` is redirected, to this server."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from pydicom import Dataset
from pydicom.sequence import Sequence
from tcia_utils import nbia

from tests.catalog import helpers as h
from tests.harness import auth_header, make_settings, mint, platform, runtime_app, serving

RELEASED = datetime(2023, 8, 7, 10, 30, tzinfo=UTC)
DOI = "10.7937/demo.ct"


@dataclass
class Archive:
    url: str
    ct: list[Dataset]
    mr: list[Dataset]
    seg: list[Dataset]
    cart: str


def _segmentation(of: list[Dataset]) -> list[Dataset]:
    """A SEG-like series referencing ``of`` (ReferencedSeriesSequence, PS3.3 C.8.20)."""
    seg = h.ct(1, patient_id=of[0].PatientID, study_uid=of[0].StudyInstanceUID, Modality="SEG")
    ref = Dataset()
    ref.SeriesInstanceUID = of[0].SeriesInstanceUID
    inst = Dataset()
    inst.ReferencedSOPInstanceUID = of[0].SOPInstanceUID
    ref.ReferencedInstanceSequence = Sequence([inst])
    seg[0].ReferencedSeriesSequence = Sequence([ref])
    return seg


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    data = tmp_path_factory.mktemp("nbia")
    ct = h.ct(3, patient_id="TCIA-1", BodyPartExamined="CHEST")
    mr = h.mr(2, patient_id="TCIA-2", BodyPartExamined="HEAD")
    seg = _segmentation(ct)
    cart: dict[str, str] = {}

    async def load(data_dir: Path) -> None:
        async with platform(data_dir, services=["catalog"]) as p:
            await h.deliver(p, *(h.published(s, released_at=RELEASED) for s in (ct, mr, seg)))
            r = await p.client.post(
                "/api/catalog/carts",
                json={"series": [mr[0].SeriesInstanceUID, ct[0].SeriesInstanceUID]},
                headers=auth_header(mint("sharer")),
            )
            assert r.status_code == 201, r.text
            cart["name"] = r.json()["name"]

    asyncio.run(load(data))
    with serving(runtime_app(make_settings(data), ["catalog"])[1]) as url:
        yield Archive(url, ct, mr, seg, cart["name"])


@pytest.fixture(autouse=True)
def redirected(archive: Archive, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    base = f"{archive.url}/nbia-api/services"
    monkeypatch.setattr(
        nbia,
        "setApiUrl",
        lambda endpoint, api_url="nbia": (
            f"{base}/v1/" if endpoint == "getContentsByName" else f"{base}/v4/"
        ),
    )
    monkeypatch.chdir(tmp_path)  # files tcia_utils writes (CSV, manifests) land here


def test_value_lists_and_counts(archive: Archive) -> None:
    assert list(nbia.getCollections(format="df")["Collection"]) == ["Demo-CT"]
    assert [m["Modality"] for m in nbia.getModality(collection="Demo-CT")] == ["CT", "MR", "SEG"]
    assert nbia.getBodyPart(modality="MR") == [{"BodyPartExamined": "HEAD"}]
    assert nbia.getManufacturer(collection="demo-ct", modality="MR") == [
        {"Manufacturer": "TOSHIBA_MEC"}
    ]
    assert nbia.getCollectionPatientCounts() == [
        {"Collection": "Demo-CT", "Count": 2, "Authorized": 1}
    ]
    counts = {m["Modality"]: m["Count"] for m in nbia.getModalityCounts(collection="Demo-CT")}
    assert counts == {"CT": 1, "MR": 1, "SEG": 1}
    assert {b["BodyPart"] for b in nbia.getBodyPartCounts()} == {"CHEST", "HEAD"}
    assert nbia.getManufacturerCounts(modality="MR")[0]["Manufacturer"] == "TOSHIBA_MEC"
    descriptions = nbia.getCollectionDescriptions(format="df", removeHtml="yes")
    assert list(descriptions["collectionName"]) == ["Demo-CT"]
    assert "<p>" not in descriptions["description"][0]


def test_patients_studies_and_series(archive: Archive) -> None:
    patients = nbia.getPatient(collection="Demo-CT")
    assert [p["PatientId"] for p in patients] == ["TCIA-1", "TCIA-2"]
    assert patients[0]["SpeciesDescription"] == "Homo sapiens" and patients[0]["Phantom"] == "NO"
    assert nbia.getPatientByCollectionAndModality("Demo-CT", "MR") == [
        {"PatientId": "TCIA-2", "Authorized": 1}
    ]
    assert len(nbia.getNewPatientsInCollection("Demo-CT", "2023/08/01")) == 2
    assert nbia.getNewPatientsInCollection("Demo-CT", "2023/09/01") is None  # empty body
    studies = nbia.getStudy("Demo-CT", patientId="TCIA-1")
    assert [(s["PatientID"], s["SeriesCount"]) for s in studies] == [("TCIA-1", 2)]
    assert len(nbia.getNewStudiesInPatient("Demo-CT", "TCIA-1", "2023/08/01")) == 1

    df = nbia.getSeries(collection="Demo-CT", format="df")
    assert len(df) == 3 and {"SeriesInstanceUID", "LicenseName", "DateReleased"} <= set(df)
    assert set(df["DateReleased"]) == {"08-07-2023"}
    updated = nbia.getUpdatedSeries("2023/08/01")
    assert len(updated) == 3
    uid = archive.ct[0].SeriesInstanceUID
    assert nbia.getSeriesSize(uid) == [{"TotalSizeInBytes": 3003, "ObjectCount": 3}]
    sops = nbia.getSopInstanceUids(uid)
    assert [s["SOPInstanceUID"] for s in sops] == [ds.SOPInstanceUID for ds in archive.ct]
    listed = nbia.getSeriesList([uid, archive.mr[0].SeriesInstanceUID])
    assert listed.loc[0, "SeriesInstanceUID"] == uid and len(listed) == 2
    report = nbia.reportCollectionSummary(nbia.getSeries(collection="Demo-CT"), format="")
    assert report is not None


def test_dicom_tags_and_segmentation_reference(archive: Archive) -> None:
    tags = nbia.getDicomTags(archive.ct[0].SeriesInstanceUID)
    assert "(0008,0060)" in set(tags["element"])
    assert nbia.getSegRefSeries(archive.seg[0].SeriesInstanceUID) == archive.ct[0].SeriesInstanceUID


def test_shared_cart_and_doi(archive: Archive) -> None:
    cart = nbia.getSharedCart(archive.cart)
    assert [s["SeriesInstanceUID"] for s in cart] == [
        archive.mr[0].SeriesInstanceUID, archive.ct[0].SeriesInstanceUID,
    ]  # fmt: skip
    assert cart[0]["Date Released"].startswith("2023-08-07 ")
    assert "Authorized" not in cart[0]
    assert nbia.getSharedCart("nbia-0") is None
    assert nbia.getDoiMetadata(DOI) == [
        {"collection": "Demo-CT", "thirdPartyAnanlysis": "NO", "authorized": 1}
    ]
    series = nbia.getDoiMetadata(f"https://doi.org/{DOI}", output="series")
    assert len(series) == 3 and {s["collection"] for s in series} == {"Demo-CT"}


def test_simple_search_and_its_manifests(archive: Archive) -> None:
    found = nbia.getSimpleSearch(collections=["Demo-CT"], modalities=["MR"])
    assert found["totalPatients"] == 1
    assert found["resultSet"][0]["subjectId"] == "TCIA-2"
    assert found["modalities"] == [{"value": "MR", "count": 1}]
    everyone = nbia.getSimpleSearch(size=1, sortDirection="descending")
    assert everyone["totalPatients"] == 2 and len(everyone["resultSet"]) == 1
    assert everyone["resultSet"][0]["subjectId"] == "TCIA-2"
    anded = nbia.getSimpleSearch(modalities=["CT", "SEG"], modalityAnded=True)
    assert [p["subjectId"] for p in anded["resultSet"]] == ["TCIA-1"]
    later = nbia.getSimpleSearch(fromDate="2024/01/01", toDate="2024/12/31")
    assert later["totalPatients"] == 0

    uids = nbia.getSimpleSearch(patients=["TCIA-1"], format="uids")
    assert sorted(uids) == sorted(
        [archive.ct[0].SeriesInstanceUID, archive.seg[0].SeriesInstanceUID]
    )
    text = nbia.getSimpleSearch(modalities=["MR"], format="manifest_text")
    lines = text.split("\n")
    assert lines[0].startswith("downloadServerUrl=") and lines[1] == "includeAnnotation=false"
    Path("m.tcia").write_text(text)
    assert nbia.manifestToList("m.tcia") == [archive.mr[0].SeriesInstanceUID]


def _post(archive: Archive, path: str, data: dict) -> httpx.Response:
    return httpx.post(f"{archive.url}/nbia-api/services/{path}", data=data)


def test_legacy_search_and_manifest_endpoints(archive: Archive) -> None:
    form = {"criteriaType0": "ImageModalityCriteria", "value0": "CT", "sortField": "subject",
            "sortDirection": "ascending", "start": "0", "size": "10"}  # fmt: skip
    r = _post(archive, "getSimpleSearchWithModalityAndBodyPartPaged", form)
    assert r.status_code == 200 and r.json()["resultSet"][0]["subjectId"] == "TCIA-1"
    r = _post(archive, "v4/getSimpleSearch", {k: v for k, v in form.items() if k != "start"})
    assert r.status_code == 400 and r.text == "A parameter, start is required for this API call."
    uid = archive.mr[0].SeriesInstanceUID
    r = _post(archive, "getManifestTextV2", {"list": uid, "includeAnnotation": "true"})
    assert r.headers["content-type"].startswith("application/x-nbia-manifest-file")
    lines = r.text.split("\n")
    assert len(lines) == 8 and lines[1] == "includeAnnotation=true" and lines[6] == uid
    assert lines[3].startswith("databasketId=manifest-") and lines[4] == "manifestVersion=3.0"


def test_v1_forms(archive: Archive) -> None:
    v1 = f"{archive.url}/nbia-api/services/v1"
    rows = httpx.get(f"{v1}/getSeries", params={"Collection": "Demo-CT", "Modality": "CT"}).json()
    assert len(rows) == 1 and "Authorized" not in rows[0] and "Site" not in rows[0]
    assert rows[0]["TimeStamp"].startswith("2023-08-07 10:30:00")
    assert rows[0]["SeriesDate"] == "1997-04-30 00:00:00.0"
    assert rows[0]["CollectionURI"] == f"https://doi.org/{DOI}"
    patients = httpx.get(f"{v1}/getPatient", params={"Collection": "Demo-CT"}).json()
    assert list(patients[0])[:2] == ["PatientId", "PatientName"] and "Authorized" not in patients[0]
    r = httpx.get(
        f"{v1}/NewPatientsInCollection", params={"Collection": "Demo-CT", "Date": "2023/08/01"}
    )
    assert len(r.json()) == 2
    r = httpx.get(f"{v1}/getUpdatedSeries", params={"fromDate": "01/08/2023", "format": "csv"})
    assert r.text.startswith('"SeriesInstanceUID","StudyInstanceUID"') and r.text.count("\n") == 4
    r = httpx.get(
        f"{v1}/getSeriesMetaData", params={"SeriesInstanceUID": archive.ct[0].SeriesInstanceUID}
    )
    meta = r.json()[0]
    assert meta["Series UID"] == archive.ct[0].SeriesInstanceUID and meta["Subject ID"] == "TCIA-1"
    assert meta["SOP Class UID"] == archive.ct[0].SOPClassUID and meta["Number of Images"] == 3
    r = httpx.get(f"{v1}/getSeriesMetaData", params={"SeriesInstanceUID": "1.2.3"})
    assert r.status_code == 204
    r = httpx.get(f"{v1}/getSeries", params={"unknown": "ignored"})
    assert r.status_code == 200 and len(r.json()) == 3
    r = httpx.get(f"{archive.url}/nbia-api/services/getCollectionValuesAndCounts")
    assert r.json() == [{"Collection": "Demo-CT", "Count": 2, "Authorized": 1}]
