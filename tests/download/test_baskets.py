"""Baskets, manifests (.tcia) of a collection or a search, and the file lists a
download client works from."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from services.download.manifest import parse_manifest
from tests.download.test_download_service import publish
from tests.harness import admin_headers
from tests.memory import InMemory, in_memory
from tests.qc.curation import Curated, collection_event, make_series

pytestmark = pytest.mark.asyncio(loop_scope="module")
BASKETS = "/api/download/baskets"


class Published:
    def __init__(self, p: InMemory, one: list[Curated], two: list[Curated], closed: list[Curated]):
        self.p, self.one, self.two, self.closed = p, one, two, closed


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pub(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Published]:
    async with in_memory(tmp_path_factory.mktemp("baskets"), ["qc", "download"]) as p:
        await p.publish(collection_event(), collection_event("Closed", access="limited"))
        one, two = make_series(3), make_series(2, patient="DEMO-CT-0002")
        closed = make_series(2, collection="Closed", patient="CLOSED-0001")
        await publish(p, one)
        await publish(p, two)
        await publish(p, closed, collection="Closed")
        yield Published(p, one, two, closed)


def header_and_uids(text: str) -> tuple[list[str], list[str]]:
    lines = text.split("\n")
    assert lines[-1] == "", "every line ends with a newline"
    return lines[:6], lines[6:-1]


async def test_a_basket_of_series_is_a_data_retriever_manifest(pub: Published) -> None:
    uids = [pub.one[0].series, pub.closed[0].series, "1.2.3.4", pub.one[0].series]
    r = await pub.p.client.post(BASKETS, json={"series": uids})
    assert r.status_code == 201, r.text
    basket = r.json()
    assert basket["series"] == 3
    header, listed = header_and_uids(basket["manifest"])
    assert [h.split("=")[0] for h in header] == [
        "downloadServerUrl",
        "includeAnnotation",
        "noOfrRetry",
        "databasketId",
        "manifestVersion",
        "ListOfSeriesToDownload",
    ]
    assert header[4] == "manifestVersion=3.0" and header[5] == "ListOfSeriesToDownload="
    assert header[3] == f"databasketId=manifest-{basket['id']}.tcia"
    # a basket keeps what it was given: it does not tell which series exist or are restricted
    assert listed == uids[:3]
    r = await pub.p.client.get(basket["manifest_url"])
    assert r.status_code == 200 and r.text == basket["manifest"]
    assert r.headers["content-type"].startswith("application/x-nbia-manifest-file")
    assert parse_manifest(r.text) == uids[:3]
    r = await pub.p.client.get(f"{BASKETS}/nope/manifest")
    assert r.status_code == 404 and "POST /api/download/baskets" in r.json()["detail"]


async def test_a_basket_has_no_cap_on_its_size(pub: Published) -> None:
    uids = [f"1.2.840.99.{i}" for i in range(12_000)]
    r = await pub.p.client.post(BASKETS, json={"series": uids})
    assert r.status_code == 201 and r.json()["series"] == 12_000
    r = await pub.p.client.get(r.json()["manifest_url"])
    assert parse_manifest(r.text) == uids


async def test_a_basket_or_manifest_from_a_search_has_only_what_the_caller_may_read(
    pub: Published,
) -> None:
    c = pub.p.client
    mine = sorted([pub.one[0].series, pub.two[0].series])
    r = await c.post(BASKETS, json={"search": {"modality": "ct"}})
    assert r.status_code == 201 and sorted(parse_manifest(r.json()["manifest"])) == mine
    r = await c.post(BASKETS, json={"search": {"modality": "CT"}}, headers=admin_headers())
    assert len(parse_manifest(r.json()["manifest"])) == 3
    r = await c.post("/api/download/manifests", json={"patient_id": "demo-ct-0002"})
    assert parse_manifest(r.text) == [pub.two[0].series]
    r = await c.get("/api/download/collections/Demo-CT/manifest")
    assert sorted(parse_manifest(r.text)) == mine
    assert r.headers["content-disposition"].endswith('.tcia"')
    r = await c.get("/api/download/collections/Closed/manifest")
    assert r.status_code == 404 and "log in" in r.json()["detail"]
    r = await c.get("/api/download/collections/Closed/manifest", headers=admin_headers())
    assert parse_manifest(r.text) == [pub.closed[0].series]


async def test_what_a_basket_request_must_give(pub: Published) -> None:
    for body in ({}, {"series": ["1.2"], "search": {"collection": "Demo-CT"}}, {"search": {}}):
        r = await pub.p.client.post(BASKETS, json=body)
        assert r.status_code == 422, body
    r = await pub.p.client.post(BASKETS, json={"search": {"collection": "Nothing"}})
    assert r.status_code == 404


async def test_the_files_of_series_with_their_checksums_and_the_unavailable_ones(
    pub: Published,
) -> None:
    asked = [pub.one[0].series, pub.closed[0].series, "1.2.3.4"]
    r = await pub.p.client.post("/api/download/files", json={"series": asked})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["unavailable"] == [pub.closed[0].series, "1.2.3.4"]
    (series,) = body["series"]
    assert (series["collection"], series["patient_id"]) == ("Demo-CT", "DEMO-CT-0001")
    assert series["study_instance_uid"] == pub.one[0].ds.StudyInstanceUID
    assert [
        (f["name"], f["sop_instance_uid"], f["size"], f["sha256"]) for f in series["files"]
    ] == [(f"1-{i + 1}.dcm", c.sop, len(c.data), c.sha256) for i, c in enumerate(pub.one)]
    notices = body["notices"]["Demo-CT"]
    assert notices["LICENSE"].startswith("License Information. The Demo-CT collection")
    assert "https://doi.org/10.99999/demo-ct" in notices["CITATION"]
    r = await pub.p.client.post(
        "/api/download/files", json={"series": asked}, headers=admin_headers()
    )
    assert r.json()["unavailable"] == ["1.2.3.4"]
