"""Unmodified tcia_utils downloads from imarc: downloadSeries from a list and from one
of our .tcia manifests (as zips too), and downloadImage."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from tests.download.test_download_service import publish
from tests.memory import InMemory, in_memory, over_http
from tests.qc.curation import Curated, collection_event, make_series

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Served:
    p: InMemory
    url: str
    one: list[Curated]
    two: list[Curated]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    async with in_memory(tmp_path_factory.mktemp("tcia"), ["qc", "download"]) as p:
        await p.publish(collection_event())
        one, two = make_series(3), make_series(2, patient="DEMO-CT-0002")
        await publish(p, one)
        await publish(p, two)
        async with over_http(p.app) as url:
            yield Served(p, url, one, two)


@pytest.fixture
def nbia(served: Served, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    from tcia_utils import nbia as module

    base = f"{served.url}/nbia-api/services"

    def set_api_url(endpoint: str, api_url: str = "nbia") -> str:
        return f"{base}/v1/" if endpoint == "getContentsByName" else f"{base}/v4/"

    monkeypatch.setattr(module, "setApiUrl", set_api_url)
    yield module


async def test_download_series_from_a_list_and_from_our_manifest(
    served: Served, nbia: object, tmp_path: Path
) -> None:
    uid = served.one[0].series
    await asyncio.to_thread(
        nbia.downloadSeries,  # type: ignore[attr-defined]
        [uid],
        input_type="list",
        path=str(tmp_path / "list"),
    )
    folder = tmp_path / "list" / uid
    assert sorted(p.name for p in folder.iterdir()) == [
        "1-1.dcm",
        "1-2.dcm",
        "1-3.dcm",
        "CITATION",
        "LICENSE",
    ]
    assert [(folder / f"1-{i}.dcm").read_bytes() for i in (1, 2, 3)] == [c.data for c in served.one]

    r = await served.p.client.post(
        "/api/download/baskets", json={"series": [uid, served.two[0].series]}
    )
    manifest = tmp_path / "basket.tcia"
    manifest.write_text(r.json()["manifest"])
    listed = await asyncio.to_thread(nbia.manifestToList, str(manifest))  # type: ignore[attr-defined]
    assert listed == [uid, served.two[0].series]
    await asyncio.to_thread(
        nbia.downloadSeries,  # type: ignore[attr-defined]
        str(manifest),
        input_type="manifest",
        path=str(tmp_path / "zips"),
        as_zip=True,
    )
    assert sorted(p.name for p in (tmp_path / "zips").iterdir()) == sorted(
        f"{u}.zip" for u in listed
    )


async def test_download_image(served: Served, nbia: object, tmp_path: Path) -> None:
    c = served.two[1]
    await asyncio.to_thread(nbia.downloadImage, c.series, c.sop, str(tmp_path))  # type: ignore[attr-defined]
    assert (tmp_path / c.series / f"{c.sop}.dcm").read_bytes() == c.data
