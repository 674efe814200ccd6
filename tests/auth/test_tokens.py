"""Tokens from the real auth service: the NBIA-compatible reply, forged and misused
tokens refused (by auth's own endpoint and by the verifier every service uses), key
rotation, refresh rotation and reuse detection, logout and revocation, guests."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from prometheus_client import REGISTRY

from services.auth.bootstrap import Auth
from services.auth.models import SigningKey
from services.common.security import InvalidToken
from tests.auth.conftest import (
    ADMIN,
    admin_token,
    bearer,
    claims_of,
    login,
    refresh,
    register,
    token_reply,
)
from tests.harness import Platform

pytestmark = pytest.mark.asyncio(loop_scope="module")


# -- the token reply -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/nbia-api/oauth/token", "/api/auth/token"])
async def test_password_grant_replies_in_the_nbia_shape(p: Platform, path: str) -> None:
    # NBIA 1.x clients send their public client id and secret along with the password.
    r = await token_reply(
        p.client, *ADMIN, path=path, client_id="nbiaRestAPIClient", client_secret="public"
    )
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert list(body) == [
        "access_token",
        "token_type",
        "expires_in",
        "refresh_token",
        "refresh_expires_in",
        "scope",
    ]
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert body["refresh_expires_in"] > body["expires_in"]
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "RS256" and header["kid"]
    c = claims_of(body["access_token"])
    assert c["sub"] == "admin" and c["iss"] == "imarc" and c["aud"] == "imarc"
    assert c["typ"] == "access" and c["exp"] - c["iat"] == 3600 and c["nbf"] == c["iat"]
    assert c["roles"] == ["admin", "user"] and c["jti"] and c["azp"] == "nbiaRestAPIClient"
    assert body["scope"] == c["scope"]
    # the JWKS verifies it
    jwks = (await p.client.get("/api/auth/.well-known/jwks.json")).json()
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    assert "d" not in key  # public parts only
    jwt.decode(body["access_token"], jwt.PyJWK(key).key, algorithms=["RS256"], audience="imarc")


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        (
            {"grant_type": "password", "username": "admin", "password": "nope-nope-nope"},
            401,
            "invalid_grant",
        ),
        (
            {"grant_type": "password", "username": "nobody-here", "password": "whatever-123"},
            401,
            "invalid_grant",
        ),
        ({"grant_type": "password", "username": "", "password": ""}, 400, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "x"}, 400, "unsupported_grant_type"),
        ({"grant_type": "refresh_token", "refresh_token": "not-a-token"}, 401, "invalid_grant"),
        (
            {"grant_type": "client_credentials", "client_id": "client-00", "client_secret": "x"},
            401,
            "invalid_client",
        ),
    ],
    ids=[
        "wrong-password",
        "unknown-user",
        "missing-username",
        "unsupported-grant",
        "garbage-refresh",
        "unknown-client",
    ],
)
async def test_token_errors_are_oauth_error_objects(
    p: Platform, form: dict[str, str], status: int, error: str
) -> None:
    r = await p.client.post(
        "/nbia-api/oauth/token", data=form, headers={"X-Forwarded-For": "198.51.100.7"}
    )
    assert r.status_code == status
    body = r.json()
    assert body["error"] == error
    description = body["error_description"]
    assert description and "\n" not in description and len(description) < 200
    assert "Traceback" not in r.text


async def test_a_wrong_username_and_a_wrong_password_look_the_same(p: Platform) -> None:
    """No account enumeration through the error."""
    headers = {"X-Forwarded-For": "198.51.100.8"}
    wrong_pw = await p.client.post(
        "/api/auth/token",
        headers=headers,
        data={"grant_type": "password", "username": "admin", "password": "not-the-password"},
    )
    no_user = await p.client.post(
        "/api/auth/token",
        headers=headers,
        data={"grant_type": "password", "username": "no-such-user", "password": "not-the-password"},
    )
    assert wrong_pw.status_code == no_user.status_code == 401
    assert wrong_pw.json() == no_user.json()


async def test_token_outcomes_are_counted_for_operators(p: Platform) -> None:
    labels = {"grant": "password", "outcome": "refused"}
    before = REGISTRY.get_sample_value("imarc_auth_token_requests_total", labels) or 0
    await p.client.post(
        "/api/auth/token",
        headers={"X-Forwarded-For": "198.51.100.9"},
        data={"grant_type": "password", "username": "admin", "password": "not-it-either"},
    )
    assert REGISTRY.get_sample_value("imarc_auth_token_requests_total", labels) == before + 1
    assert "imarc_auth_token_requests_total" in p.metrics()


# -- forged and misused tokens ---------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"


def _rogue_key() -> Any:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


Forge = Callable[[Platform, dict[str, Any], dict[str, Any]], str]


def _signed(claims_change: dict[str, Any]) -> Forge:
    """A token signed with the real, current key, with some claims changed."""

    def forge(p: Platform, good: dict[str, Any], _: dict[str, Any]) -> str:
        kid, key = p.runtime.deps_of(Auth).keyring.signer()
        return jwt.encode({**good, **claims_change}, key, algorithm="RS256", headers={"kid": kid})

    return forge


def _no_expiry(p: Platform, good: dict[str, Any], _: dict[str, Any]) -> str:
    kid, key = p.runtime.deps_of(Auth).keyring.signer()
    forever = {k: v for k, v in good.items() if k != "exp"}
    return jwt.encode(forever, key, algorithm="RS256", headers={"kid": kid})


def _alg_none(p: Platform, good: dict[str, Any], _: dict[str, Any]) -> str:
    kid = p.runtime.deps_of(Auth).keyring.signer()[0]
    return _unsigned({"alg": "none", "typ": "JWT", "kid": kid}, {**good, "roles": ["admin"]}) + "."


def _hs256_with_public_key(p: Platform, good: dict[str, Any], _: dict[str, Any]) -> str:
    # The classic key-confusion attack: HMAC keyed with the published RSA public key.
    kid, key = p.runtime.deps_of(Auth).keyring.signer()
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = _unsigned(
        {"alg": "HS256", "typ": "JWT", "kid": kid}, {**good, "roles": ["admin"]}
    )
    sig = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(sig)}"


def _unknown_kid(p: Platform, good: dict[str, Any], _: dict[str, Any]) -> str:
    return jwt.encode(good, _rogue_key(), algorithm="RS256", headers={"kid": "rogue-key"})


def _real_kid_wrong_key(p: Platform, good: dict[str, Any], _: dict[str, Any]) -> str:
    kid = p.runtime.deps_of(Auth).keyring.signer()[0]
    return jwt.encode(good, _rogue_key(), algorithm="RS256", headers={"kid": kid})


def _no_kid(p: Platform, good: dict[str, Any], _: dict[str, Any]) -> str:
    _, key = p.runtime.deps_of(Auth).keyring.signer()
    return jwt.encode(good, key, algorithm="RS256")


def _tampered(p: Platform, good: dict[str, Any], tokens: dict[str, Any]) -> str:
    header, _, sig = tokens["access_token"].split(".")
    body = _b64(json.dumps({**good, "roles": ["admin"], "sub": "admin"}).encode())
    return f"{header}.{body}.{sig}"


def _refresh_as_access(p: Platform, good: dict[str, Any], tokens: dict[str, Any]) -> str:
    return str(tokens["refresh_token"])


NOW = int(time.time())
ATTACKS: list[tuple[str, Forge, str]] = [
    ("alg none", _alg_none, "algorithm"),
    ("HS256 signed with the public key", _hs256_with_public_key, "algorithm"),
    ("expired", _signed({"iat": NOW - 7200, "nbf": NOW - 7200, "exp": NOW - 120}), "expired"),
    ("not yet valid", _signed({"nbf": NOW + 3600, "exp": NOW + 7200}), "not valid yet"),
    ("wrong audience", _signed({"aud": "another-archive"}), "audience"),
    ("wrong issuer", _signed({"iss": "https://evil.example"}), "issuer"),
    ("no expiry", _no_expiry, "invalid"),
    ("unknown kid", _unknown_kid, "unknown key"),
    ("real kid, another key", _real_kid_wrong_key, "signature"),
    ("no kid", _no_kid, "names no signing key"),
    ("tampered claims", _tampered, "signature"),
    ("refresh token used as access token", _refresh_as_access, "refresh token cannot"),
    ("garbage", lambda *_: "not.a.jwt", "malformed"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def victim(p: Platform) -> dict[str, Any]:
    await register(p.client, "victim", "victim-password-1")
    return await login(p.client, "victim", "victim-password-1")


async def test_a_good_token_is_accepted(p: Platform, victim: dict[str, Any]) -> None:
    """The control for the attacks below: the same endpoint accepts the real token."""
    r = await p.client.get("/api/auth/me", headers=bearer(victim["access_token"]))
    assert r.status_code == 200 and r.json()["username"] == "victim"
    forged_ok = _signed({})(p, claims_of(victim["access_token"]), victim)
    assert (await p.client.get("/api/auth/me", headers=bearer(forged_ok))).status_code == 200


@pytest.mark.parametrize(("name", "forge", "why"), ATTACKS, ids=[a[0] for a in ATTACKS])
async def test_forged_or_misused_tokens_are_refused(
    p: Platform, victim: dict[str, Any], name: str, forge: Forge, why: str
) -> None:
    token = forge(p, claims_of(victim["access_token"]), victim)
    # auth's own protected endpoint
    r = await p.client.get("/api/auth/me", headers=bearer(token))
    assert r.status_code == 401, f"{name}: {r.status_code} {r.text}"
    assert why in r.json()["detail"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    # the verifier every other service uses
    with pytest.raises(InvalidToken, match=why):
        await p.runtime.verifier.verify(token)


# -- refresh tokens ----------------------------------------------------------------


async def test_refresh_rotates_and_reuse_ends_the_session(p: Platform) -> None:
    await register(p.client, "rita", "rita-password-1")
    first = await login(p.client, "rita", "rita-password-1")
    r = await refresh(p.client, first["refresh_token"])
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert claims_of(second["access_token"])["sid"] == claims_of(first["access_token"])["sid"]
    # the used refresh token comes back (stolen, or replayed): refused…
    again = await refresh(p.client, first["refresh_token"])
    assert again.status_code == 401 and again.json()["error"] == "invalid_grant"
    # …and the whole session ends: the rotated refresh token and its access token too
    assert (await refresh(p.client, second["refresh_token"])).status_code == 401
    me = await p.client.get("/api/auth/me", headers=bearer(second["access_token"]))
    assert me.status_code == 401 and "revoked" in me.json()["detail"]
    # another login is a new session and works
    assert (await login(p.client, "rita", "rita-password-1"))["access_token"]
    audit = await p.client.get(
        "/api/auth/audit",
        params={"action": "refresh_reuse"},
        headers=bearer(await admin_token(p.client)),
    )
    assert [e["subject"] for e in audit.json()] == ["rita"]


async def test_an_access_token_cannot_be_used_as_a_refresh_token(p: Platform) -> None:
    tokens = await login(p.client, *ADMIN)
    r = await refresh(p.client, tokens["access_token"])
    assert r.status_code == 401 and r.json()["error"] == "invalid_grant"


async def test_refresh_may_narrow_the_scope_but_not_widen_it(p: Platform) -> None:
    tokens = await login(p.client, *ADMIN, scope="read")
    assert claims_of(tokens["access_token"])["roles"] == ["user"]
    r = await refresh(p.client, tokens["refresh_token"], scope="read admin")
    assert r.status_code == 200
    assert claims_of(r.json()["access_token"])["roles"] == ["user"]
    assert r.json()["scope"] == "read"


# -- logout and revocation -------------------------------------------------------------


async def test_nbia_logout_ends_the_session(p: Platform) -> None:
    tokens = await login(p.client, *ADMIN)
    r = await p.client.get("/nbia-api/logout", headers=bearer(tokens["access_token"]))
    assert r.status_code == 200 and r.text == "You Have Logged Out successfully."
    me = await p.client.get("/api/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 401
    assert (await refresh(p.client, tokens["refresh_token"])).status_code == 401
    # logging out without a token is harmless
    assert (await p.client.get("/nbia-api/logout")).status_code == 200


async def test_api_logout_needs_the_token_of_the_session(p: Platform) -> None:
    assert (await p.client.post("/api/auth/logout")).status_code == 401
    tokens = await login(p.client, *ADMIN)
    r = await p.client.post("/api/auth/logout", headers=bearer(tokens["access_token"]))
    assert r.status_code == 200
    assert (await refresh(p.client, tokens["refresh_token"])).status_code == 401


async def test_revocation_of_refresh_and_access_tokens(p: Platform) -> None:
    tokens = await login(p.client, *ADMIN)
    r = await p.client.post("/api/auth/revoke", data={"token": tokens["refresh_token"]})
    assert r.status_code == 200
    refused = await refresh(p.client, tokens["refresh_token"])
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_grant"

    other = await login(p.client, *ADMIN)
    assert (await p.client.get("/api/auth/me", headers=bearer(other["access_token"]))).is_success
    await p.client.post("/api/auth/revoke", data={"token": other["access_token"]})
    me = await p.client.get("/api/auth/me", headers=bearer(other["access_token"]))
    assert me.status_code == 401
    # RFC 7009: an unknown token is not an error
    junk = await p.client.post("/api/auth/revoke", data={"token": "junk"})
    assert junk.status_code == 200
    # every answer is the empty JSON object the OpenAPI document describes, never cached
    schema = (await p.client.get("/openapi.json")).json()
    ok = schema["paths"]["/api/auth/revoke"]["post"]["responses"]["200"]
    assert list(ok["content"]) == ["application/json"]
    for answer in (r, junk):
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == {} and answer.headers["cache-control"] == "no-store"


# -- guests ----------------------------------------------------------------------------


async def test_nbia_guest_gets_an_anonymous_token(p: Platform) -> None:
    tokens = await login(p.client, "nbia_guest", "", client_id="NBIA")
    c = claims_of(tokens["access_token"])
    assert c["sub"] == "anonymous" and c["roles"] == [] and c["lic"] == []
    principal = await p.runtime.verifier.principal(tokens["access_token"])
    assert principal.anonymous
    assert not principal.can_read("Lim-A", "limited")
    me = await p.client.get("/api/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 401
    assert (await refresh(p.client, tokens["refresh_token"])).status_code == 200


# -- key rotation (last: it changes the signer for the tests after it) -----------------


async def test_key_rotation_keeps_old_tokens_valid_and_signs_with_the_new_key(
    p: Platform,
) -> None:
    headers = bearer(await admin_token(p.client))
    before = await login(p.client, *ADMIN)
    old_kid = jwt.get_unverified_header(before["access_token"])["kid"]

    r = await p.client.post("/api/auth/keys/rotate", headers=headers)
    assert r.status_code == 200
    new_kid, previous = r.json()["kid"], r.json()["previous"]
    assert previous == old_kid and new_kid != old_kid
    jwks = (await p.client.get("/api/auth/.well-known/jwks.json")).json()
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, new_kid}

    # tokens of the previous key still work, at auth and in the shared verifier
    assert (await p.client.get("/api/auth/me", headers=bearer(before["access_token"]))).is_success
    await p.runtime.verifier.verify(before["access_token"])
    # new tokens, and refreshed ones, use the new key
    after = await login(p.client, *ADMIN)
    assert jwt.get_unverified_header(after["access_token"])["kid"] == new_kid
    refreshed = await refresh(p.client, before["refresh_token"])
    assert refreshed.status_code == 200
    assert jwt.get_unverified_header(refreshed.json()["access_token"])["kid"] == new_kid

    keys = (await p.client.get("/api/auth/keys", headers=bearer(after["access_token"]))).json()
    states = {k["kid"]: k["state"] for k in keys}
    assert states[new_kid] == "active" and states[old_kid] == "previous"
    assert next(k for k in keys if k["kid"] == old_kid)["retire_at"]

    # rotating again, and again, retires no key whose tokens may still be in use: every
    # earlier token keeps working at auth and in the shared verifier
    rotated = [new_kid]
    for _ in range(2):
        r = await p.client.post("/api/auth/keys/rotate", headers=bearer(after["access_token"]))
        assert r.status_code == 200 and r.json()["previous"] == rotated[-1]
        rotated.append(r.json()["kid"])
    jwks = (await p.client.get("/api/auth/.well-known/jwks.json")).json()
    assert {k["kid"] for k in jwks["keys"]} == {old_kid, *rotated}
    for tokens in (before, after):
        assert (
            await p.client.get("/api/auth/me", headers=bearer(tokens["access_token"]))
        ).is_success
        await p.runtime.verifier.verify(tokens["access_token"])
    assert (await refresh(p.client, after["refresh_token"])).status_code == 200
    latest = await login(p.client, *ADMIN)
    assert jwt.get_unverified_header(latest["access_token"])["kid"] == rotated[-1]

    # a key is retired once the last token it signed has expired (time travel)
    keyring = p.runtime.deps_of(Auth).keyring
    async with keyring.db.session() as s, s.begin():
        row = await s.get(SigningKey, old_kid)
        assert row is not None and row.state == "previous"
        row.retire_at = datetime.now(UTC) - timedelta(seconds=1)
    await keyring.load()
    jwks = (await p.client.get("/api/auth/.well-known/jwks.json")).json()
    assert {k["kid"] for k in jwks["keys"]} == set(rotated)
    r = await p.client.get("/api/auth/me", headers=bearer(before["access_token"]))
    assert r.status_code == 401 and "unknown key" in r.json()["detail"]
    assert (await p.client.get("/api/auth/me", headers=bearer(after["access_token"]))).is_success


async def test_private_keys_are_encrypted_at_rest(p: Platform) -> None:
    raw = b"".join(f.read_bytes() for f in Path(p.settings.data_dir / "db").glob("auth.sqlite*"))
    assert b"PRIVATE KEY" not in raw
    _, key = p.runtime.deps_of(Auth).keyring.signer()
    d = key.private_numbers().d.to_bytes(256, "big")
    assert d not in raw
