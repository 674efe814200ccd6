"""DICOMweb QIDO-RS searches, as dicomweb-client (unmodified) makes them against a catalog
served on a loopback port, fed with series built from pydicom's real CT and MR files."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from dicomweb_client import DICOMwebClient
from pydicom import Dataset

from tests.catalog import helpers as h
from tests.harness import auth_header, make_settings, mint, platform, runtime_app, serving

VIEWER = "https://viewer.example"
S1, S2 = "1.2.826.0.1.3680043.10.1.1", "1.2.826.0.1.3680043.10.1.2"


@dataclass
class Archive:
    url: str
    chest: list[Dataset]  # CT, patient QIDO-1, study S1
    head: list[Dataset]  # MR, patient QIDO-1, study S1
    other: list[Dataset]  # CT, patient QIDO-2, study S2
    secret: list[Dataset]  # MR in a limited collection

    def client(self, token: str | None = None) -> DICOMwebClient:
        headers = auth_header(token) if token else None
        return DICOMwebClient(url=f"{self.url}/dicomweb", headers=headers)


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Archive]:
    data = tmp_path_factory.mktemp("qido")
    chest = h.ct(3, patient_id="QIDO-1", study_uid=S1, SeriesDescription="Chest 5mm")
    head = h.mr(2, patient_id="QIDO-1", study_uid=S1)
    other = h.ct(1, patient_id="QIDO-2", study_uid=S2, StudyDate="20200315")
    other[0].AccessionNumber = "ACC-42"
    secret = h.mr(1, patient_id="SECRET-1")
    limited = h.collection("Secret-MR", licence=h.TCIA_RESTRICTED, access="limited")

    async def load(data_dir: Path) -> None:
        async with platform(data_dir, services=["catalog"]) as p:
            await h.deliver(
                p,
                h.published(chest),
                h.published(head),
                h.published(other),
                h.published(secret, limited),
            )

    asyncio.run(load(data))
    settings = make_settings(data, dicomweb_cors_origins=VIEWER)
    with serving(runtime_app(settings, ["catalog"])[1]) as url:
        yield Archive(url, chest, head, other, secret)


def values(obj: dict, keyword_tag: str) -> list:
    return obj.get(keyword_tag, {}).get("Value", [])


def uids(found: list[dict], tag: str) -> list[str]:
    return [values(o, tag)[0] for o in found]


STUDY_UID, SERIES_UID, SOP_UID = "0020000D", "0020000E", "00080018"


def test_search_for_studies_counts_series_and_modalities(archive: Archive) -> None:
    studies = archive.client().search_for_studies()
    assert uids(studies, STUDY_UID) == [S1, S2]  # not the limited collection's study
    first = studies[0]
    assert values(first, "00080061") == ["CT", "MR"]  # ModalitiesInStudy
    assert values(first, "00201206") == [2]  # NumberOfStudyRelatedSeries
    assert values(first, "00201208") == [5]  # NumberOfStudyRelatedInstances
    assert values(first, "00100020") == ["QIDO-1"]
    assert "00080020" in first and "00200010" in first  # StudyDate, StudyID
    assert "00280010" not in first  # Rows is not a study attribute


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"StudyDate": "20200101-20201231"}, [S2]),  # a range
        ({"StudyDate": "-20101231"}, [S1]),  # open start
        ({"StudyDate": "20200315"}, [S2]),  # a single date
        ({"AccessionNumber": "ACC-42"}, [S2]),  # any attribute of the header
        ({"PatientName": "compressedsamples^mr1"}, [S1]),  # person names ignore case
        ({"PatientName": "*MR?"}, [S1]),  # wildcards
        ({"PatientID": "QIDO-2"}, [S2]),
        ({"ModalitiesInStudy": "MR"}, [S1]),
        ({"StudyInstanceUID": f"{S2},1.2.3"}, [S2]),  # a list of UIDs
        ({"StudyDescription": "*"}, [S1, S2]),
        ({"00100020": "QIDO-1"}, [S1]),  # a tag instead of a keyword
    ],
)
def test_search_for_studies_matching(archive: Archive, filters: dict, expected: list) -> None:
    found = archive.client().search_for_studies(search_filters=filters)
    assert uids(found, STUDY_UID) == expected


def test_search_for_series_and_instances(archive: Archive) -> None:
    client = archive.client()
    series = client.search_for_series(study_instance_uid=S1)
    assert sorted(uids(series, SERIES_UID)) == sorted(
        [archive.chest[0].SeriesInstanceUID, archive.head[0].SeriesInstanceUID]
    )
    by_uid = {values(s, SERIES_UID)[0]: s for s in series}
    chest = by_uid[archive.chest[0].SeriesInstanceUID]
    assert values(chest, "00201209") == [3]  # NumberOfSeriesRelatedInstances
    assert values(chest, "00080060") == ["CT"]

    found = client.search_for_series(search_filters={"SeriesDescription": "Chest*"})
    assert uids(found, SERIES_UID) == [archive.chest[0].SeriesInstanceUID]
    assert values(found[0], STUDY_UID) == [S1]
    assert client.search_for_series(search_filters={"Modality": "MR", "PatientID": "QIDO-2"}) == []

    uid = archive.chest[0].SeriesInstanceUID
    instances = client.search_for_instances(S1, uid, fields=["ImageType"])
    assert uids(instances, SOP_UID) == [ds.SOPInstanceUID for ds in archive.chest]
    assert values(instances[0], "00080008") == ["ORIGINAL", "PRIMARY", "AXIAL"]
    assert values(instances[0], "00200013") == [1]  # InstanceNumber
    page = client.search_for_instances(S1, uid, limit=2, offset=1)
    assert uids(page, SOP_UID) == [ds.SOPInstanceUID for ds in archive.chest[1:]]
    one = client.search_for_instances(
        search_filters={"SOPInstanceUID": archive.head[1].SOPInstanceUID}
    )
    assert uids(one, SOP_UID) == [archive.head[1].SOPInstanceUID]
    assert values(one[0], SERIES_UID) == [archive.head[0].SeriesInstanceUID]
    everything = client.search_for_series(study_instance_uid=S2, fields=["all"])
    assert values(everything[0], "00080050") == ["ACC-42"] and "00280030" in everything[0]


def test_limited_collection_needs_its_licence(archive: Archive) -> None:
    secret_study = archive.secret[0].StudyInstanceUID
    assert archive.client().search_for_series(study_instance_uid=secret_study) == []
    token = mint("alice", lic=["tcia-restricted"], dup=True)
    studies = archive.client(token).search_for_studies()
    assert secret_study in uids(studies, STUDY_UID)
    paged = archive.client(token).search_for_studies(limit=1, offset=2)
    assert len(paged) == 1
    unsigned = mint("dave", lic=["tcia-restricted"])  # the data usage policy not accepted
    assert secret_study not in uids(archive.client(unsigned).search_for_studies(), STUDY_UID)


def test_a_bad_search_is_a_400_saying_what_to_change(archive: Archive) -> None:
    r = httpx.get(f"{archive.url}/dicomweb/studies", params={"NoSuchKeyword": "x"})
    assert r.status_code == 400
    assert "NoSuchKeyword is not a DICOM attribute keyword" in r.json()["detail"]
    r = httpx.get(f"{archive.url}/dicomweb/studies", params={"StudyDate": "yesterday"})
    assert r.status_code == 400 and "20200131" in r.json()["detail"]
    r = httpx.get(f"{archive.url}/dicomweb/series", params={"limit": "0"})
    assert r.status_code == 400 and "limit" in r.json()["detail"]


def test_cors_for_the_configured_viewer_only(archive: Archive) -> None:
    url = f"{archive.url}/dicomweb/studies"
    preflight = httpx.options(
        url, headers={"Origin": VIEWER, "Access-Control-Request-Method": "GET"}
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == VIEWER
    assert "Authorization" in preflight.headers["access-control-allow-headers"]
    r = httpx.get(url, headers={"Origin": VIEWER})
    assert r.headers["access-control-allow-origin"] == VIEWER
    assert r.headers["content-type"] == "application/dicom+json"
    r = httpx.get(url, headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in r.headers
