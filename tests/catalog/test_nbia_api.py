"""The NBIA v4 search API as tcia_utils calls it, on a catalog fed with series.published
events built from pydicom's real CT and MR files."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from services.catalog.domain import SERIES_COLS
from services.catalog.models import series
from tests.catalog import helpers as h
from tests.harness import Platform, auth_header, mint

V4 = "/nbia-api/services/v4"
RELEASED = datetime(2023, 8, 7, 10, 30, tzinfo=UTC)


async def get(p: Platform, endpoint: str, token: str | None = None, **params: str) -> list[dict]:
    r = await p.client.get(
        f"{V4}/{endpoint}", params=params, headers=auth_header(token) if token else {}
    )
    assert r.status_code == 200, r.text
    if not r.content:
        return []
    assert r.headers["content-type"].startswith("application/json")
    return r.json()


async def body(p: Platform, endpoint: str, **params: str) -> bytes:
    r = await p.client.get(f"{V4}/{endpoint}", params=params)
    assert r.status_code == 200, r.text
    return r.content


async def test_get_series_has_nbia_fields_in_order_without_nulls(catalog: Platform) -> None:
    ct = h.ct(3, patient_id="DEMO-0001")
    mr = h.mr(2, patient_id="DEMO-0002")
    await h.deliver(catalog, h.published(ct, released_at=RELEASED), h.published(mr))

    rows = await get(catalog, "getSeries", Collection="demo-ct")  # case-insensitive
    assert len(rows) == 2
    by_modality = {r["Modality"]: r for r in rows}
    row = by_modality["CT"]
    assert list(row) == [c for c in SERIES_COLS if c in row]  # NBIA's column order
    assert None not in row.values()
    assert "ProtocolName" not in row and "BodyPartExamined" not in row  # absent from CT_small
    assert row["SeriesInstanceUID"] == ct[0].SeriesInstanceUID
    assert row["StudyInstanceUID"] == ct[0].StudyInstanceUID
    assert row["SeriesDate"] == "04-30-1997"  # SeriesDate 19970430
    assert row["StudyDate"] == "01-19-2004"
    assert row["DateReleased"] == "08-07-2023"
    assert row["ImageCount"] == 3 and isinstance(row["ImageCount"], int)
    assert row["FileSize"] == 1000 + 1001 + 1002
    assert row["SeriesNumber"] == 1
    assert row["Manufacturer"] == "GE MEDICAL SYSTEMS"
    assert row["PatientID"] == "DEMO-0001"
    assert row["Site"] == "Site-A"
    assert row["LicenseName"] == "CC BY 4.0"
    assert row["LicenseURI"] == "https://creativecommons.org/licenses/by/4.0/"
    assert row["DataDescriptionURI"] == "https://doi.org/10.7937/demo.ct"
    assert row["ReleasedStatus"] == "Yes" and row["ThirdPartyAnalysis"] == "NO"
    assert row["Authorized"] == 1
    assert "TimeStamp" not in row

    assert [r["Modality"] for r in await get(catalog, "getSeries", Modality="mr")] == ["MR"]
    only = await get(catalog, "getSeries", PatientID="demo-0002")
    assert [r["SeriesInstanceUID"] for r in only] == [mr[0].SeriesInstanceUID]
    exact = await get(catalog, "getSeries", SeriesInstanceUID=ct[0].SeriesInstanceUID)
    assert len(exact) == 1
    # UIDs match exactly, not case- or prefix-insensitively
    assert await body(catalog, "getSeries", StudyInstanceUID=ct[0].StudyInstanceUID[:-1]) == b""


# real archives hold lower-case Body Part Examined values, which pydicom warns about
@pytest.mark.filterwarnings("ignore:Invalid value for VR CS")
async def test_value_lists_and_counts(catalog: Platform) -> None:
    ct = h.ct(2, patient_id="P1", BodyPartExamined="chest")
    ct2 = h.ct(1, patient_id="P2", BodyPartExamined="CHEST")
    mr = h.mr(1, patient_id="P2", BodyPartExamined="HEAD")
    other = h.ct(1, patient_id="Q1", BodyPartExamined="ABDOMEN")
    await h.deliver(
        catalog,
        h.published(ct),
        h.published(ct2),
        h.published(mr),
        h.published(other, h.collection("Other-CT")),
    )
    assert await get(catalog, "getCollectionValues") == [
        {"Collection": "Demo-CT"},
        {"Collection": "Other-CT"},
    ]
    assert await get(catalog, "getModalityValues", Collection="Demo-CT") == [
        {"Modality": "CT"},
        {"Modality": "MR"},
    ]
    assert await get(catalog, "getModalityValues", BodyPartExamined="head") == [{"Modality": "MR"}]
    parts = await get(catalog, "getBodyPartValues", Collection="demo-ct", Modality="CT")
    assert sorted(r["BodyPartExamined"] for r in parts) == ["CHEST", "chest"]
    assert await get(catalog, "getManufacturerValues", Modality="MR") == [
        {"Manufacturer": "TOSHIBA_MEC"}
    ]

    assert await get(catalog, "getCollectionValuesAndCounts") == [
        {"Collection": "Demo-CT", "Count": 2, "Authorized": 1},
        {"Collection": "Other-CT", "Count": 1, "Authorized": 1},
    ]
    # counts are distinct patients: P1 has two CT instances, P2 one CT series
    assert await get(catalog, "getModalityValuesAndCounts", Collection="Demo-CT") == [
        {"Modality": "CT", "Count": 2, "Authorized": 1},
        {"Modality": "MR", "Count": 1, "Authorized": 1},
    ]
    # BodyPart is upper-cased, so "chest" and "CHEST" count together
    assert await get(catalog, "getBodyPartValuesAndCounts", Collection="Demo-CT") == [
        {"BodyPart": "CHEST", "Count": 2, "Authorized": 1},
        {"BodyPart": "HEAD", "Count": 1, "Authorized": 1},
    ]
    counts = await get(catalog, "getManufacturerValuesAndCounts", Modality="CT")
    assert counts == [{"Manufacturer": "GE MEDICAL SYSTEMS", "Count": 3, "Authorized": 1}]

    # single-column CSV is bare; multi-column CSV quotes every field
    assert await body(catalog, "getCollectionValues", format="csv") == (
        b"Collection\nDemo-CT\nOther-CT\n"
    )
    assert (await body(catalog, "getCollectionValuesAndCounts", format="CSV")).startswith(
        b'"Collection","Count","Authorized"\n"Demo-CT","2","1"\n'
    )
    # NBIA refuses a format parameter on this one endpoint
    r = await catalog.client.get(f"{V4}/getModalityValuesAndCounts", params={"format": "csv"})
    assert r.status_code == 400 and "Invalid query parameter: 'format'" in r.text


async def test_patients_and_studies(catalog: Platform) -> None:
    study = "1.2.3.4.5.6.7"
    a = h.ct(1, patient_id="DEMO-0001", study_uid=study)
    b = h.ct(2, patient_id="DEMO-0001", study_uid=study, SeriesNumber=2)
    c = h.mr(1, patient_id="DEMO-0002")
    await h.deliver(
        catalog,
        h.published(a, released_at=RELEASED),
        h.published(b, released_at=RELEASED),
        h.published(c, released_at=RELEASED + timedelta(days=30)),
    )
    patients = await get(catalog, "getPatient", Collection="DEMO-CT")
    assert [p["PatientId"] for p in patients] == ["DEMO-0001", "DEMO-0002"]
    first = patients[0]
    assert list(first) == [
        "PatientId", "PatientName", "PatientSex", "Collection", "Phantom", "SpeciesCode",
        "SpeciesDescription", "Authorized",
    ]  # fmt: skip
    assert first["PatientName"] == "CompressedSamples^CT1"
    assert (first["Phantom"], first["SpeciesCode"], first["SpeciesDescription"]) == (
        "NO", "337915000", "Homo sapiens",
    )  # fmt: skip
    assert await get(catalog, "getPatient", PatientId="demo-0002") == [patients[1]]

    assert await get(
        catalog, "getPatientByCollectionAndModality", Collection="Demo-CT", Modality="MR"
    ) == [{"PatientId": "DEMO-0002", "Authorized": 1}]

    new = await get(catalog, "NewPatientsInCollection", Collection="Demo-CT", fromDate="09-01-2023")
    assert [p["PatientId"] for p in new] == ["DEMO-0002"]
    # inclusive of the day itself
    same_day = await get(
        catalog, "NewPatientsInCollection", Collection="Demo-CT", fromDate="08-07-2023"
    )
    assert len(same_day) == 2

    studies = await get(catalog, "getPatientStudy", Collection="Demo-CT", PatientID="demo-0001")
    assert len(studies) == 1
    s = studies[0]
    assert s["StudyInstanceUID"] == study
    assert s["SeriesCount"] == 2
    assert s["StudyDate"] == "01-19-2004"
    assert s["PatientName"] == "CompressedSamples^CT1"
    assert list(s)[:2] == ["StudyInstanceUID", "StudyDate"] and list(s)[-1] == "Authorized"
    assert await get(catalog, "getPatientStudy", StudyInstanceUID=study) == studies

    later = await get(
        catalog, "NewStudiesInPatientCollection", Collection="Demo-CT", fromDate="08-08-2023"
    )
    assert [x["PatientID"] for x in later] == ["DEMO-0002"]

    r = await catalog.client.get(f"{V4}/NewPatientsInCollection", params={"Collection": "Demo-CT"})
    assert r.status_code == 400
    assert r.text == "A parameter, fromDate is required for this API call."
    r = await catalog.client.get(
        f"{V4}/NewStudiesInPatientCollection",
        params={"Collection": "Demo-CT", "fromDate": "2023/08/01"},
    )
    assert r.status_code == 400 and "MM-DD-YYYY" in r.text


async def test_no_result_is_an_empty_200(catalog: Platform) -> None:
    for endpoint, params in [
        ("getCollectionValues", {}),
        ("getSeries", {"Collection": "Nope"}),
        ("getPatient", {"Collection": "Nope"}),
        ("getPatientStudy", {}),
        ("getModalityValues", {}),
        ("getBodyPartValuesAndCounts", {}),
        ("getSeriesSize", {"SeriesInstanceUID": "1.2.3"}),
        ("getSOPInstanceUIDs", {"SeriesInstanceUID": "1.2.3"}),
        ("getDicomTags", {"SeriesUID": "1.2.3"}),
        ("getUpdatedSeries", {"fromDate": "01-01-2000"}),
        ("getSeries", {"Collection": "Nope", "format": "csv"}),
    ]:
        assert await body(catalog, endpoint, **params) == b"", endpoint
    r = await catalog.client.post(f"{V4}/getSeriesMetadata", data={"list": "1.2.3"})
    assert r.status_code == 200 and r.content == b""


async def test_unknown_or_missing_parameters_are_400(catalog: Platform) -> None:
    r = await catalog.client.get(f"{V4}/getSeries", params={"collection": "Demo-CT"})
    assert r.status_code == 400
    assert r.text == (
        "Invalid query parameter: 'collection'. Allowed parameters are: [Collection, "
        "PatientID, StudyInstanceUID, SeriesInstanceUID, Modality, BodyPartExamined, "
        "Manufacturer, ManufacturerModelName, format]"
    )
    # getPatient spells it PatientId
    r = await catalog.client.get(f"{V4}/getPatient", params={"PatientID": "X"})
    assert r.status_code == 400 and "'PatientID'" in r.text
    r = await catalog.client.get(f"{V4}/getSOPInstanceUIDs")
    assert r.status_code == 400
    assert r.text == "A parameter, SeriesInstanceUID is required for this API call."
    r = await catalog.client.get(f"{V4}/getSeries", params={"format": "yaml"})
    assert r.status_code == 400 and "json" in r.text


async def test_series_size_sop_uids_and_dicom_tags(catalog: Platform) -> None:
    ct = h.ct(3)
    await h.deliver(catalog, h.published(ct, size=500))
    uid = ct[0].SeriesInstanceUID
    assert await get(catalog, "getSeriesSize", SeriesInstanceUID=uid) == [
        {"TotalSizeInBytes": 500 + 501 + 502, "ObjectCount": 3}
    ]
    sops = await get(catalog, "getSOPInstanceUIDs", SeriesInstanceUID=uid)
    assert sops == [{"SOPInstanceUID": ds.SOPInstanceUID} for ds in ct]  # InstanceNumber order

    tags = await get(catalog, "getDicomTags", SeriesUID=uid)
    elements = [t["element"] for t in tags]
    assert elements[0].startswith("(0002,")  # file meta first
    assert "(7FE0,0010)" not in elements
    by_element = {t["element"]: t for t in tags}
    assert by_element["(0008,0060)"] == {"element": "(0008,0060)", "name": "Modality", "data": "CT"}
    assert by_element["(0008,0008)"]["data"] == "ORIGINAL\\PRIMARY\\AXIAL"
    assert by_element["(0008,0018)"]["data"] == ct[0].SOPInstanceUID  # the first image
    assert by_element["(0010,0010)"]["data"] == "CompressedSamples^CT1"
    assert "data" not in by_element["(0008,0050)"]  # empty AccessionNumber: null, left out


async def test_series_metadata_csv(catalog: Platform) -> None:
    ct = h.ct(2)
    mr = h.mr(1)
    await h.deliver(catalog, h.published(ct, released_at=RELEASED), h.published(mr))
    ct_uid, mr_uid = ct[0].SeriesInstanceUID, mr[0].SeriesInstanceUID
    r = await catalog.client.post(
        f"{V4}/getSeriesMetadata", data={"list": f' "{ct_uid}", {mr_uid},1.2.3'}
    )
    assert r.status_code == 200
    assert r.headers["content-disposition"] == 'attachment; filename="SeriesMetaData.csv"'
    header, *lines = r.text.split("\n")
    assert header == (
        '"PatientID","PatientName","PatientSex","EthnicGroup","Phantom","SpeciesCode",'
        '"SpeciesDescription","StudyInstanceUID","StudyDate","StudyDesc",'
        '"AdmittingDiagnosisDescription","StudyID","PatientAge",'
        '"LongitudinalTemporalEventType","LongitudinalTemporalOffsetFromEvent",'
        '"SeriesInstanceUID","Collection","Site","Modality","ProtocolName","SeriesDate",'
        '"SeriesDescription","BodyPartExamined","SeriesNumber","AnnotationsFlag",'
        '"Manufacturer","ManufacturerModelName","PixelSpacing(mm)-Row","SliceThickness(mm)",'
        '"SoftwareVersions","ImageCount","MaxSubmissionTimestamp","LicenseName","LicenseURI",'
        '"DataDescriptionURI","FileSize","ReleasedStatus","DateReleased","ThirdPartyAnalysis",'
        '"Authorized"'
    )
    assert lines[-1] == "" and all(line.startswith('"') for line in lines[:-1])
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["SeriesInstanceUID"] for row in rows] == [ct_uid, mr_uid]  # as asked
    assert rows[0]["ImageCount"] == "2"
    assert rows[0]["PixelSpacing(mm)-Row"] == "0.661468"
    assert rows[0]["SliceThickness(mm)"] == "5.0"
    assert rows[0]["DateReleased"] == "08-07-2023"
    assert rows[0]["StudyID"] == "1CT1"
    assert rows[1]["Modality"] == "MR" and rows[1]["PatientSex"] == "F"

    r = await catalog.client.post(
        f"{V4}/getSeriesMetadata", data={"list": [ct_uid, mr_uid], "format": "json"}
    )
    js = r.json()
    assert [x["SeriesInstanceUID"] for x in js] == [ct_uid, mr_uid]
    assert "EthnicGroup" not in js[0] and js[0]["Phantom"] == "NO"


async def test_updated_series_is_strictly_after_midnight(catalog: Platform) -> None:
    ct = h.ct(1)
    await h.deliver(catalog, h.published(ct, released_at=RELEASED))
    assert len(await get(catalog, "getUpdatedSeries", fromDate="08-07-2023")) == 1
    assert len(await get(catalog, "getUpdatedSeries", fromDate="08-06-2023")) == 1
    assert await body(catalog, "getUpdatedSeries", fromDate="08-08-2023") == b""
    rows = await get(catalog, "getUpdatedSeries")  # default 01-01-1900
    assert rows[0]["SeriesInstanceUID"] == ct[0].SeriesInstanceUID


async def test_limited_collection_needs_its_licence(catalog: Platform) -> None:
    limited = h.collection("Secret-MR", licence=h.TCIA_RESTRICTED, access="limited")
    open_ct = h.ct(1, patient_id="OPEN-1")
    secret = h.mr(2, patient_id="SECRET-1")
    await h.deliver(catalog, h.published(open_ct), h.published(secret, limited))
    uid = secret[0].SeriesInstanceUID

    # anonymous: as if the collection did not exist
    assert await get(catalog, "getCollectionValues") == [{"Collection": "Demo-CT"}]
    assert await body(catalog, "getSeries", Collection="Secret-MR") == b""
    assert [r["Collection"] for r in await get(catalog, "getSeries")] == ["Demo-CT"]
    assert await body(catalog, "getSeriesSize", SeriesInstanceUID=uid) == b""
    assert await body(catalog, "getSOPInstanceUIDs", SeriesInstanceUID=uid) == b""
    assert await body(catalog, "getDicomTags", SeriesUID=uid) == b""
    assert await body(catalog, "getPatient", PatientId="SECRET-1") == b""
    assert await body(catalog, "getModalityValues") == b'[{"Modality":"CT"}]'
    counts = await get(catalog, "getCollectionValuesAndCounts")
    assert [c["Collection"] for c in counts] == ["Demo-CT"]
    descriptions = await get(catalog, "getCollectionDescriptions")
    assert [d["collectionName"] for d in descriptions] == ["Demo-CT"]
    r = await catalog.client.post(f"{V4}/getSeriesMetadata", data={"list": uid})
    assert r.content == b""
    r = await catalog.client.get(f"/api/catalog/series/{uid}")
    assert r.status_code == 404 and "may not see it" in r.json()["detail"]
    names = [c["name"] for c in (await catalog.client.get("/api/catalog/collections")).json()]
    assert names == ["Demo-CT"]

    # a token without the licence sees no more
    other = mint("bob", lic=["cc-by-4.0"], dup=True)
    assert [r["Collection"] for r in await get(catalog, "getSeries", other)] == ["Demo-CT"]

    # the licence without the data usage policy accepted is not enough
    unsigned = mint("dave", lic=["tcia-restricted"])
    assert await get(catalog, "getSeriesSize", unsigned, SeriesInstanceUID=uid) == []
    assert [r["Collection"] for r in await get(catalog, "getSeries", unsigned)] == ["Demo-CT"]

    # a token carrying the collection's licence (and the policy accepted) sees it everywhere
    token = mint("alice", lic=["tcia-restricted"], dup=True)
    assert [c["Collection"] for c in await get(catalog, "getCollectionValues", token)] == [
        "Demo-CT", "Secret-MR",
    ]  # fmt: skip
    rows = await get(catalog, "getSeries", token, Collection="secret-mr")
    assert [r["SeriesInstanceUID"] for r in rows] == [uid]
    assert rows[0]["LicenseName"] == "TCIA Restricted"
    assert await get(catalog, "getSeriesSize", token, SeriesInstanceUID=uid) == [
        {"TotalSizeInBytes": 2001, "ObjectCount": 2}
    ]
    r = await catalog.client.get(f"/api/catalog/series/{uid}", headers=auth_header(token))
    assert r.status_code == 200 and len(r.json()["instances"]) == 2
    # so does a grant of the collection
    granted = mint("carol", grants=["Secret-MR"], dup=True)
    assert len(await get(catalog, "getSOPInstanceUIDs", granted, SeriesInstanceUID=uid)) == 2


async def test_republish_replaces_and_does_not_duplicate(catalog: Platform) -> None:
    first = h.ct(3)
    event = h.published(first)
    await h.deliver(catalog, event)
    await h.deliver(catalog, event)  # redelivered: one effect
    again = h.series_of(
        first[0], 2, patient_id="DEMO-0001",
        study_uid=first[0].StudyInstanceUID, series_uid=first[0].SeriesInstanceUID,
    )  # fmt: skip
    await h.deliver(catalog, h.published(again, site="Site-B"))
    uid = first[0].SeriesInstanceUID

    rows = await get(catalog, "getSeries")
    assert len(rows) == 1
    assert rows[0]["ImageCount"] == 2 and rows[0]["Site"] == "Site-B"
    sops = await get(catalog, "getSOPInstanceUIDs", SeriesInstanceUID=uid)
    assert {s["SOPInstanceUID"] for s in sops} == {ds.SOPInstanceUID for ds in again}
    assert len(await get(catalog, "getPatient")) == 1
    assert [s["SeriesCount"] for s in await get(catalog, "getPatientStudy")] == [1]

    # a publication older than the indexed one (a late redelivery) changes nothing
    stale = h.published(first).model_copy(update={"time": datetime.now(UTC) - timedelta(hours=1)})
    await h.deliver(catalog, stale)
    assert (await get(catalog, "getSeries"))[0]["ImageCount"] == 2


async def test_withdrawal_hides_the_series(catalog: Platform) -> None:
    keep = h.ct(1, patient_id="DEMO-0001")
    gone = h.mr(2, patient_id="DEMO-0002")
    await h.deliver(catalog, h.published(keep), h.published(gone))
    uid = gone[0].SeriesInstanceUID
    await h.deliver(catalog, h.withdrawn("Demo-CT", uid))

    assert [r["Modality"] for r in await get(catalog, "getSeries")] == ["CT"]
    assert await body(catalog, "getSeriesSize", SeriesInstanceUID=uid) == b""
    assert await body(catalog, "getSOPInstanceUIDs", SeriesInstanceUID=uid) == b""
    assert [p["PatientId"] for p in await get(catalog, "getPatient")] == ["DEMO-0001"]
    assert await get(catalog, "getModalityValues") == [{"Modality": "CT"}]
    assert await get(catalog, "getUpdatedSeries", fromDate="01-01-2000") == await get(
        catalog, "getSeries"
    )

    # a publication older than the withdrawal does not bring it back ...
    late = h.published(gone).model_copy(update={"time": datetime.now(UTC) - timedelta(hours=1)})
    await h.deliver(catalog, late)
    assert await body(catalog, "getSeriesSize", SeriesInstanceUID=uid) == b""
    # ... a new one does
    await h.deliver(catalog, h.published(gone))
    assert (await get(catalog, "getSeriesSize", SeriesInstanceUID=uid))[0]["ObjectCount"] == 2


async def test_collection_updates_change_licence_and_access(catalog: Platform) -> None:
    ct = h.ct(1)
    await h.deliver(catalog, h.published(ct))
    newer = h.collection(licence=h.TCIA_RESTRICTED, doi="https://doi.org/10.7937/new")
    await h.deliver(catalog, newer.event("/site-a/intake"))
    row = (await get(catalog, "getSeries"))[0]
    assert row["LicenseName"] == "TCIA Restricted"
    assert row["DataDescriptionURI"] == "https://doi.org/10.7937/new"

    older = h.collection(access="limited").event("/site-a/intake")
    older = older.model_copy(update={"time": datetime.now(UTC) - timedelta(days=1)})
    await h.deliver(catalog, older)
    assert len(await get(catalog, "getSeries")) == 1  # the stale record was ignored

    await h.deliver(catalog, h.collection(access="limited").event("/site-a/intake"))
    assert await body(catalog, "getSeries") == b""
    assert len(await get(catalog, "getSeries", mint(roles=["admin"]))) == 1


async def test_collections_json_api(catalog: Platform) -> None:
    await h.deliver(
        catalog,
        h.collection("Empty-One").event("/site-a/intake"),
        h.published(h.ct(2, patient_id="A")),
        h.published(h.mr(1, patient_id="B")),
    )
    r = await catalog.client.get("/api/catalog/collections")
    assert r.status_code == 200
    by_name = {c["name"]: c for c in r.json()}
    demo = by_name["Demo-CT"]
    assert (demo["patients"], demo["studies"], demo["series"], demo["images"]) == (2, 2, 2, 3)
    assert demo["licence"]["id"] == "cc-by-4.0"
    assert by_name["Empty-One"]["series"] == 0


@pytest.mark.parametrize("fmt", ["xml", "html", "csvquoted"])
async def test_other_formats(catalog: Platform, fmt: str) -> None:
    await h.deliver(catalog, h.published(h.ct(1)))
    text = (await body(catalog, "getCollectionValues", format=fmt)).decode()
    assert "Demo-CT" in text
    if fmt == "csvquoted":
        assert text == '"Collection"\n"Demo-CT"\n'


async def test_series_json_without_current_stored_parts_is_rendered_the_same(
    catalog: Platform,
) -> None:
    await h.deliver(catalog, h.published(h.ct(2)), h.published(h.mr(1, patient_id="B")))
    stored = await body(catalog, "getSeries")
    async with catalog.runtime.contexts["catalog"].db.engine.begin() as conn:
        await conn.execute(series.update().values(nbia_version=0, nbia_head=None))
    assert await body(catalog, "getSeries") == stored


async def test_republished_under_another_patient_leaves_no_empty_patient(
    catalog: Platform,
) -> None:
    first = h.ct(2, patient_id="WRONG-1")
    await h.deliver(catalog, h.published(first))
    moved = h.series_of(first[0], 2, patient_id="RIGHT-1", series_uid=first[0].SeriesInstanceUID)
    await h.deliver(catalog, h.published(moved))
    assert [p["PatientId"] for p in await get(catalog, "getPatient")] == ["RIGHT-1"]
    studies = await get(catalog, "getPatientStudy")
    assert [(s["PatientID"], s["SeriesCount"]) for s in studies] == [("RIGHT-1", 1)]
