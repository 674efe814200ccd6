"""`imarc download` against download and qc served over HTTP on loopback: the Data
Retriever folder layout, checksums, resuming a cut file with a range request, skipping
what is complete, and an exit code and summary that say what did not arrive."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import select
from typer.testing import CliRunner, Result

from imarc.cli import app
from services.download.models import DownloadRecord
from tests.download.test_download_service import publish
from tests.harness import mint
from tests.memory import InMemory, in_memory, over_http
from tests.qc.curation import Curated, collection_event, make_series

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Served:
    p: InMemory
    url: str
    one: list[Curated]
    two: list[Curated]
    closed: list[Curated]

    async def imarc(self, *args: str, token: str | None = None) -> Result:
        argv = ["--url", self.url, *(["--token", token] if token else []), "download", *args]
        env = {"XDG_CONFIG_HOME": "/nonexistent", "IMARC_TOKEN": ""}
        return await asyncio.to_thread(CliRunner().invoke, app, argv, env=env)

    def folder(self, c: Curated, root: Path) -> Path:
        ds = c.ds
        return root / c.collection / str(ds.PatientID) / ds.StudyInstanceUID / c.series


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    async with in_memory(tmp_path_factory.mktemp("cli"), ["qc", "download"]) as p:
        await p.publish(collection_event(), collection_event("Closed", access="limited"))
        one, two = make_series(3), make_series(2, patient="DEMO-CT-0002")
        closed = make_series(2, collection="Closed", patient="CLOSED-0001")
        for items, coll in ((one, "Demo-CT"), (two, "Demo-CT"), (closed, "Closed")):
            await publish(p, items, collection=coll)
        async with over_http(p.app) as url:
            yield Served(p, url, one, two, closed)


async def test_a_manifest_arrives_in_the_data_retrievers_layout(
    served: Served, tmp_path: Path
) -> None:
    r = await served.p.client.post(
        "/api/download/baskets",
        json={"series": [served.one[0].series, served.closed[0].series, "1.2.3.4"]},
    )
    manifest = tmp_path / "basket.tcia"
    manifest.write_text(r.json()["manifest"])
    done = await served.imarc(str(manifest), "--out", str(tmp_path / "dl"), "--parallel", "2")
    assert done.exit_code == 1, done.output  # not all of it: two series are not available
    folder = served.folder(served.one[0], tmp_path / "dl")
    assert sorted(p.name for p in folder.iterdir()) == ["1-1.dcm", "1-2.dcm", "1-3.dcm"]
    for i, c in enumerate(served.one):
        assert (folder / f"1-{i + 1}.dcm").read_bytes() == c.data
    coll = tmp_path / "dl" / "Demo-CT"
    assert (coll / "LICENSE").read_text().startswith("License Information. The Demo-CT")
    assert "https://doi.org/10.99999/demo-ct" in (coll / "CITATION").read_text()
    assert "1 of 3 series complete" in done.output
    assert "2 series are not available to you" in done.output
    assert served.closed[0].series in done.output and "1.2.3.4" in done.output

    # with a licence for the closed collection, the same manifest arrives whole;
    # what is already there is checked, not fetched again
    admin = mint("admin", roles=["admin"])
    again = await served.imarc(str(manifest), "--out", str(tmp_path / "dl"), token=admin)
    assert again.exit_code == 1 and "1 series are not available" in again.output
    assert "3 already there" in again.output and "2 files fetched" in again.output


async def test_a_cut_file_is_continued_and_a_damaged_one_fetched_again(
    served: Served, tmp_path: Path
) -> None:
    args = ("--series", served.two[0].series, "--out", str(tmp_path))
    assert (await served.imarc(*args)).exit_code == 0
    folder = served.folder(served.two[0], tmp_path)
    first, second = served.two
    # as if killed half-way through the first file, and the second file damaged
    cut = len(first.data) // 2
    (folder / "1-1.dcm").unlink()
    (folder / "1-1.dcm.part").write_bytes(first.data[:cut])
    (folder / "1-2.dcm").write_bytes(b"\0" * len(second.data))
    done = await served.imarc(*args)
    assert done.exit_code == 0, done.output
    assert (folder / "1-1.dcm").read_bytes() == first.data
    assert (folder / "1-2.dcm").read_bytes() == second.data
    assert not list(folder.glob("*.part"))
    assert "2 files fetched (1 continued)" in done.output
    async with served.p.contexts["download"].db.session() as s:
        sent = (
            await s.scalars(
                select(DownloadRecord.bytes)
                .where(
                    DownloadRecord.sop_instance_uid == first.sop, DownloadRecord.kind == "single"
                )
                .order_by(DownloadRecord.id)
            )
        ).all()
    assert sent[-1] == len(first.data) - cut  # only the rest went over the wire


async def test_a_part_of_another_version_is_replaced_whole(served: Served, tmp_path: Path) -> None:
    args = ("--series", served.two[0].series, "--out", str(tmp_path))
    folder = served.folder(served.two[0], tmp_path)
    folder.mkdir(parents=True)
    (folder / "1-1.dcm.part").write_bytes(b"x" * 1000)  # not a prefix of the file
    done = await served.imarc(*args)
    assert done.exit_code == 0, done.output
    first = served.two[0]
    assert hashlib.sha256((folder / "1-1.dcm").read_bytes()).hexdigest() == first.sha256


async def test_a_collection_and_clear_refusals(served: Served, tmp_path: Path) -> None:
    done = await served.imarc("--collection", "Demo-CT", "--out", str(tmp_path))
    assert done.exit_code == 0, done.output
    assert "2 of 2 series complete" in done.output
    assert len(list((tmp_path / "Demo-CT").glob("*/*/*/*.dcm"))) == 5
    done = await served.imarc("--collection", "Closed", "--out", str(tmp_path))
    assert done.exit_code == 1 and "no series you can download" in done.output
    done = await served.imarc(str(tmp_path / "missing.tcia"))
    assert done.exit_code == 1 and "cannot read the manifest" in done.output
    done = await served.imarc("--collection", "Demo-CT", "--series", "1.2")
    assert done.exit_code == 1 and "give one of" in done.output
