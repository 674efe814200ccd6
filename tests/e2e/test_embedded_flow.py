"""End to end in embedded mode: one process, SQLite, filesystem store, embedded bus."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.flow import login, run_flow
from tests.harness import platform

pytestmark = pytest.mark.e2e


async def test_submit_to_download_embedded(tmp_path: Path) -> None:
    async with platform(tmp_path) as p:
        admin = await login(
            p.client, p.settings.admin_username, p.settings.admin_password.get_secret_value()
        )
        await run_flow(p.client, admin)
