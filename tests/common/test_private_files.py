"""Files that hold identifiers are readable by their owner only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tests.harness import admin_headers, platform
from tests.intake.helpers import SUBMIT, ct


async def test_sqlite_files_are_created_0600(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        async with platform(tmp_path, services=["intake"]) as p:
            r = await p.client.post(
                "/api/intake/collections",
                json={"name": "Demo-CT", "licence": "CC-BY-4.0"},
                headers=admin_headers(),
            )
            assert r.status_code == 201
            r = await p.client.post(
                SUBMIT.format("Demo-CT"),
                content=ct(),
                headers={**admin_headers(), "Content-Type": "application/dicom"},
            )
            assert r.json()["accepted_count"] == 1
            files = sorted(tmp_path.rglob("*.sqlite*"))
            assert any(f.name == "intake.sqlite" for f in files), files
            modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
            assert set(modes.values()) == {0o600}, modes
    finally:
        os.umask(old)
