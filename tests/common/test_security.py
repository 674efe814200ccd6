"""Who may read what, and how verification keys follow the auth service's key set."""

from __future__ import annotations

import asyncio
import hashlib

import httpx
import jwt
import pytest

from services.common.security import (
    InvalidToken,
    JwksClient,
    Principal,
    RevocationClient,
    TokenVerifier,
)
from tests.harness import mint, static_jwks


def test_public_collections_are_open_to_everyone() -> None:
    assert Principal().can_read("Open", "public")


@pytest.mark.parametrize(
    ("principal", "allowed"),
    [
        (Principal(), False),
        (Principal(subject="u", licences=frozenset({"TCIA-Restricted"})), False),  # no policy
        (Principal(subject="u", policy_accepted=True), False),  # no licence, no grant
        (Principal(subject="u", policy_accepted=True, licences=frozenset({"Other"})), False),
        (
            Principal(subject="u", policy_accepted=True, licences=frozenset({"TCIA-Restricted"})),
            True,
        ),
        (Principal(subject="u", policy_accepted=True, grants=frozenset({"Closed"})), True),
        (Principal(subject="a", roles=frozenset({"admin"})), True),
        (Principal(subject="c", collection_roles={"Closed": frozenset({"curator"})}), True),
        (Principal(subject="c", collection_roles={"Other": frozenset({"manager"})}), False),
    ],
)
def test_limited_collections_need_policy_and_licence_or_grant(
    principal: Principal, allowed: bool
) -> None:
    assert principal.can_read("Closed", "limited", "TCIA-Restricted") is allowed


def test_submitters_are_held_to_their_collection_and_site() -> None:
    p = Principal(
        subject="s", collection_roles={"C": frozenset({"submitter"})}, sites=frozenset({"site-1"})
    )
    assert p.can_submit("C", "site-1")
    assert not p.can_submit("C", "site-2")
    assert not p.can_submit("D", "site-1")


async def test_jwks_client_drops_retired_keys_after_max_age() -> None:
    served = {"jwks": static_jwks()}

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=served["jwks"])

    keys = JwksClient(
        "http://auth.test/jwks",
        max_age=0.2,
        min_refresh=0.0,
        transport=httpx.MockTransport(handler),
    )
    verifier = TokenVerifier(keys, issuer="imarc", audience="imarc")
    token = mint("someone")
    assert (await verifier.verify(token))["sub"] == "someone"
    served["jwks"] = {"keys": []}  # the key is retired at the auth service
    await asyncio.sleep(0.25)
    with pytest.raises(InvalidToken, match="unknown key"):
        await verifier.verify(token)


async def test_alg_none_is_refused() -> None:
    token = jwt.encode({"sub": "x", "iss": "imarc", "aud": "imarc"}, None, algorithm="none")
    verifier = TokenVerifier(JwksClient("http://unused"), issuer="imarc", audience="imarc")
    with pytest.raises(InvalidToken, match="algorithm"):
        await verifier.verify(token)


async def test_revocation_client_follows_the_auth_services_list() -> None:
    served = {"jti": [], "sid": [], "sub_sha256": []}
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, json=served)

    client = RevocationClient(
        "http://auth.test/revocations", max_age=0.1, transport=httpx.MockTransport(handler)
    )
    claims = {"sub": "alice", "sid": "s-1", "jti": "j-1"}
    assert not await client.is_revoked(claims)
    served["sid"] = ["s-1"]  # alice logs out
    assert not await client.is_revoked(claims), "the list is kept for max_age"
    await asyncio.sleep(0.15)
    assert await client.is_revoked(claims)
    served.update(sid=[], sub_sha256=[hashlib.sha256(b"bob").hexdigest()])  # bob disabled
    await asyncio.sleep(0.15)
    assert not await client.is_revoked(claims)
    assert await client.is_revoked({"sub": "bob", "sid": "s-9", "jti": "j-9"})
    assert len(calls) == 3


async def test_revocation_client_keeps_its_list_when_auth_is_unreachable() -> None:
    state = {"up": True}

    def handler(request: httpx.Request) -> httpx.Response:
        if not state["up"]:
            raise httpx.ConnectError("down")
        return httpx.Response(200, json={"sid": ["s-1"]})

    client = RevocationClient(
        "http://auth.test/revocations", max_age=0.05, transport=httpx.MockTransport(handler)
    )
    assert await client.is_revoked({"sid": "s-1"})
    state["up"] = False
    await asyncio.sleep(0.06)
    assert await client.is_revoked({"sid": "s-1"})


async def test_domain_errors_become_their_status_with_the_message() -> None:
    import httpx
    from fastapi import APIRouter

    from services.common.app import Conflict, NotFound, create_app

    class NoSuchThing(NotFound):
        pass

    r = APIRouter()

    @r.get("/thing/{name}")
    async def thing(name: str) -> dict[str, str]:
        if name == "taken":
            raise Conflict("thing taken already exists; choose another name")
        raise NoSuchThing(f"no thing named {name}; create it first")

    app = create_app("t")
    app.include_router(r)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://t"
    ) as client:
        missing = await client.get("/thing/x")
        taken = await client.get("/thing/taken")
    assert missing.status_code == 404
    assert missing.json() == {"detail": "no thing named x; create it first"}
    assert taken.status_code == 409
