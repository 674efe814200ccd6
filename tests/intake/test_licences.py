"""Licences made in the auth service name collections in intake: auth announces each
licence (licence.updated), intake keeps a copy and resolves a collection's licence from it
first, then from its built-in list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.auth.domain import SEED_LICENCES
from services.common.events import CollectionUpdated, Event, LicenceUpdated
from services.intake import domain
from services.intake.models import LicenceRecord
from tests.auth.conftest import ADMIN, cheap_argon2, login  # noqa: F401  (fixture)
from tests.harness import Platform, admin_headers, auth_header, platform
from tests.intake.helpers import events

COLLECTIONS = "/api/intake/collections"
LICENCES = "/api/auth/licences"
QUEUE = "intake.on_licence_updated"


async def _record(p: Platform, licence_id: str) -> LicenceRecord | None:
    async with p.runtime.contexts["intake"].db.session() as s:
        return await s.get(LicenceRecord, licence_id)


async def until_intake_knows(p: Platform, licence_id: str, **expected: object) -> None:
    """Poll until intake's copy of a licence has the expected fields (the event arrived)."""

    async def arrived() -> bool:
        row = await _record(p, licence_id)
        return row is not None and all(getattr(row, k) == v for k, v in expected.items())

    await p.wait_until(arrived, timeout=10, what=f"intake to learn of licence {licence_id}")


async def until_consumed(p: Platform, event: Event) -> None:
    messaging = p.runtime.contexts["intake"].messaging

    async def seen() -> bool:
        return await messaging.seen(QUEUE, event.id)

    await p.wait_until(seen, timeout=10, what=f"intake to consume {event.type}")


async def test_a_licence_created_in_auth_names_a_collection_in_intake(tmp_path: Path) -> None:
    async with platform(tmp_path, services=["auth", "intake"]) as p:
        admin = auth_header((await login(p.client, *ADMIN))["access_token"])
        dua = {
            "id": "Site-DUA-1",
            "name": "Site data use agreement 1",
            "url": "https://dua.example.org/1",
            "text": "Research use only.",
            "requires_approval": True,
        }
        r = await p.client.post(LICENCES, json=dua, headers=admin)
        assert r.status_code == 201, r.text
        await until_intake_knows(p, "Site-DUA-1")

        r = await p.client.post(
            COLLECTIONS, json={"name": "Site-CT", "licence": "Site-DUA-1"}, headers=admin
        )
        assert r.status_code == 201, r.text
        expected = {"id": "Site-DUA-1", "name": dua["name"], "url": dua["url"]}
        assert r.json()["licence"] == expected
        announced = [e for e in await events(p, CollectionUpdated.TYPE) if e.subject == "Site-CT"]
        assert len(announced) == 1
        assert announced[0].payload(CollectionUpdated).licence.model_dump() == expected

        # ids match case-sensitively; the refusal names auth's licences and the built-ins
        for wrong in ("site-dua-1", "GPL"):
            r = await p.client.post(
                COLLECTIONS, json={"name": "Other", "licence": wrong}, headers=admin
            )
            assert r.status_code == 400
            detail = r.json()["detail"]
            assert detail.startswith(f"unknown licence {wrong!r}; choose one of ")
            assert "Site-DUA-1" in detail and "CC0-1.0" in detail and "CC-BY-4.0" in detail

        # the seeded licences were announced too, and auth's record wins over a built-in one
        for seed in SEED_LICENCES:
            await until_intake_knows(p, seed.id, name=seed.name, url=seed.url)
        moved = "https://licences.example.org/cc-by-4.0"
        r = await p.client.patch(f"{LICENCES}/CC-BY-4.0", json={"url": moved}, headers=admin)
        assert r.status_code == 200
        await until_intake_knows(p, "CC-BY-4.0", url=moved)
        r = await p.client.post(
            COLLECTIONS, json={"name": "Open-CT", "licence": "CC-BY-4.0"}, headers=admin
        )
        assert r.json()["licence"] == {"id": "CC-BY-4.0", "name": "CC BY 4.0", "url": moved}

        # a change reaches new collections
        r = await p.client.patch(
            f"{LICENCES}/Site-DUA-1", json={"name": "Site DUA, version 2"}, headers=admin
        )
        assert r.status_code == 200
        await until_intake_knows(p, "Site-DUA-1", name="Site DUA, version 2")
        r = await p.client.post(
            COLLECTIONS, json={"name": "Site-MR", "licence": "Site-DUA-1"}, headers=admin
        )
        assert r.json()["licence"]["name"] == "Site DUA, version 2"

        # a deleted licence takes no new collections
        r = await p.client.post(LICENCES, json={"id": "Site-DUA-2", "name": "DUA 2"}, headers=admin)
        assert r.status_code == 201
        assert (await p.client.delete(f"{LICENCES}/Site-DUA-2", headers=admin)).status_code == 204
        await until_intake_knows(p, "Site-DUA-2", deleted=True)
        r = await p.client.post(
            COLLECTIONS, json={"name": "Late", "licence": "Site-DUA-2"}, headers=admin
        )
        assert r.status_code == 400
        assert r.json()["detail"].startswith("licence 'Site-DUA-2' has been deleted")
        assert "Site-DUA-2" not in r.json()["detail"].partition("choose one of")[2]


