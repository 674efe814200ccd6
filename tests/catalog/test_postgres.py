"""The catalog on PostgreSQL: migrations, upserts, expression indexes and the NBIA API."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.catalog.models import metadata
from tests.catalog import helpers as h
from tests.harness import auth_header, mint, platform

pytestmark = pytest.mark.postgres
V4 = "/nbia-api/services/v4"


@pytest.mark.filterwarnings("ignore:The value length")
async def test_catalog_on_postgres(tmp_path: Path, pg_url: str) -> None:
    async with platform(tmp_path, services=["catalog"], database_url=pg_url) as p:
        db = p.runtime.contexts["catalog"].db
        async with db.engine.connect() as conn:
            assert (
                await conn.run_sync(
                    lambda c: compare_metadata(MigrationContext.configure(c), metadata)
                )
                == []
            )

        ct = h.ct(3, patient_id="PG-1")
        limited = h.collection("Secret-MR", licence=h.TCIA_RESTRICTED, access="limited")
        # real archives hold values longer than their VR allows: they must not fail indexing
        mr = h.mr(2, patient_id="PG-2", SeriesDescription="x" * 300)
        event = h.published(ct)
        await h.deliver(p, event, h.published(mr, limited))
        await h.deliver(p, event)  # redelivered
        again = h.series_of(
            ct[0], 2, patient_id="PG-1",
            study_uid=ct[0].StudyInstanceUID, series_uid=ct[0].SeriesInstanceUID,
        )  # fmt: skip
        await h.deliver(p, h.published(again))

        r = await p.client.get(f"{V4}/getSeries", params={"Collection": "demo-ct"})
        rows = r.json()
        assert [(x["PatientID"], x["ImageCount"]) for x in rows] == [("PG-1", 2)]
        r = await p.client.get(f"{V4}/getSeries", params={"PatientID": "pg-1"})
        assert len(r.json()) == 1
        r = await p.client.get(f"{V4}/getCollectionValues")
        assert r.json() == [{"Collection": "Demo-CT"}]
        token = auth_header(mint(lic=["tcia-restricted"], dup=True))
        r = await p.client.get(f"{V4}/getCollectionValues", headers=token)
        assert [c["Collection"] for c in r.json()] == ["Demo-CT", "Secret-MR"]
        uid = mr[0].SeriesInstanceUID
        r = await p.client.get(f"{V4}/getDicomTags", params={"SeriesUID": uid}, headers=token)
        assert {"element": "(0008,0060)", "name": "Modality", "data": "MR"} in r.json()
        r = await p.client.get(f"{V4}/getSeries", params={"Modality": "MR"}, headers=token)
        assert r.json()[0]["SeriesDescription"] == "x" * 300

        await h.deliver(p, h.withdrawn("Secret-MR", uid))
        r = await p.client.get(f"{V4}/getSeries", headers=token)
        assert [x["Collection"] for x in r.json()] == ["Demo-CT"]
        r = await p.client.get(f"{V4}/getPatient", headers=token)
        assert [x["PatientId"] for x in r.json()] == ["PG-1"]
        r = await p.client.post(f"{V4}/getSeriesMetadata", data={"list": ct[0].SeriesInstanceUID})
        assert r.text.count("\n") == 2 and '"PG-1"' in r.text


@pytest.mark.filterwarnings("ignore:The value length")
async def test_qido_on_postgres(tmp_path: Path, fresh_pg_url: str) -> None:
    """The searches' PostgreSQL forms: containment (the GIN index), person names, wildcards,
    ranges and UID lists on the stored headers."""
    async with platform(tmp_path, services=["catalog"], database_url=fresh_pg_url) as p:
        ct = h.ct(2, patient_id="PGQ-1", SeriesDescription="Chest 5mm", StudyDate="20200315")
        mr = h.mr(1, patient_id="PGQ-2")
        await h.deliver(p, h.published(ct), h.published(mr))
        study = ct[0].StudyInstanceUID

        async def studies(**params: str) -> list[str]:
            r = await p.client.get("/dicomweb/studies", params=params)
            assert r.status_code == 200, r.text
            return [s["0020000D"]["Value"][0] for s in r.json()]

        assert await studies(SeriesDescription="Chest 5mm") == [study]
        assert await studies(SeriesNumber="1", PatientID="PGQ-1") == [study]
        assert await studies(PatientName="compressedsamples^ct1") == [study]
        assert await studies(PatientName="*mr?") == [mr[0].StudyInstanceUID]
        assert await studies(SeriesDescription="Chest*") == [study]
        assert await studies(SeriesDescription="chest*") == []  # case-sensitive
        assert await studies(StudyDate="20200101-20201231") == [study]
        assert await studies(StudyInstanceUID=f"1.2.3,{study}") == [study]
        r = await p.client.get(
            f"/dicomweb/studies/{study}/series/{ct[0].SeriesInstanceUID}/instances",
            params={"InstanceNumber": "2", "includefield": "ImageType"},
        )
        assert [i["00080018"]["Value"][0] for i in r.json()] == [ct[1].SOPInstanceUID]
        assert r.json()[0]["00080008"]["Value"] == ["ORIGINAL", "PRIMARY", "AXIAL"]
