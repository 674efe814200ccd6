"""STOW-RS under the upload limits and on the distributed adapters: element bombs are held
naming the cap (and answered as failed), a body past the request limit stores nothing, and
the same body on PostgreSQL and S3 is recorded with its events as an HTTP upload is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from services.common.events import InstanceHeld, InstanceReceived
from services.intake.models import HeldInstance, ReceivedInstance
from tests.harness import Platform, admin_headers, platform
from tests.intake import bombs
from tests.intake.helpers import ct_dataset, encode, events, mr, related, submitter

C = "Stow-Bounds"
URL = f"/dicomweb/collections/{C}/studies"
STORED, FAILED, REASON = "00081199", "00081198", "00081197"


def related_body(parts: list[bytes]) -> tuple[bytes, dict[str, str]]:
    body, ctype = related(parts)
    return body, {**submitter(C), "Content-Type": ctype}


async def with_collection(p: Platform) -> None:
    r = await p.client.post(
        "/api/intake/collections",
        json={"name": C, "licence": "CC-BY-4.0"},
        headers=admin_headers(),
    )
    assert r.status_code == 201, r.text


async def recorded(p: Platform) -> tuple[list[ReceivedInstance], list[HeldInstance]]:
    async with p.runtime.contexts["intake"].db.session() as s:
        received = list(await s.scalars(select(ReceivedInstance)))
        held = list(await s.scalars(select(HeldInstance)))
    return received, held


def quarantined(tmp_path: Path) -> list[Path]:
    return [f for f in tmp_path.rglob("quarantine/**/*") if f.is_file() and f.suffix != ".meta"]


def reasons(answer: dict[str, Any]) -> list[int]:
    return [i[REASON]["Value"][0] for i in answer.get(FAILED, {}).get("Value", [])]


async def test_element_bombs_are_held_naming_the_cap_and_answered_as_failed(
    tmp_path: Path,
) -> None:
    async with platform(
        tmp_path, services=["intake"], intake_max_elements=5000, intake_max_sequence_depth=8
    ) as p:
        await with_collection(p)
        body, headers = related_body([bombs.many_elements(5000), bombs.deep_sequences(9), mr()])
        r = await p.client.post(URL, content=body, headers=headers)
        assert r.status_code == 202, r.text
        answer = r.json()
        assert len(answer[STORED]["Value"]) == 1
        assert reasons(answer) == [0xC000, 0xC000]
        received, held = await recorded(p)
        assert len(received) == 1
        assert sorted(h.reason.split(" (")[0] for h in held) == [
            "the file holds more than 5000 data elements",
            "the file nests sequences more than 8 deep",
        ]
        assert len(quarantined(tmp_path)) == 1  # the MR only: nothing of a bomb is kept


async def test_a_body_past_the_request_limit_stores_nothing(tmp_path: Path) -> None:
    async with platform(tmp_path, services=["intake"], intake_max_upload_bytes=300_000) as p:
        await with_collection(p)
        one = encode(ct_dataset())
        body, headers = related_body([one] * (300_000 // len(one) + 2))
        r = await p.client.post(URL, content=body, headers=headers)
        assert r.status_code == 413, r.text
        assert "IMARC_INTAKE_MAX_UPLOAD_BYTES" in r.json()["detail"]
        assert await recorded(p) == ([], [])
        assert await events(p, InstanceReceived.TYPE) == []
        assert quarantined(tmp_path) == []


@pytest.mark.postgres
@pytest.mark.s3
async def test_stow_on_postgres_and_s3(tmp_path: Path, pg_url: str, s3_url: str) -> None:
    async with platform(tmp_path, services=["intake"], database_url=pg_url, store_url=s3_url) as p:
        assert not p.runtime.contexts["intake"].db.is_sqlite
        await with_collection(p)
        ct = ct_dataset()
        body, headers = related_body([encode(ct), mr(), b"not a DICOM file"])
        r = await p.client.post(URL, content=body, headers=headers)
        assert r.status_code == 202, r.text
        answer = r.json()
        stored = [i["00081155"]["Value"][0] for i in answer[STORED]["Value"]]
        assert ct.SOPInstanceUID in stored and len(stored) == 2
        assert reasons(answer) == [0xC000]
        received, held = await recorded(p)
        assert len(received) == 2 and len(held) == 1
        assert {r.submission_id for r in received} == {r.headers["X-Imarc-Submission"]}
        assert len(await events(p, InstanceReceived.TYPE)) == 2
        [held_event] = [e.payload(InstanceHeld) for e in await events(p, InstanceHeld.TYPE)]
        assert await p.runtime.store.get("quarantine", f"{C}/held/{held_event.instance_id}") == (
            b"not a DICOM file"
        )
        ct_row = next(row for row in received if row.sop_instance_uid == ct.SOPInstanceUID)
        assert await p.runtime.store.get("quarantine", ct_row.key) == encode(ct)
