"""deid on PostgreSQL and S3: concurrent de-identification allocates pseudonyms safely."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from services.common.events import InstanceDeidentified
from services.deid.service import resolve_pseudonym
from tests.deid import dicom
from tests.deid.helpers import deid_platform, manager_headers

pytestmark = [pytest.mark.postgres]
C = "PG-CT"


async def test_concurrent_allocations_give_each_patient_one_number(
    tmp_path: Path, pg_url: str
) -> None:
    async with deid_platform(tmp_path, with_intake=False, database_url=pg_url) as d:
        await d.create_collection(C)
        db = d.p.runtime.contexts["deid"].db
        patients = [f"P{i}" for i in range(12)]
        # every patient asked for three times at once, from racing transactions
        got = await asyncio.gather(*(resolve_pseudonym(db, C, pid, False) for pid in patients * 3))
        by_patient: dict[str, set[str | None]] = {}
        for pid, pseudonym in zip(patients * 3, got, strict=True):
            by_patient.setdefault(pid, set()).add(pseudonym.value)
        assert all(len(v) == 1 for v in by_patient.values())
        assigned = sorted(v.pop() or "" for v in by_patient.values())
        assert assigned == [f"{C}-{n:04d}" for n in range(1, 13)]


@pytest.mark.s3
async def test_instances_are_deidentified_once_on_postgres_and_s3(
    tmp_path: Path, pg_url: str, s3_url: str
) -> None:
    files = [dicom.ct_series(f"S{i}", f"Pat^{i}", n=1)[0] for i in range(6)]
    async with deid_platform(
        tmp_path, with_intake=False, database_url=pg_url, store_url=s3_url, deid_workers=2
    ) as d:
        await d.create_collection("S3-CT")
        events = [await d.publish_received("S3-CT", raw) for raw in files]
        await d.p.runtime.bus.publish(events[:3])  # redelivered while the first are in flight
        for e in events:
            await d.wait_for(InstanceDeidentified, instance_id=e.data["instance_id"])
        await d.settle()
        done = d.recorder.of(InstanceDeidentified)
        assert len(done) == len(files)
        assert sorted(x.patient_id for x in done) == [f"S3-CT-{n:04d}" for n in range(1, 7)]
        for x in done:
            ds = dicom.read(await d.p.runtime.store.get("curation", x.object.key))
            assert ds.PatientID == x.patient_id
        r = await d.client.get(
            "/api/deid/collections/S3-CT/maps/patients.csv", headers=manager_headers("S3-CT")
        )
        pseudonym_of = {x.instance_id: x.patient_id for x in done}
        expected = {(f"S{i}", pseudonym_of[e.data["instance_id"]]) for i, e in enumerate(events)}
        assert {tuple(line.split(",")) for line in r.text.splitlines()[1:]} == expected
