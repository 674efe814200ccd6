from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tests.harness import Platform, platform


@pytest_asyncio.fixture
async def catalog(tmp_path: Path) -> AsyncIterator[Platform]:
    """The catalog alone, embedded (SQLite, embedded bus); tokens from ``mint``."""
    async with platform(tmp_path, services=["catalog"]) as p:
        yield p
