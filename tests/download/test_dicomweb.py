"""WADO-RS under /dicomweb, driven by an unmodified dicomweb-client over HTTP: study,
series and instance retrieval, metadata, frames and bulk data of native pixel data,
and the same access rules as the NBIA API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import pydicom
import pytest
import pytest_asyncio
from dicomweb_client.api import DICOMwebClient
from requests.exceptions import HTTPError

from tests.download.test_download_service import publish
from tests.harness import auth_header, mint
from tests.memory import InMemory, in_memory, over_http
from tests.qc.curation import Curated, collection_event, make_series

pytestmark = pytest.mark.asyncio(loop_scope="module")
T = TypeVar("T")


@dataclass
class Served:
    p: InMemory
    url: str
    study: list[Curated]  # two series of one study
    closed: list[Curated]

    def client(self, token: str | None = None) -> DICOMwebClient:
        headers = auth_header(token) if token else None
        return DICOMwebClient(f"{self.url}/dicomweb", headers=headers)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.to_thread(fn, *args, **kwargs)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    async with in_memory(tmp_path_factory.mktemp("wado"), ["qc", "download"]) as p:
        await p.publish(collection_event(), collection_event("Closed", access="limited"))
        first = make_series(3)
        second = make_series(2, study_uid=str(first[0].ds.StudyInstanceUID))
        closed = make_series(2, collection="Closed", patient="CLOSED-0001")
        for items, coll in ((first, "Demo-CT"), (second, "Demo-CT"), (closed, "Closed")):
            await publish(p, items, collection=coll)
        async with over_http(p.app) as url:
            p.deps["download"].public_url = url  # IMARC_PUBLIC_URL of the site
            yield Served(p, url, first + second, closed)


async def test_a_study_a_series_and_an_instance_are_retrieved(served: Served) -> None:
    c = served.client()
    study = str(served.study[0].ds.StudyInstanceUID)
    got = await served.call(c.retrieve_study, study)
    assert sorted(str(ds.SOPInstanceUID) for ds in got) == sorted(i.sop for i in served.study)
    one = served.study[0]
    got = await served.call(c.retrieve_series, study, one.series)
    assert sorted(str(ds.SOPInstanceUID) for ds in got) == sorted(i.sop for i in served.study[:3])
    ds = await served.call(c.retrieve_instance, study, one.series, one.sop)
    assert isinstance(ds, pydicom.Dataset) and ds.SOPInstanceUID == one.sop
    assert np.array_equal(ds.pixel_array, one.ds.pixel_array)


async def test_metadata_frames_and_bulk_data(served: Served) -> None:
    c = served.client()
    one = served.study[1]
    study = str(one.ds.StudyInstanceUID)
    meta = await served.call(c.retrieve_series_metadata, study, one.series)
    assert len(meta) == 3
    mine = next(m for m in meta if m["00080018"]["Value"] == [one.sop])
    assert mine["00100020"]["Value"] == [one.ds.PatientID]
    assert "7FE00010" in mine and "BulkDataURI" in mine["7FE00010"]
    instance_meta = await served.call(c.retrieve_instance_metadata, study, one.series, one.sop)
    assert instance_meta["00200013"]["Value"] == [int(one.ds.InstanceNumber)]
    assert len(await served.call(c.retrieve_study_metadata, study)) == 5

    (frame,) = await served.call(c.retrieve_instance_frames, study, one.series, one.sop, [1])
    assert frame == one.ds.PixelData
    (bulk,) = await served.call(c.retrieve_bulkdata, mine["7FE00010"]["BulkDataURI"])
    assert bulk == one.ds.PixelData


async def test_what_the_caller_may_not_read_is_not_found(served: Served) -> None:
    closed = served.closed[0]
    study = str(closed.ds.StudyInstanceUID)
    with pytest.raises(HTTPError) as e:
        await served.call(served.client().retrieve_study, study)
    assert e.value.response.status_code == 404
    with pytest.raises(HTTPError):
        await served.call(served.client().retrieve_series_metadata, study, closed.series)
    licensed = mint("reader", grants=["Closed"], dup=True)
    got = await served.call(served.client(licensed).retrieve_study, study)
    assert len(got) == 2
    r = await served.p.client.get(f"/dicomweb/studies/{study}/series/1.2.3")
    assert r.status_code == 404 and "log in" in r.json()["detail"]
    one = served.study[0]
    url = f"/dicomweb/studies/{one.ds.StudyInstanceUID}/series/{one.series}/instances/{one.sop}"
    assert (await served.p.client.get(f"{url}/frames/9")).status_code == 404
    assert (await served.p.client.get(f"{url}/frames/x")).status_code == 400
