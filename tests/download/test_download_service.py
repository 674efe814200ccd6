"""NBIA downloads (qc publishes, download serves, on the in-memory bus): the getImage
zip, getImageWithMD5Hash, getSingleImage, access rules, integrity and the download log."""

from __future__ import annotations

import asyncio
import hashlib
import io
import threading
import zipfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pydicom
import pytest
import pytest_asyncio
from sqlalchemy import select

from services.common.dicom_json import header_json
from services.common.events import CollectionUpdated, PublishedInstance, SeriesPublished
from services.common.metrics import DOWNLOADS
from services.common.security import Principal
from services.common.store import CHUNK
from services.download.models import DownloadRecord
from services.download.queries import readable_series
from services.download.service import send
from services.download.streaming import IntegrityError, Progress
from tests.harness import admin_headers, auth_header, mint
from tests.memory import InMemory, in_memory
from tests.qc.curation import Curated, collection_event, make_series, put_curated

V4 = "/nbia-api/services/v4"
LICENSE = (
    "License Information. The Demo-CT collection is distributed under the CC BY 4.0 at "
    "https://creativecommons.org/licenses/by/4.0/ By downloading the data, you agree to "
    "abide by terms of this license.\n"
    "\n"
    "Data usage policy: https://archive.example.org/data-usage-policy\n"
    "Whoever passes these data on (a mirror, a Data Analysis Center) passes this license, "
    "the CITATION file and the data usage policy on with them.\n"
)
CITATION = (
    "Please cite these data as:\n"
    "\n"
    "Imaging Group (2026). Demo-CT [Data set]. imarc.\n"
    "\n"
    "DOI: https://doi.org/10.99999/demo-ct\n"
)


def denied(uid: str) -> str:
    return (
        "The user has not been granted the access to image with given SeriesInstanceUID,"
        f"{uid}. Please contact System Admin to resolve this issue."
    )


@dataclass
class Published:
    p: InMemory
    items: list[Curated]  # in InstanceNumber order

    @property
    def uid(self) -> str:
        return self.items[0].series


async def publish(p: InMemory, items: list[Curated], collection: str = "Demo-CT") -> None:
    """Curate ``items`` (one series) and publish it through qc's API."""
    await put_curated(p.store, items)
    await p.publish(*(c.deidentified() for c in items))
    r = await p.client.post(
        f"/api/qc/collections/{collection}/publish",
        headers=admin_headers(),
        json={"series": [items[0].series]},
    )
    assert r.status_code == 200, r.text


# one platform for the module; a test that changes a series publishes its own
pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InMemory]:
    async with in_memory(tmp_path_factory.mktemp("download"), ["qc", "download"]) as p:
        await p.publish(collection_event(), collection_event("Closed", access="limited"))
        yield p


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pub(platform: InMemory) -> Published:
    # 12 images in two acquisitions, delivered out of InstanceNumber order
    items = make_series(12, acquisitions=2)
    await publish(platform, items[::-1])
    return Published(platform, items)


@pytest_asyncio.fixture(loop_scope="module")
async def fresh(platform: InMemory) -> Published:
    """A series of its own, for a test that changes it."""
    items = make_series(3)
    await publish(platform, items)
    return Published(platform, items)


def unzip(content: bytes) -> zipfile.ZipFile:
    z = zipfile.ZipFile(io.BytesIO(content))
    assert z.testzip() is None
    return z


