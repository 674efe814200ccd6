"""The mirror feed: every public change, in order, resumable, with checksums, headers,
tombstones and attribution; limited collections only for those who may read them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from services.catalog.feed import append, read, sequence
from services.catalog.feed_runner import FeedRunner
from services.common.contracts import service_for_path
from tests.catalog import helpers as h
from tests.harness import Platform, auth_header, mint, platform

T0 = "2026-01-01T00:00:00+00:00"
POLICY = "https://www.cancerimagingarchive.net/data-usage-policies-and-restrictions/"


def open_collection(name: str = "Demo-CT", **kw: Any) -> Any:
    return h.collection(name, **kw).model_copy(
        update={"citation": "Doe J. Demo CT (2026)", "data_usage_policy": POLICY}
    )


async def all_entries(p: Platform, limit: int = 100, **headers: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after: str | None = None
    for _ in range(100):  # bounded
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        r = await p.client.get("/api/feed", params=params, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        out += page["entries"]
        after = page["next"]
        if not page["more"]:
            return out
    raise AssertionError("the feed never ended")


async def test_feed_orders_every_public_change(catalog: Platform) -> None:
    coll = open_collection()
    ct = h.ct(2, patient_id="F-1")
    first = h.published(ct, coll)
    await h.deliver(catalog, coll.event("/site-a/intake", subject=coll.name), first)
    await h.deliver(catalog, first)  # redelivered: no second entry
    again = h.series_of(
        ct[0], 3, patient_id="F-1",
        study_uid=ct[0].StudyInstanceUID, series_uid=ct[0].SeriesInstanceUID,
    )  # fmt: skip
    await h.deliver(catalog, h.published(again, coll))
    uid = ct[0].SeriesInstanceUID
    await h.deliver(catalog, h.withdrawn("Demo-CT", uid))

    entries = await all_entries(catalog)
    assert [(e["type"], e["subject"], e.get("version")) for e in entries] == [
        ("collection.updated", "Demo-CT", None),
        ("series.published", uid, 1),
        ("series.republished", uid, 2),
        ("series.withdrawn", uid, None),
    ]
    record = entries[0]["data"]
    assert (record["doi"], record["citation"], record["data_usage_policy"]) == (
        "10.7937/demo.ct", "Doe J. Demo CT (2026)", POLICY,
    )  # fmt: skip
    assert record["licence"]["id"] == "cc-by-4.0"
    instances = entries[2]["data"]["instances"]
    assert len(instances) == 3
    assert {"key", "size", "sha256", "header"} <= set(instances[0])
    assert instances[0]["header"]["0020000E"]["Value"] == [uid]
    assert entries[3]["data"]["reason"] == "test"
    for e in entries:  # every entry, tombstones included, says what must be passed on
        assert e["attribution"]["data_usage_policy"] == POLICY
        assert POLICY in e["attribution"]["notice"]
        assert "Doe J. Demo CT (2026)" in e["attribution"]["notice"]

    # resumable page by page, and the same entries every time (written once)
    assert await all_entries(catalog, limit=1) == entries
    r = await catalog.client.get("/api/feed", params={"after": entries[1]["cursor"]})
    assert r.json()["entries"] == entries[2:]
    tail = r.json()["next"]
    assert tail == entries[-1]["cursor"]
    r = await catalog.client.get("/api/feed", params={"after": tail})
    assert r.json() == {"entries": [], "next": tail, "more": False}
    r = await catalog.client.get("/api/catalog/feed", params={"after": tail})
    assert r.json()["next"] == tail


async def test_limited_collections_only_to_those_who_may_read_them(catalog: Platform) -> None:
    secret = open_collection("Secret-MR", licence=h.TCIA_RESTRICTED, access="limited")
    await h.deliver(
        catalog,
        secret.event("/site-a/intake", subject=secret.name),
        h.published(h.mr(1, patient_id="S-1"), secret),
        h.published(h.ct(1, patient_id="P-1"), open_collection()),
    )
    anonymous = await all_entries(catalog)
    assert [e["collection"] for e in anonymous] == ["Demo-CT"]
    token = auth_header(mint(lic=["tcia-restricted"], dup=True))
    granted = await all_entries(catalog, **token)
    assert [e["collection"] for e in granted] == ["Secret-MR", "Secret-MR", "Demo-CT"]
    # the anonymous reader's cursor is past the hidden entries: nothing is re-read
    r = await catalog.client.get("/api/feed", params={"after": anonymous[-1]["cursor"]})
    assert r.json()["entries"] == []


async def test_a_cursor_not_given_by_the_feed_is_refused(catalog: Platform) -> None:
    r = await catalog.client.get("/api/feed", params={"after": "not-a-cursor"})
    assert r.status_code == 400
    assert "leave after= out to start from the beginning" in r.json()["detail"]


def test_the_gateway_sends_the_feed_to_the_catalog() -> None:
    assert service_for_path("/api/feed") == "catalog"


@pytest.mark.postgres
async def test_no_reader_skips_an_entry_committed_late(tmp_path: Path, pg_url: str) -> None:
    """Writers commit in any order while sequencers number and readers tail the feed:
    every reader sees every entry, each once, in the final order."""
    async with platform(tmp_path, services=["catalog"], database_url=pg_url) as p:
        db = p.runtime.contexts["catalog"].db
        writers, per_writer = 8, 15
        done = asyncio.Event()

        async def write(w: int) -> None:
            for i in range(per_writer):
                async with db.session() as s, s.begin():
                    entry = {"type": "collection.updated", "collection": f"C{w}",
                             "subject": f"{w}-{i}", "time": T0}  # fmt: skip
                    await append(s, entry)
                    await asyncio.sleep(0.001 * ((w * 7 + i) % 5))  # commit out of order

        async def number() -> None:
            while not done.is_set():
                await sequence(db)
                await asyncio.sleep(0)

        async def tail() -> list[str]:
            seen: list[str] = []
            after = 0
            for _ in range(20_000):  # bounded
                async with db.engine.connect() as conn:
                    entries, after = await read(conn, after, 7, None)
                seen += [e["subject"] for e in entries]
                if done.is_set() and not entries and len(seen) == writers * per_writer:
                    break
                await asyncio.sleep(0)
            return seen

        numbering = [asyncio.create_task(number()) for _ in range(3)]
        readers = [asyncio.create_task(tail()) for _ in range(3)]
        await asyncio.gather(*(write(w) for w in range(writers)))
        await sequence(db)
        done.set()
        await asyncio.gather(*numbering)
        seen = await asyncio.gather(*readers)
        async with db.engine.connect() as conn:
            final, _ = await read(conn, 0, 1000, None)
        order = [e["subject"] for e in final]
        assert len(order) == len(set(order)) == writers * per_writer
        for s in seen:
            assert s == order


@pytest.mark.rabbitmq
async def test_entries_are_pushed_with_their_cursor(
    tmp_path: Path, rabbit_url: str, unique: str
) -> None:
    import aio_pika

    async with platform(tmp_path, services=["catalog"]) as p:
        coll = open_collection()
        await h.deliver(
            p, coll.event("/site-a/intake", subject=coll.name), h.published(h.ct(1), coll)
        )
        pulled = await all_entries(p)
        conn = await aio_pika.connect(rabbit_url)
        try:
            channel = await conn.channel()
            exchange = await channel.declare_exchange(
                f"{unique}.imarc.feed", aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(f"{unique}.mirror", exclusive=True)
            await queue.bind(exchange, "#")
            runner = FeedRunner(p.runtime.contexts["catalog"].db, rabbit_url, f"{unique}.")
            try:
                assert await runner.push() == 2
                assert await runner.push() == 0  # the pushed mark is kept
            finally:
                await runner.stop()
            pushed = []
            for _ in range(2):
                msg = await queue.get(timeout=10)
                await msg.ack()
                assert msg.headers["cursor"] == msg.message_id
                pushed.append(json.loads(msg.body))
            assert pushed == pulled
        finally:
            await exchange.delete()
            await conn.close()
