"""A mirror site (`imarc up` with IMARC_SITE_ROLE=mirror) SIGKILLed half-way through
mirroring and started again converges: every public object and catalog row of the source,
each feed entry applied once."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from pathlib import Path

import httpx
import pytest

from imarc.stack import free_port
from tests.catalog import helpers as h
from tests.faults import checks
from tests.faults.test_embedded_kill import Up
from tests.harness import make_settings, runtime_app, serving
from tests.mirror.sites import SERVICES, public_objects, publish, record, site

pytestmark = [pytest.mark.faults]
SERIES = 30


async def published_on_a(path: Path) -> None:
    async with site(path) as (a, _):
        for i in range(SERIES):
            await publish(a, h.ct(10, patient_id=f"K-{i:02d}"), record())


def rows(catalog: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(catalog) as db:
        return {
            t: sorted(db.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in ("series", "instances", "patients", "studies")
        }


def status_at_kill(data: Path) -> int:
    with sqlite3.connect(data / "db" / "catalog.sqlite") as db:
        return int(db.execute("SELECT entries FROM mirror_sources").fetchone()[0])


def test_a_mirror_killed_half_way_converges(tmp_path: Path) -> None:
    asyncio.run(published_on_a(tmp_path / "a"))
    _, app = runtime_app(make_settings(tmp_path / "a"), SERVICES)
    env = {**os.environ, "IMARC_SITE_ROLE": "mirror", "IMARC_SITE_NAME": "site-b"}
    b = Up(tmp_path / "b" / "var", free_port(), env)
    (tmp_path / "b").mkdir()
    try:
        with serving(app) as a_url:
            b.start()
            creds = json.loads((b.data / "admin-credentials.json").read_text())
            headers = checks.login(b.url, creds)

            def status() -> dict[str, object]:
                r = httpx.get(f"{b.url}/api/catalog/mirror", headers=headers, timeout=10)
                return dict(r.json()[0])

            r = httpx.put(
                f"{b.url}/api/catalog/mirror",
                json={"url": a_url, "follow": True},
                headers=headers,
                timeout=30,
            )
            assert r.status_code == 200, r.text
            checks.wait_until("the mirror to be under way", lambda: int(status()["entries"]) >= 3)
            b.kill()
            print(f"killed after {status_at_kill(b.data)} of {SERIES} entries")
            b.start()
            headers = checks.login(b.url, creds)
            checks.wait_until("the mirror to catch up", lambda: bool(status()["caught_up"]))
            assert status()["entries"] == SERIES
            checks.wait_until(
                "B's catalog to index every series",
                lambda: len(rows(b.data / "db" / "catalog.sqlite")["series"]) == SERIES,
            )
            feed = httpx.get(f"{b.url}/api/feed", params={"limit": 1000}, timeout=30).json()
            subjects = [e["subject"] for e in feed["entries"]]
            assert len(subjects) == len(set(subjects)) == SERIES  # each applied once
    finally:
        b.stop()
    assert public_objects(b.data) == public_objects(tmp_path / "a")
    assert rows(b.data / "db" / "catalog.sqlite") == rows(tmp_path / "a" / "db" / "catalog.sqlite")