async def test_get_image_streams_licence_then_every_instance(pub: Published) -> None:
    r = await pub.p.client.get(
        f"{V4}/getImage", params={"SeriesInstanceUID": pub.uid}, headers={"Accept-Encoding": "gzip"}
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"] == f'attachment; filename="{pub.uid}.zip"'
    assert "content-encoding" not in r.headers
    assert int(r.headers["content-length"]) == len(r.content)
    z = unzip(r.content)
    names = z.namelist()
    assert names == ["LICENSE", "CITATION"] + [f"{i:08d}.dcm" for i in range(1, 13)]
    assert z.read("LICENSE").decode() == LICENSE
    assert z.read("CITATION").decode() == CITATION
    assert all(info.compress_type == zipfile.ZIP_STORED for info in z.infolist())
    for name, item in zip(names[2:], pub.items, strict=True):
        data = z.read(name)
        assert data == item.data
        ds = pydicom.dcmread(io.BytesIO(data))
        assert ds.SOPInstanceUID == item.sop


async def test_new_file_names_and_md5_hashes(pub: Published) -> None:
    r = await pub.p.client.get(
        f"{V4}/getImage",
        params={"SeriesInstanceUID": pub.uid, "NewFileNames": "Yes", "IncludeMD5": "Yes"},
    )
    z = unzip(r.content)
    expected = [f"1-{i:02d}.dcm" for i in range(1, 7)] + [f"2-{i:02d}.dcm" for i in range(1, 7)]
    assert z.namelist() == ["LICENSE", "CITATION", *expected, "md5hashes.csv"]
    for name, item in zip(expected, pub.items, strict=True):
        assert z.read(name) == item.data
    lines = z.read("md5hashes.csv").decode().splitlines()
    assert lines[0] == "Filename,MD5Hash"
    assert lines[1:] == [f"{n},{hashlib.md5(z.read(n)).hexdigest()}" for n in expected]


async def test_get_image_with_md5_hash_carries_the_licence_too(pub: Published) -> None:
    r = await pub.p.client.get(f"{V4}/getImageWithMD5Hash", params={"SeriesInstanceUID": pub.uid})
    z = unzip(r.content)
    assert z.namelist()[:3] == ["LICENSE", "CITATION", "00000001.dcm"]
    assert z.namelist()[-1] == "md5hashes.csv" and len(z.namelist()) == 15
    assert z.read("CITATION").decode() == CITATION


async def test_parameter_errors_are_nbias_400s(pub: Published) -> None:
    c = pub.p.client
    r = await c.get(f"{V4}/getImage")
    assert r.status_code == 400
    assert r.text == "A parameter, SeriesInstanceUID is required for this API call."
    r = await c.get(f"{V4}/getImage", params={"SeriesInstanceUID": pub.uid, "format": "zip"})
    assert r.status_code == 400 and r.text.startswith("Invalid query parameter: 'format'.")
    r = await c.get(f"{V4}/getImage", params={"SeriesInstanceUID": "1.2.3"})
    assert (r.status_code, r.text) == (400, denied("1.2.3"))
    r = await c.get(f"{V4}/getSingleImage", params={"SeriesInstanceUID": pub.uid})
    assert (r.status_code, r.text) == (
        400,
        "A parameter, SOPInstanceUID is required for this API call.",
    )
    r = await c.get(
        f"{V4}/getSingleImage", params={"SeriesInstanceUID": pub.uid, "SOPInstanceUID": "1.2.3"}
    )
    assert (r.status_code, r.text) == (400, denied(pub.uid))


async def test_get_single_image_returns_the_published_bytes(pub: Published) -> None:
    item = pub.items[4]
    r = await pub.p.client.get(
        f"{V4}/getSingleImage", params={"SeriesInstanceUID": pub.uid, "SOPInstanceUID": item.sop}
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/dicom"
    assert r.headers["content-disposition"] == f"attachment; filename={item.sop}.dcm"
    assert r.content == item.data


async def test_limited_collection_is_hidden_from_who_may_not_read_it(platform: InMemory) -> None:
    p = platform
    items = make_series(2, collection="Closed")
    await publish(p, items, collection="Closed")
    uid = items[0].series
    licence_id = collection_event("Closed").data["licence"]["id"]
    no_policy = mint("n", roles=["user"], lic=[licence_id])  # licence, policy not accepted
    for headers in ({}, auth_header(mint("u", roles=["user"])), auth_header(no_policy)):
        for url, extra in (
            ("getImage", {}),
            ("getSingleImage", {"SOPInstanceUID": items[0].sop}),
        ):
            r = await p.client.get(
                f"{V4}/{url}", params={"SeriesInstanceUID": uid, **extra}, headers=headers
            )
            assert (r.status_code, r.text) == (400, denied(uid))
    for headers in (
        auth_header(mint("u", roles=["user"], lic=[licence_id], dup=True)),
        auth_header(mint("g", grants=["Closed"], dup=True)),
        admin_headers(),
    ):
        r = await p.client.get(f"{V4}/getImage", params={"SeriesInstanceUID": uid}, headers=headers)
        assert r.status_code == 200 and len(unzip(r.content).namelist()) == 4


async def test_a_tampered_object_aborts_the_download(fresh: Published) -> None:
    pub = fresh
    victim = pub.items[1]
    await pub.p.store.put("public", victim.key, victim.data[:-1] + b"\x01")
    with pytest.raises(IntegrityError):
        await pub.p.client.get(f"{V4}/getImage", params={"SeriesInstanceUID": pub.uid})
    with pytest.raises(IntegrityError):
        await pub.p.client.get(
            f"{V4}/getSingleImage",
            params={"SeriesInstanceUID": pub.uid, "SOPInstanceUID": victim.sop},
        )


async def test_downloads_are_logged_and_counted(pub: Published) -> None:
    before = DOWNLOADS.labels("Demo-CT", "zip")._value.get()
    who = auth_header(mint("reader", roles=["user"]))
    r = await pub.p.client.get(f"{V4}/getImage", params={"SeriesInstanceUID": pub.uid}, headers=who)
    assert r.status_code == 200
    assert DOWNLOADS.labels("Demo-CT", "zip")._value.get() == before + 1
    async with pub.p.contexts["download"].db.session() as s:
        rows = (
            await s.scalars(select(DownloadRecord).where(DownloadRecord.subject == "reader"))
        ).all()
    assert [(d.series_instance_uid, d.kind, d.bytes, d.complete) for d in rows] == [
        (pub.uid, "zip", sum(len(i.data) for i in pub.items), True)
    ]
    url = "/api/download/collections/Demo-CT/downloads"
    assert (await pub.p.client.get(url, headers=who)).status_code == 403
    log = (await pub.p.client.get(url, headers=admin_headers())).json()
    assert log[0]["subject"] == "reader" and log[0]["bytes"] == rows[0].bytes


async def test_withdrawn_series_is_no_longer_served(fresh: Published) -> None:
    pub = fresh
    r = await pub.p.client.post(f"/api/qc/series/{pub.uid}/withdraw", headers=admin_headers())
    assert r.status_code == 200
    r = await pub.p.client.get(f"{V4}/getImage", params={"SeriesInstanceUID": pub.uid})
    assert (r.status_code, r.text) == (400, denied(pub.uid))


async def test_a_series_zip_has_a_length_an_etag_and_byte_ranges(pub: Published) -> None:
    c = pub.p.client
    url, params = f"{V4}/getImage", {"SeriesInstanceUID": pub.uid, "NewFileNames": "Yes"}
    whole = await c.get(url, params=params)
    size, tag = len(whole.content), whole.headers["etag"]
    assert (
        whole.headers["accept-ranges"] == "bytes" and int(whole.headers["content-length"]) == size
    )
    again = await c.get(url, params=params)
    assert (again.headers["etag"], again.content) == (tag, whole.content)  # byte for byte

    # a download cut at some byte, resumed from there, is the whole archive
    cut = size // 3
    rest = await c.get(url, params=params, headers={"Range": f"bytes={cut}-", "If-Range": tag})
    assert rest.status_code == 206
    assert rest.headers["content-range"] == f"bytes {cut}-{size - 1}/{size}"
    assert int(rest.headers["content-length"]) == size - cut
    assert unzip(whole.content[:cut] + rest.content).namelist()[2:] == [
        f"{a}-{i:02d}.dcm" for a in (1, 2) for i in range(1, 7)
    ]
    r = await c.get(url, params=params, headers={"Range": "bytes=-22"})  # the end record
    assert (r.status_code, r.content) == (206, whole.content[-22:])
    r = await c.get(url, params=params, headers={"Range": "bytes=100-4099"})
    assert (r.status_code, r.content) == (206, whole.content[100:4100])

    # a copy made from another version of the archive is not continued
    r = await c.get(url, params=params, headers={"Range": "bytes=100-", "If-Range": '"other"'})
    assert (r.status_code, r.content) == (200, whole.content)
    r = await c.get(url, params=params, headers={"If-None-Match": tag})
    assert r.status_code == 304 and r.content == b""
    r = await c.get(url, params=params, headers={"Range": f"bytes={size}-"})
    assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{size}"
    # the default names make another archive, with another tag
    other = await c.get(url, params={"SeriesInstanceUID": pub.uid})
    assert other.headers["etag"] != tag


async def test_a_single_image_has_its_checksum_as_etag_and_byte_ranges(pub: Published) -> None:
    item = pub.items[3]
    url = f"{V4}/getSingleImage"
    params = {"SeriesInstanceUID": pub.uid, "SOPInstanceUID": item.sop}
    whole = await pub.p.client.get(url, params=params)
    assert whole.headers["etag"] == f'"{item.sha256}"' and whole.content == item.data
    r = await pub.p.client.get(url, params=params, headers={"Range": "bytes=128-"})
    assert r.status_code == 206 and r.content == item.data[128:]
    assert r.headers["content-range"] == f"bytes 128-{len(item.data) - 1}/{len(item.data)}"


async def test_a_zip_with_md5_hashes_is_streamed_whole(pub: Published) -> None:
    r = await pub.p.client.get(
        f"{V4}/getImage",
        params={"SeriesInstanceUID": pub.uid, "IncludeMD5": "Yes"},
        headers={"Range": "bytes=100-"},
    )
    assert r.status_code == 200 and r.headers["accept-ranges"] == "none"
    assert unzip(r.content).namelist()[-1] == "md5hashes.csv"


async def test_objects_recorded_without_crc32_are_still_served(platform: InMemory) -> None:
    """Objects published before CRC-32 was recorded: the zip is streamed as before."""
    items = make_series(3)
    for c in items:
        c.sha256 = (await platform.store.put("public", c.key, c.data)).sha256
    event = SeriesPublished(
        collection=collection_event().payload(CollectionUpdated),
        patient_id="DEMO-CT-0001",
        study_instance_uid=str(items[0].ds.StudyInstanceUID),
        series_instance_uid=items[0].series,
        released_at=datetime.now(UTC),
        instances=[
            PublishedInstance(
                sop_instance_uid=c.sop,
                key=c.key,
                size=len(c.data),
                sha256=c.sha256,
                header=header_json(c.ds),
            )
            for c in items
        ],
    ).event("/site-a/qc", subject=items[0].series)
    await platform.publish(event)
    r = await platform.client.get(f"{V4}/getImage", params={"SeriesInstanceUID": items[0].series})
    assert r.status_code == 200 and r.headers["accept-ranges"] == "none"
    assert [unzip(r.content).read(f"{i:08d}.dcm") for i in (1, 2, 3)] == [c.data for c in items]


async def test_a_client_that_closes_after_the_last_byte_had_a_complete_download(
    pub: Published,
) -> None:
    """The server may notice the client gone while it still looks for more to send."""
    download = pub.p.deps["download"]
    who = Principal.from_claims({"sub": "closer", "roles": ["user"]})
    series = await readable_series(download.db, who, pub.uid)
    assert series is not None
    release = threading.Event()

    def source() -> Iterator[bytes]:
        yield b"a" * CHUNK
        yield b"b" * CHUNK
        release.wait(5)  # the end is found only after the client has gone

    body = send(download, source(), who, series, Progress(), length=2 * CHUNK, kind="zip")
    got = [await anext(body), await anext(body)]
    waiting = asyncio.ensure_future(anext(body))
    await asyncio.sleep(0.05)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    release.set()
    await asyncio.gather(*download.background)
    assert b"".join(got) == b"a" * CHUNK + b"b" * CHUNK
    async with download.db.session() as s:
        (row,) = (
            await s.scalars(select(DownloadRecord).where(DownloadRecord.subject == "closer"))
        ).all()
    assert row.complete


async def test_a_face_reconstructable_collections_licence_says_so(platform: InMemory) -> None:
    hn = collection_event("HN-MR", access="limited")
    await platform.publish(
        hn.model_copy(update={"data": {**hn.data, "face_reconstructable": True}})
    )
    items = make_series(2, collection="HN-MR")
    await publish(platform, items, collection="HN-MR")
    r = await platform.client.get(
        f"{V4}/getImage", params={"SeriesInstanceUID": items[0].series}, headers=admin_headers()
    )
    licence = unzip(r.content).read("LICENSE").decode()
    assert "a face could be reconstructed" in licence and "limited access" in licence