def test_auth_seeds_the_licences_intake_has_built_in_with_the_same_name_and_url() -> None:
    """So a collection shows one licence name and URL whether intake resolved it from
    auth's announcement or, before that arrived, from its built-in list."""
    for seed in SEED_LICENCES:
        builtin = domain.LICENCES[seed.id]
        assert (builtin.name, builtin.url) == (seed.name, seed.url)


async def _announce(p: Platform, event: Event) -> None:
    await p.runtime.bus.publish([event])
    await until_consumed(p, event)


def _licence_event(at: datetime, **fields: object) -> Event:
    payload = LicenceUpdated.model_validate({"id": "Site-DUA-9", "name": "DUA 9", **fields})
    return payload.event("/test/auth", subject=payload.id).model_copy(update={"time": at})


async def test_a_late_redelivery_does_not_undo_a_deletion(tmp_path: Path) -> None:
    async with platform(tmp_path, services=["intake"]) as p:
        t0 = datetime.now(UTC)
        created = _licence_event(t0, url="https://dua.example.org/9")
        await _announce(p, created)
        await _announce(p, _licence_event(t0 + timedelta(seconds=1), deleted=True))
        # at-least-once delivery: the creation arrives again, and an older change late
        await p.runtime.bus.publish([created])
        await _announce(p, _licence_event(t0 - timedelta(seconds=1), name="DUA 9 draft"))
        assert await p.runtime.bus.depth(QUEUE) == 0

        row = await _record(p, "Site-DUA-9")
        assert row is not None and row.deleted and row.name == "DUA 9"
        r = await p.client.post(
            COLLECTIONS, json={"name": "X", "licence": "Site-DUA-9"}, headers=admin_headers()
        )
        assert r.status_code == 400


async def test_deleting_a_builtin_licence_in_auth_refuses_it_in_intake(tmp_path: Path) -> None:
    async with platform(tmp_path, services=["intake"]) as p:
        r = await p.client.post(
            COLLECTIONS, json={"name": "Old", "licence": "CC-BY-3.0"}, headers=admin_headers()
        )
        assert r.status_code == 201
        gone = LicenceUpdated(id="CC-BY-3.0", name="CC BY 3.0", deleted=True)
        await _announce(p, gone.event("/test/auth", subject=gone.id))

        r = await p.client.post(
            COLLECTIONS, json={"name": "New", "licence": "CC-BY-3.0"}, headers=admin_headers()
        )
        assert r.status_code == 400
        known = r.json()["detail"].partition("choose one of ")[2].split(", ")
        assert "CC-BY-3.0" not in known and "CC-BY-4.0" in known
        # a collection under it keeps its licence and can still be changed otherwise
        r = await p.client.patch(
            f"{COLLECTIONS}/Old", json={"doi": "10.1/old"}, headers=admin_headers()
        )
        assert r.status_code == 200 and r.json()["licence"]["id"] == "CC-BY-3.0"
        r = await p.client.patch(
            f"{COLLECTIONS}/Old", json={"licence": "CC-BY-3.0"}, headers=admin_headers()
        )
        assert r.status_code == 400
