"""A mirror site keeps an exact copy of another site: every public object (by SHA-256) and
every catalog row, withdrawals applied, limited collections only with a token that may
read them; stopped half-way and restarted it converges with nothing twice; it refuses
submissions, and its own feed re-publishes what it mirrored (mirrors chain)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from typer.testing import CliRunner, Result

from imarc.cli import app
from tests.catalog import helpers as h
from tests.harness import Platform, admin_headers, mint, platform
from tests.mirror.sites import (
    POLICY,
    catalog_rows,
    mirror_status,
    public_objects,
    publish,
    record,
    site,
    withdraw,
)


async def follow(b: Platform, url: str, **body: Any) -> dict[str, Any]:
    r = await b.client.put(
        "/api/catalog/mirror", json={"url": url, **body}, headers=admin_headers()
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


async def caught_up(b: Platform, what: str = "the mirror to catch up") -> dict[str, Any]:
    async def done() -> bool:
        (s,) = await mirror_status(b)
        return bool(s["caught_up"]) and await b.runtime.contexts["catalog"].messaging.pending() == 0

    await b.wait_until(done, what=what)
    # what the mirror emitted is indexed before the status says so only once relayed:
    # wait for the index as well (its consumers are done when the outbox is empty)
    (s,) = await mirror_status(b)
    return s


async def feed(p: Platform, **headers: str) -> list[dict[str, Any]]:
    r = await p.client.get("/api/feed", params={"limit": 1000}, headers=headers)
    return list(r.json()["entries"])


async def test_a_mirror_converges_applies_withdrawals_and_chains(tmp_path: Path) -> None:
    async with site(tmp_path / "a") as (a, a_url):
        coll = record()
        await publish(a, h.ct(3, patient_id="M-1"), coll)
        gone = await publish(a, h.mr(2, patient_id="M-2"), coll)
        secret = record("Secret-MR", licence=h.TCIA_RESTRICTED, access="limited")
        await publish(a, h.mr(2, patient_id="S-1"), secret)

        async with site(tmp_path / "b", site_role="mirror", site_name="site-b") as (b, b_url):
            status = await follow(b, a_url, follow=True)
            assert (status["state"], status["cursor"]) == ("following", "")
            status = await caught_up(b)
            # anonymous: the limited collection is not A's to give away
            assert public_objects(tmp_path / "b") == {
                k: v for k, v in public_objects(tmp_path / "a").items() if k.startswith("Demo-CT/")
            }
            assert status["instances"] == 5 and status["bytes"] > 0

            token = mint("dac", lic=["tcia-restricted"], dup=True)
            await follow(b, a_url, follow=True, token=token)  # the same source, now with a token
            r = await b.client.put(
                "/api/catalog/mirror",
                json={"url": a_url + "/", "follow": True, "token": token},
                headers=admin_headers(),
            )
            assert r.json()["authenticated"] is True and "token" not in r.json()
            # a new source from the beginning: B holds everything A may give this token
            await follow(b, a_url.replace("127.0.0.1", "localhost"), follow=True, token=token)
            await b.wait_until(lambda: _all_caught_up(b), what="both sources to catch up")
            assert public_objects(tmp_path / "b") == public_objects(tmp_path / "a")
            assert await catalog_rows(b) == await catalog_rows(a)

            # withdrawn on A → gone from B, objects and rows
            await withdraw(a, "Demo-CT", gone, "consent withdrawn")
            await b.wait_until(
                lambda: _same(tmp_path, a, b), what="the withdrawal to reach the mirror"
            )
            assert not any(gone in k for k in public_objects(tmp_path / "b"))

            # B serves the same data, with the same attribution
            uid = next(iter(public_objects(tmp_path / "a"))).split("/")[2]
            for p in (a, b):
                r = await p.client.get("/nbia-api/services/v4/getSeries",
                                       params={"SeriesInstanceUID": uid})  # fmt: skip
                assert r.json()[0]["Collection"] == "Demo-CT"
            r = await b.client.get("/nbia-api/services/v4/getImage",
                                   params={"SeriesInstanceUID": uid})  # fmt: skip
            assert r.status_code == 200
            import io
            import zipfile

            names = zipfile.ZipFile(io.BytesIO(r.content)).namelist()
            assert any(n.endswith("LICENSE") for n in names)
            b_feed = await feed(b, Authorization=f"Bearer {token}")
            assert b_feed[-1]["type"] == "series.withdrawn"
            assert b_feed[-1]["data"]["reason"] == "consent withdrawn"
            assert {e["attribution"]["data_usage_policy"] for e in b_feed} == {POLICY}

            # a mirror refuses submissions
            async with site(tmp_path / "c", site_role="mirror", site_name="site-c") as (c, _):
                await follow(c, b_url, follow=False, token=token)
                await c.wait_until(lambda: _all_caught_up(c), what="the chained mirror")
                await c.wait_until(lambda: _same(tmp_path, b, c, "b", "c"), what="C to equal B")
                assert await catalog_rows(c) == await catalog_rows(a)
                (s,) = await mirror_status(c)
                assert s["state"] == "done"


async def _all_caught_up(b: Platform) -> bool:
    return all(s["caught_up"] for s in await mirror_status(b))


async def _same(tmp: Path, a: Platform, b: Platform, a_dir: str = "a", b_dir: str = "b") -> bool:
    if public_objects(tmp / a_dir) != public_objects(tmp / b_dir):
        return False
    return await catalog_rows(a) == await catalog_rows(b)


async def test_stopped_half_way_and_restarted_it_converges(tmp_path: Path) -> None:
    async with site(tmp_path / "a") as (a, a_url):
        coll = record()
        for i in range(12):
            await publish(a, h.ct(2, patient_id=f"K-{i}"), coll)
        async with site(tmp_path / "b", site_role="mirror", site_name="site-b") as (b, _):
            await follow(b, a_url, follow=True)

            async def half_way() -> bool:
                (s,) = await mirror_status(b)
                return int(s["entries"]) >= 5

            await b.wait_until(half_way, what="the mirror to be half-way")
        # B stopped mid-mirror (its follower cancelled wherever it was); started again
        async with site(tmp_path / "b", site_role="mirror", site_name="site-b") as (b, _):
            await b.wait_until(lambda: _same(tmp_path, a, b), what="B to converge")
            (s,) = await mirror_status(b)
            assert s["entries"] == 12  # twelve publications, each applied once
            entries = await feed(b)  # and re-published once each
            assert len(entries) == len({e["subject"] for e in entries}) == 12


async def test_a_mirror_refuses_submissions_and_a_primary_refuses_to_mirror(
    tmp_path: Path,
) -> None:
    async with platform(tmp_path / "i", services=["intake"], site_role="mirror") as i:
        r = await i.client.post(
            "/api/intake/collections/Demo-CT/instances",
            content=b"x",
            headers={"Authorization": f"Bearer {mint('s', roles=['admin'])}"},
        )
        assert r.status_code == 503
        assert "mirror" in r.json()["detail"]
    async with site(tmp_path / "p") as (p, _):
        r = await p.client.put(
            "/api/catalog/mirror", json={"url": "http://127.0.0.1:9"}, headers=admin_headers()
        )
        assert r.status_code == 409
        assert "IMARC_SITE_ROLE=mirror" in r.json()["detail"]


async def imarc(url: str, *args: str) -> Result:
    token = mint("admin", roles=["admin"])
    argv = ["--url", url, "--token", token, *args]
    env = {"XDG_CONFIG_HOME": "/nonexistent", "IMARC_TOKEN": ""}
    return await asyncio.to_thread(CliRunner().invoke, app, argv, env=env)


async def test_imarc_mirror_shows_progress_until_caught_up(tmp_path: Path) -> None:
    async with site(tmp_path / "a") as (a, a_url):
        coll = record()
        for i in range(3):
            await publish(a, h.ct(2, patient_id=f"C-{i}"), coll)
        async with site(tmp_path / "b", site_role="mirror", site_name="site-b") as (b, b_url):
            result = await imarc(b_url, "mirror", "--from", a_url, "--collection", "demo-ct")
            assert result.exit_code == 0, result.output
            assert f"mirroring {a_url} into {b_url}" in result.output
            assert "3 entries applied, 6 instances" in result.output
            assert f"caught up with {a_url}" in result.output
            await b.wait_until(lambda: _same(tmp_path, a, b), what="B to hold what A has")
        async with site(tmp_path / "p") as (_, p_url):
            result = await imarc(p_url, "mirror", "--from", a_url)
            assert result.exit_code == 1
            assert "IMARC_SITE_ROLE=mirror" in result.output
