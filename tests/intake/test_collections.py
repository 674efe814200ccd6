"""Registering collections: who may, what is checked, and the collection.updated event."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.common.events import CollectionUpdated
from services.intake.models import metadata
from tests.harness import Platform, admin_headers, auth_header, mint, platform
from tests.intake.helpers import events, submitter

COLLECTIONS = "/api/intake/collections"


async def test_manager_registers_a_collection_and_it_is_announced(intake: Platform) -> None:
    manager = auth_header(mint("mgr", roles=["manager"]))
    body = {
        "name": "Lung-MR_2026",
        "licence": "TCIA-Restricted",
        "access": "limited",
        "description": "MR of the lung",
        "doi": "10.7937/abc",
        "require_id_map": True,
        "citation": "Lung Group (2026). Lung-MR [Data set].",
        "data_usage_policy": "https://archive.example.org/policy",
    }
    r = await intake.client.post(COLLECTIONS, json=body, headers=manager)
    assert r.status_code == 201, r.text
    c = r.json()
    assert c["name"] == "Lung-MR_2026"
    assert c["licence"] == {
        "id": "TCIA-Restricted",
        "name": "TCIA Restricted License",
        "url": "https://www.cancerimagingarchive.net/data-usage-policies-and-restrictions/",
    }
    assert (c["access"], c["doi"], c["require_id_map"]) == ("limited", "10.7937/abc", True)

    announced = [e for e in await events(intake, CollectionUpdated.TYPE) if e.subject == c["name"]]
    assert len(announced) == 1
    payload = announced[0].payload(CollectionUpdated)
    assert (
        payload.licence.url
        == "https://www.cancerimagingarchive.net/data-usage-policies-and-restrictions/"
    )
    assert payload.model_dump(exclude={"licence"}) == {
        "name": "Lung-MR_2026",
        "access": "limited",
        "description": "MR of the lung",
        "doi": "10.7937/abc",
        "require_id_map": True,
        "citation": "Lung Group (2026). Lung-MR [Data set].",
        "data_usage_policy": "https://archive.example.org/policy",
        "face_reconstructable": False,
    }
    assert announced[0].source == "/site-a/intake"


async def test_defaults_and_read_back(intake: Platform) -> None:
    user = auth_header(mint("someone"))
    r = await intake.client.get(f"{COLLECTIONS}/Demo-CT", headers=user)
    assert r.status_code == 200
    c = r.json()
    assert (c["access"], c["require_id_map"], c["description"]) == ("public", False, "")
    assert c["licence"]["name"] == "CC BY 4.0"
    r = await intake.client.get(COLLECTIONS, headers=user)
    assert [x["name"] for x in r.json()] == ["Demo-CT"]


async def test_existing_name_is_a_conflict(intake: Platform) -> None:
    r = await intake.client.post(
        COLLECTIONS, json={"name": "Demo-CT", "licence": "CC-BY-3.0"}, headers=admin_headers()
    )
    assert r.status_code == 409
    assert r.json()["detail"] == "collection Demo-CT already exists"
    assert len(await events(intake, CollectionUpdated.TYPE)) == 1


async def test_unknown_licence_is_refused_naming_the_known_ones(intake: Platform) -> None:
    r = await intake.client.post(
        COLLECTIONS, json={"name": "X", "licence": "GPL"}, headers=admin_headers()
    )
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert detail.startswith("unknown licence 'GPL'; choose one of CC-BY-4.0, ")
    assert "TCIA-Restricted" in detail and "NCTN-Data-Archive" in detail


async def test_bad_names_are_refused_with_the_rule(intake: Platform) -> None:
    for name in ("has space", "a/b", "x" * 65, ""):
        r = await intake.client.post(
            COLLECTIONS, json={"name": name, "licence": "CC-BY-4.0"}, headers=admin_headers()
        )
        assert r.status_code == 422, name
        assert "collection name is 1 to 64 letters" in r.json()["detail"]


async def test_only_managers_and_admins_create(intake: Platform) -> None:
    body = {"name": "New", "licence": "CC-BY-4.0"}
    r = await intake.client.post(COLLECTIONS, json=body)
    assert r.status_code == 401
    for headers in (
        auth_header(mint("u", roles=["user", "curator"])),
        submitter("Demo-CT"),
        auth_header(mint("m", coll={"Demo-CT": ["manager"]})),  # manages another collection
    ):
        r = await intake.client.post(COLLECTIONS, json=body, headers=headers)
        assert r.status_code == 403
        assert r.json()["detail"].startswith("you are not allowed to create collections")


async def test_unknown_collection_says_how_to_create_it(intake: Platform) -> None:
    r = await intake.client.get(f"{COLLECTIONS}/Nope", headers=admin_headers())
    assert r.status_code == 404
    assert r.json()["detail"] == (
        "no collection named Nope; create it with `imarc collections create Nope --licence ID`"
    )


async def test_collection_manager_patches_and_it_is_announced(intake: Platform) -> None:
    manager = auth_header(mint("m", coll={"Demo-CT": ["manager"]}))
    r = await intake.client.patch(
        f"{COLLECTIONS}/Demo-CT",
        json={"licence": "CC-BY-NC-4.0", "access": "limited", "doi": "10.1/x"},
        headers=manager,
    )
    assert r.status_code == 200, r.text
    assert r.json()["licence"]["id"] == "CC-BY-NC-4.0"
    assert r.json()["description"] == ""  # untouched
    last = (await events(intake, CollectionUpdated.TYPE))[-1].payload(CollectionUpdated)
    assert (last.licence.id, last.licence.name, last.access, last.doi) == (
        "CC-BY-NC-4.0",
        "CC BY-NC 4.0",
        "limited",
        "10.1/x",
    )
    r = await intake.client.get(f"{COLLECTIONS}/Demo-CT", headers=manager)
    assert r.json()["access"] == "limited"
    policy = "https://archive.example.org/policy-2"
    r = await intake.client.patch(
        f"{COLLECTIONS}/Demo-CT", json={"data_usage_policy": policy}, headers=manager
    )
    assert (r.json()["data_usage_policy"], r.json()["doi"]) == (policy, "10.1/x")
    last = (await events(intake, CollectionUpdated.TYPE))[-1].payload(CollectionUpdated)
    assert (last.data_usage_policy, last.doi) == (policy, "10.1/x")


async def test_patch_needs_a_manager_of_that_collection(intake: Platform) -> None:
    for headers in (submitter("Demo-CT"), auth_header(mint("m", coll={"Other": ["manager"]}))):
        r = await intake.client.patch(
            f"{COLLECTIONS}/Demo-CT", json={"access": "limited"}, headers=headers
        )
        assert r.status_code == 403
    r = await intake.client.patch(
        f"{COLLECTIONS}/Demo-CT", json={"licence": "nope"}, headers=admin_headers()
    )
    assert r.status_code == 400
    r = await intake.client.patch(
        f"{COLLECTIONS}/Missing", json={"access": "limited"}, headers=admin_headers()
    )
    assert r.status_code == 404
    assert len(await events(intake, CollectionUpdated.TYPE)) == 1


async def test_listing_needs_a_login(intake: Platform) -> None:
    assert (await intake.client.get(COLLECTIONS)).status_code == 401


async def test_a_limited_collection_is_shown_only_to_those_who_may_see_it(
    intake: Platform,
) -> None:
    for name, lic in (("Lim-Q", "TCIA-Restricted"), ("Lim-R", "TCIA-Restricted")):
        r = await intake.client.post(
            COLLECTIONS,
            json={"name": name, "licence": lic, "access": "limited", "description": "secret"},
            headers=admin_headers(),
        )
        assert r.status_code == 201, r.text

    async def listed(**claims: Any) -> list[str]:
        r = await intake.client.get(COLLECTIONS, headers=auth_header(mint("who", **claims)))
        assert r.status_code == 200
        return [x["name"] for x in r.json()]

    assert await listed() == ["Demo-CT"]
    assert await listed(lic=["TCIA-Restricted"]) == ["Demo-CT"]  # policy not accepted
    licensed = {"lic": ["TCIA-Restricted"], "dup": True}
    assert await listed(**licensed) == ["Demo-CT", "Lim-Q", "Lim-R"]
    assert await listed(licc={"TCIA-Restricted": ["Lim-R"]}, dup=True) == ["Demo-CT", "Lim-R"]
    assert await listed(grants=["Lim-Q"], dup=True) == ["Demo-CT", "Lim-Q"]
    assert await listed(coll={"Lim-Q": ["submitter"]}) == ["Demo-CT", "Lim-Q"]
    assert await listed(coll={"Lim-R": ["curator"]}) == ["Demo-CT", "Lim-R"]
    assert await listed(roles=["admin"]) == ["Demo-CT", "Lim-Q", "Lim-R"]

    # one by name: the same 404 as a collection that does not exist
    outsider = auth_header(mint("who"))
    hidden = await intake.client.get(f"{COLLECTIONS}/Lim-Q", headers=outsider)
    missing = await intake.client.get(f"{COLLECTIONS}/Lim-Nope", headers=outsider)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["detail"].replace("Lim-Q", "X") == missing.json()["detail"].replace(
        "Lim-Nope", "X"
    )
    assert "secret" not in hidden.text
    granted = auth_header(mint("w", grants=["Lim-Q"], dup=True))
    r = await intake.client.get(f"{COLLECTIONS}/Lim-Q", headers=granted)
    assert r.status_code == 200 and r.json()["description"] == "secret"


async def test_migration_matches_the_models(tmp_path: Path) -> None:
    async with platform(tmp_path, services=["intake"]) as p:
        db = p.runtime.contexts["intake"].db
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), metadata)
            )
        assert diff == []


async def test_a_face_reconstructable_collection_is_always_limited_access(
    intake: Platform,
) -> None:
    manager = auth_header(mint("mgr", roles=["manager"]))
    r = await intake.client.post(
        COLLECTIONS,
        json={"name": "HN-CT", "licence": "CC-BY-4.0", "face_reconstructable": True},
        headers=manager,
    )
    assert r.status_code == 201, r.text
    assert (r.json()["access"], r.json()["face_reconstructable"]) == ("limited", True)
    announced = [e for e in await events(intake, CollectionUpdated.TYPE) if e.subject == "HN-CT"]
    assert announced[-1].payload(CollectionUpdated).face_reconstructable is True
    # asking for public access for it is refused, and nothing changes
    r = await intake.client.patch(
        f"{COLLECTIONS}/HN-CT", json={"access": "public"}, headers=manager
    )
    assert r.status_code == 409 and "face" in r.json()["detail"]
    r = await intake.client.post(
        COLLECTIONS,
        json={"name": "HN-2", "licence": "CC-BY-4.0", "access": "public",
              "face_reconstructable": True},
        headers=manager,
    )  # fmt: skip
    assert r.status_code == 409 and "limited" in r.json()["detail"]
    # marking a public collection makes it limited
    await intake.client.post(
        COLLECTIONS, json={"name": "Brain-MR", "licence": "CC-BY-4.0"}, headers=manager
    )
    r = await intake.client.patch(
        f"{COLLECTIONS}/Brain-MR", json={"face_reconstructable": True}, headers=manager
    )
    assert (r.json()["access"], r.json()["face_reconstructable"]) == ("limited", True)
