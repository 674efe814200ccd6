"""Licence approvals are scoped: a collection's manager approves a licence for the collections
they manage, never for every collection under that licence; only an admin approves it whole."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio

from tests.auth.conftest import (
    admin_token,
    bearer,
    claims_of,
    collection_known,
    login,
    refresh,
    register,
)
from tests.harness import Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIC = "TCIA-Restricted"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def admin(p: Platform) -> dict[str, str]:
    return bearer(await admin_token(p.client))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def managers(p: Platform, admin: dict[str, str]) -> dict[str, dict[str, str]]:
    for name in ("Lim-X", "Lim-Y", "Lim-Z"):
        await collection_known(p, name, LIC)
    out = {}
    for who, coll in (("yan", "Lim-Y"), ("zed", "Lim-Z")):
        await register(p.client, who)
        r = await p.client.post(
            f"/api/auth/users/{who}/roles",
            headers=admin,
            json={"role": "manager", "collection": coll},
        )
        assert r.status_code == 201
        out[who] = bearer((await login(p.client, who, f"{who}-password-1"))["access_token"])
    return out


async def _approve(p: Platform, by: dict[str, str], who: str, **body: Any) -> Any:
    return await p.client.post(
        f"/api/auth/users/{who}/licences/{LIC}/approve", headers=by, json=body or None
    )


async def _reads(p: Platform, tokens: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """The caller's fresh tokens, and which of Lim-X/Y/Z they may read."""
    tokens = (await refresh(p.client, tokens["refresh_token"])).json()
    principal = await p.runtime.verifier.principal(tokens["access_token"])
    readable = {c for c in ("Lim-X", "Lim-Y", "Lim-Z") if principal.can_read(c, "limited", LIC)}
    return tokens, readable


async def test_a_manager_approves_a_licence_only_for_the_collections_they_manage(
    p: Platform, admin: dict[str, str], managers: dict[str, dict[str, str]]
) -> None:
    zed, yan = managers["zed"], managers["yan"]
    await register(p.client, "una")
    tokens = await login(p.client, "una", "una-password-1")
    assert (
        await p.client.post("/api/auth/me/accept-policy", headers=bearer(tokens["access_token"]))
    ).is_success
    assert (
        await p.client.post(f"/api/auth/me/licences/{LIC}", headers=bearer(tokens["access_token"]))
    ).json()["status"] == "requested"

    # zed's approval names zed's collection, and una reads that one only
    r = await _approve(p, zed, "una")
    assert r.status_code == 200, r.text
    assert r.json()["collections"] == ["Lim-Z"] and r.json()["active"] is True
    tokens, readable = await _reads(p, tokens)
    assert readable == {"Lim-Z"}
    assert LIC not in claims_of(tokens["access_token"])["lic"]

    # a collection zed does not manage, or one not under the licence, cannot be named
    r = await _approve(p, zed, "una", collections=["Lim-X"])
    assert r.status_code == 403 and "Lim-X" in r.json()["detail"]
    r = await _approve(p, admin, "una", collections=["Nowhere"])
    assert r.status_code == 422 and "not under" in r.json()["detail"]

    # another manager adds theirs; revoking takes away only the revoker's collections
    assert (await _approve(p, yan, "una")).json()["collections"] == ["Lim-Y", "Lim-Z"]
    r = await p.client.delete(f"/api/auth/users/una/licences/{LIC}", headers=zed)
    assert r.status_code == 204
    tokens, readable = await _reads(p, tokens)
    assert readable == {"Lim-Y"}

    # an admin approves the licence whole: every collection under it, now and later
    r = await _approve(p, admin, "una")
    assert r.json()["collections"] is None
    tokens, readable = await _reads(p, tokens)
    assert readable == {"Lim-X", "Lim-Y", "Lim-Z"}
    assert (await _approve(p, zed, "una")).json()["collections"] is None  # nothing narrowed
    # a manager revoking a whole approval takes away their own collection only
    assert (
        await p.client.delete(f"/api/auth/users/una/licences/{LIC}", headers=zed)
    ).status_code == 204
    tokens, readable = await _reads(p, tokens)
    assert readable == {"Lim-X", "Lim-Y"}
    me = (await p.client.get("/api/auth/me", headers=bearer(tokens["access_token"]))).json()
    (held,) = [x for x in me["licences"] if x["licence_id"] == LIC]
    assert "Lim-Z" not in held["collections"] and "Lim-X" in held["collections"]


async def test_a_manager_approving_for_themself_gets_their_collection_only(
    p: Platform, managers: dict[str, dict[str, str]]
) -> None:
    zed = managers["zed"]
    tokens = await login(p.client, "zed", "zed-password-1")
    await p.client.post("/api/auth/me/accept-policy", headers=zed)
    assert (await _approve(p, zed, "zed")).json()["collections"] == ["Lim-Z"]
    _, readable = await _reads(p, tokens)
    assert readable == {"Lim-Z"}


async def test_a_manager_declines_a_request_whole(
    p: Platform, managers: dict[str, dict[str, str]]
) -> None:
    await register(p.client, "vic")
    vic = bearer((await login(p.client, "vic", "vic-password-1"))["access_token"])
    await p.client.post(f"/api/auth/me/licences/{LIC}", headers=vic)
    r = await p.client.delete(f"/api/auth/users/vic/licences/{LIC}", headers=managers["zed"])
    assert r.status_code == 204
    (held,) = (await p.client.get("/api/auth/me/licences", headers=vic)).json()
    assert held["status"] == "revoked" and held["active"] is False
