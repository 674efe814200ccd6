"""The DICOM C-STORE listener against dcmtk's echoscu and storescu: sites admitted by
calling AE, an unknown AE or a collection the site may not send to refused
(A-ASSOCIATE-RJ) and audited, each association one submission, a stored instance taking
the HTTP upload's path, and a held one answered with a warning that names the reason."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from pydicom.uid import generate_uid
from sqlalchemy import select

from services.common.events import InstanceReceived
from services.intake.models import AuditEntry, Submission
from tests.harness import Platform, admin_headers, platform
from tests.intake.helpers import ct_dataset, encode, events

ENV = {**os.environ, "TCP_NODELAY": "1"}


@pytest_asyncio.fixture
async def listening(tmp_path: Path) -> AsyncIterator[tuple[Platform, int]]:
    async with platform(tmp_path, services=["intake"], dicom_enabled=True, dicom_port=0) as p:
        for name in ("Demo-CT", "Other-CT"):
            r = await p.client.post(
                "/api/intake/collections",
                json={"name": name, "licence": "CC-BY-4.0"},
                headers=admin_headers(),
            )
            assert r.status_code == 201, r.text
        r = await p.client.post(
            "/api/intake/sites",
            json={"site": "site-1", "collection": "Demo-CT", "ae_titles": ["MOD1", "MOD2"]},
            headers=admin_headers(),
        )
        assert r.status_code == 201, r.text
        port = p.runtime.deps["intake"].dicom_port
        assert port, "the listener is not running"
        yield p, port


async def dcmtk(*argv: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run, argv, env=ENV, capture_output=True, text=True, timeout=120
    )


def folder(root: Path, n: int, patient: str = "PAT-1", study: str | None = None) -> Path:
    root.mkdir(parents=True)
    ds = ct_dataset()
    ds.PatientID = patient
    ds.StudyInstanceUID = study or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    for i in range(n):
        ds.SOPInstanceUID = generate_uid()
        (root / f"IM{i}.dcm").write_bytes(encode(ds))
    return root


async def audit(p: Platform) -> list[AuditEntry]:
    async with p.runtime.contexts["intake"].db.session() as s:
        return list(await s.scalars(select(AuditEntry)))


async def test_echo_and_store_from_a_registered_ae(
    listening: tuple[Platform, int], tmp_path: Path
) -> None:
    p, port = listening
    echo = await dcmtk("echoscu", "-aet", "MOD1", "-aec", "IMARC", "127.0.0.1", str(port))
    assert echo.returncode == 0, echo.stderr
    files = folder(tmp_path / "series", 4)
    sent = await dcmtk(
        "storescu", "-aet", "MOD1", "-aec", "IMARC", "+sd", "+r", "127.0.0.1", str(port),
        str(files),
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    received = await events(p, InstanceReceived.TYPE)
    assert len(received) == 4
    assert {e.payload(InstanceReceived).filename for e in received} == {
        f"C-STORE from MOD1, association 2, instance {i}" for i in range(1, 5)
    }
    async with p.runtime.contexts["intake"].db.session() as s:
        (sub,) = list(await s.scalars(select(Submission)))
    assert (sub.via, sub.site, sub.files, sub.submitted_by) == ("dicom", "site-1", 4, "dicom:MOD1")
    counts = (
        await p.client.get(f"/api/intake/submissions/{sub.id}", headers=admin_headers())
    ).json()
    assert counts["received"] == 4 and counts["held_total"] == 0

    # the same study under another patient: stored in quarantine, held, and said so
    other = folder(tmp_path / "other", 1, patient="PAT-2", study=str(ct_dataset().StudyInstanceUID))
    first = folder(tmp_path / "first", 1, study=str(ct_dataset().StudyInstanceUID))
    for f in (first, other):
        done = await dcmtk(
            "storescu", "-v", "-aet", "MOD2", "-aec", "IMARC", "+sd", "127.0.0.1", str(port),
            str(f),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    assert "Received Store Response (Warning" in done.stderr  # held, not lost
    held = await p.client.get(
        "/api/intake/collections/Demo-CT/quarantine/counts", headers=admin_headers()
    )
    assert held.json() == {"intake": {"patient_conflict": 2}}


async def test_unknown_ae_and_wrong_collection_are_rejected_and_audited(
    listening: tuple[Platform, int], tmp_path: Path
) -> None:
    p, port = listening
    unknown = await dcmtk("echoscu", "-aet", "STRANGER", "-aec", "IMARC", "127.0.0.1", str(port))
    assert unknown.returncode != 0
    assert "Association Rejected" in unknown.stderr + unknown.stdout
    files = folder(tmp_path / "s", 1)
    wrong = await dcmtk(
        "storescu", "-aet", "MOD1", "-aec", "Other-CT", "+sd", "127.0.0.1", str(port), str(files)
    )
    assert wrong.returncode != 0 and "Association Rejected" in wrong.stderr + wrong.stdout
    right = await dcmtk(
        "storescu", "-aet", "MOD1", "-aec", "Demo-CT", "+sd", "127.0.0.1", str(port), str(files)
    )
    assert right.returncode == 0, right.stderr
    entries = [(a.action, a.actor) for a in await audit(p)]
    assert entries == [
        ("association_rejected", "dicom:STRANGER"),
        ("association_rejected", "dicom:MOD1"),
    ]
