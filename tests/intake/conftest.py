from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.harness import Platform, admin_headers, platform


@pytest_asyncio.fixture
async def intake(tmp_path: Path) -> AsyncIterator[Platform]:
    """Intake alone, embedded (SQLite, embedded bus, files), with collection Demo-CT."""
    async with platform(tmp_path, services=["intake"]) as p:
        r = await p.client.post(
            "/api/intake/collections",
            json={"name": "Demo-CT", "licence": "CC-BY-4.0"},
            headers=admin_headers(),
        )
        assert r.status_code == 201, r.text
        yield p
