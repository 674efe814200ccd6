"""The whole intake path on the distributed adapters: PostgreSQL and an S3 endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from services.common.events import InstanceHeld, InstanceReceived
from services.intake.models import ReceivedInstance, metadata, outbox
from tests.harness import admin_headers, platform
from tests.intake.helpers import (
    SUBMIT,
    ct,
    ct_dataset,
    encode,
    events,
    mr,
    sha256,
    submitter,
    zipped,
)

pytestmark = [pytest.mark.postgres, pytest.mark.s3]


async def test_intake_on_postgres_and_s3(tmp_path: Path, pg_url: str, s3_url: str) -> None:
    async with platform(tmp_path, services=["intake"], database_url=pg_url, store_url=s3_url) as p:
        db = p.runtime.contexts["intake"].db
        assert not db.is_sqlite
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), metadata)
            )
        assert diff == []

        r = await p.client.post(
            "/api/intake/collections",
            json={"name": "PG-CT", "licence": "CC-BY-4.0"},
            headers=admin_headers(),
        )
        assert r.status_code == 201, r.text
        url = SUBMIT.format("PG-CT")
        files = [
            ("file", ("ct.dcm", ct(), "application/dicom")),
            ("file", ("cut.dcm", ct()[:9000], "application/dicom")),
            ("file", ("mr.dcm", mr(), "application/dicom")),
            ("file", ("junk.bin", b"\x00" * 10, "application/octet-stream")),
        ]
        r = await p.client.post(url, params={"site": "PG"}, files=files, headers=submitter("PG-CT"))
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["accepted_count"], body["held_count"]) == (2, 2)
        ct_id = body["accepted"][0]["instance_id"]

        # re-send a corrected CT, in a zip with a new instance: replace + add
        ds = ct_dataset()
        ds.SeriesDescription = "corrected"
        corrected = encode(ds)
        ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.77"
        another = encode(ds)
        archive = zipped({"again/ct.dcm": corrected, "again/ct2.dcm": another})
        r = await p.client.post(
            url, content=archive, headers={**submitter("PG-CT"), "Content-Type": "application/zip"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["accepted"][0]["instance_id"] == ct_id

        async with db.session() as s:
            n = await s.scalar(select(func.count()).select_from(ReceivedInstance))
            row = await s.get(ReceivedInstance, ct_id)
        assert n == 3
        assert row is not None and row.times_received == 2
        assert row.sha256 == sha256(corrected)

        store = p.runtime.store
        key = f"PG-CT/{ct_id}.dcm"
        assert await store.get("quarantine", key) == corrected
        stat = await store.stat("quarantine", key)
        assert (stat.size, stat.sha256) == (len(corrected), sha256(corrected))

        held = [e.payload(InstanceHeld) for e in await events(p, InstanceHeld.TYPE)]
        assert {h.filename for h in held} == {"cut.dcm", "junk.bin"}
        kept = await store.get("quarantine", f"PG-CT/held/{held[0].instance_id}")
        assert kept in (ct()[:9000], b"\x00" * 10)
        received = await events(p, InstanceReceived.TYPE)
        assert len(received) == 4

        async def relayed() -> bool:
            async with db.session() as s:
                pending = await s.scalar(
                    select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
                )
            return pending == 0

        await p.wait_until(relayed, timeout=15, what="the outbox to be relayed")
        r = await p.client.get("/api/intake/collections/PG-CT/counts", headers=admin_headers())
        assert r.json() == {"received": 3, "held": 2}
        r = await p.client.get("/api/intake/collections/PG-CT/held", headers=admin_headers())
        assert [h["filename"] for h in r.json()] == ["cut.dcm", "junk.bin"]
