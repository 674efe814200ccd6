"""Accounts through the real auth service: registration and password storage, no
secret in logs or in the database, throttled guessing, the data usage policy,
licences, roles, grants, disabling and resetting accounts, machine clients, audit."""

from __future__ import annotations

import dataclasses
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select, update

from services.auth.bootstrap import Auth
from services.auth.models import (
    Account,
    LicenceAcceptance,
    LoginFailure,
    RefreshToken,
)
from services.auth.tokens import prune_expired
from tests.auth.conftest import (
    ADMIN,
    admin_token,
    bearer,
    claims_of,
    collection_known,
    from_address,
    login,
    refresh,
    register,
    token_reply,
)
from tests.harness import Platform, platform

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def admin(p: Platform) -> dict[str, str]:
    return bearer(await admin_token(p.client))


def db_bytes(p: Platform) -> bytes:
    return b"".join(f.read_bytes() for f in (p.settings.data_dir / "db").glob("auth.sqlite*"))


# -- registration and secrets ----------------------------------------------------------


async def test_self_registration_gives_the_user_role_only(p: Platform) -> None:
    out = await register(p.client, "Alice", "alice-password-1", email="alice@example.org")
    assert out["username"] == "alice" and out["kind"] == "user" and not out["disabled"]
    assert out["roles"] == [{"role": "user", "collection": None, "site": None}]
    tokens = await login(p.client, "ALICE", "alice-password-1")  # names are case-insensitive
    assert claims_of(tokens["access_token"])["roles"] == ["user"]
    again = await p.client.post(
        "/api/auth/users", json={"username": "alice", "password": "another-password"}
    )
    assert again.status_code == 409 and "taken" in again.json()["detail"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"username": "bob", "password": "short"}, "too short"),
        ({"username": "bob", "password": "bobbobbobbob", "email": "not-an-email"}, "e-mail"),
        ({"username": "nbia_guest", "password": "long-enough-1"}, "reserved"),
        ({"username": "bad name", "password": "long-enough-1"}, "username"),
    ],
)
async def test_registration_problems_are_explained(
    p: Platform, body: dict[str, Any], fragment: str
) -> None:
    r = await p.client.post("/api/auth/users", json=body)
    assert r.status_code == 422 and fragment in r.json()["detail"]


async def test_registration_with_roles_needs_an_admin(p: Platform, admin: dict[str, str]) -> None:
    body = {"username": "mallory", "password": "mallory-password-1", "roles": [{"role": "admin"}]}
    assert (await p.client.post("/api/auth/users", json=body)).status_code == 403
    r = await p.client.post(
        "/api/auth/users",
        headers=admin,
        json={**body, "username": "maria", "roles": [{"role": "curator"}]},
    )
    assert r.status_code == 201
    assert {x["role"] for x in r.json()["roles"]} == {"user", "curator"}


async def test_no_password_secret_or_token_in_the_database_or_logs(
    p: Platform, admin: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    password = "plain-Pa55word-sentinel"
    wrong = "wrong-Pa55word-sentinel"
    typed_into_username = "username-field-Pa55word-sentinel"
    await register(p.client, "dora", password)
    tokens = await login(p.client, "dora", password)
    await token_reply(p.client, "dora", wrong)
    await token_reply(p.client, typed_into_username, "x" * 12)
    reset = await p.client.post(
        "/api/auth/users/dora/password", headers=admin, json={"password": "reset-Pa55word-sentinel"}
    )
    assert reset.status_code == 200 and reset.json()["password"] is None
    generated = (await p.client.post("/api/auth/users/dora/password", headers=admin)).json()
    client = (
        await p.client.post("/api/auth/clients", headers=admin, json={"name": "mirror"})
    ).json()
    machine = (
        await p.client.post(
            "/api/auth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client["client_id"],
                "client_secret": client["client_secret"],
            },
        )
    ).json()
    secrets = {
        "password": password,
        "wrong password": wrong,
        "password typed as a username": typed_into_username,
        "reset password": "reset-Pa55word-sentinel",
        "generated password": generated["password"],
        "client secret": client["client_secret"],
        "access token": tokens["access_token"],
        "refresh token": tokens["refresh_token"],
        "client token": machine["access_token"],
        "admin password": ADMIN[1],
    }
    raw = db_bytes(p)
    logs = caplog.text
    assert "audit login" in logs  # the log did record what happened
    for what, secret in secrets.items():
        assert secret.encode() not in raw, f"{what} is in the database"
        assert secret not in logs, f"{what} is in the logs"
    async with p.runtime.contexts["auth"].db.session() as s:
        hashes = list(await s.scalars(select(Account.secret_hash)))
    assert hashes and all(h.startswith("$argon2id$") for h in hashes)


# -- throttling ------------------------------------------------------------------------


async def test_password_guessing_is_throttled_per_account_and_per_address(
    tmp_path: Path,
) -> None:
    async with platform(tmp_path, services=["auth"], trusted_proxies="127.0.0.1") as p:
        await register(p.client, "carol", "carol-password-1")
        statuses = []
        for _ in range(10):
            r = await token_reply(p.client, "carol", "guess-password")
            statuses.append(r.status_code)
            if r.status_code == 429:
                break
        assert statuses == [401] * 5 + [429]
        assert r.json()["error"] == "invalid_grant"
        assert 1 <= int(r.headers["retry-after"]) <= 30
        # while locked even the right password is refused: guessing gains nothing
        right = await token_reply(p.client, "carol", "carol-password-1")
        assert right.status_code == 429 and "try again in" in right.json()["error_description"]
        # other accounts from the same address still log in
        assert (await token_reply(p.client, *ADMIN)).status_code == 200

        # once the lockout is over (time travel in the database) the right password works
        async with p.runtime.contexts["auth"].db.session() as s, s.begin():
            await s.execute(
                update(LoginFailure).values(locked_until=datetime.now(UTC) - timedelta(1))
            )
        assert (await token_reply(p.client, "carol", "carol-password-1")).status_code == 200

        # spraying many accounts from one address locks that address (threshold 20,
        # the 5 failures above count too)
        sprayed = []
        for i in range(20):
            r = await token_reply(p.client, f"user{i}", "password-123")
            sprayed.append(r.status_code)
            if r.status_code == 429:
                break
        assert sprayed[-1] == 429 and len(sprayed) == 16
        assert (await token_reply(p.client, *ADMIN)).status_code == 429
        # another address is not affected
        elsewhere = await p.client.post(
            "/nbia-api/oauth/token",
            headers={"X-Forwarded-For": "203.0.113.9"},
            data={"grant_type": "password", "username": ADMIN[0], "password": ADMIN[1]},
        )
        assert elsewhere.status_code == 200
        audit = await p.client.get(
            "/api/auth/audit",
            params={"action": "login_throttled", "limit": 1000},
            headers=bearer(elsewhere.json()["access_token"]),
        )
        assert len(audit.json()) >= 3


async def test_a_client_cannot_dodge_the_address_limit_by_naming_other_addresses(
    tmp_path: Path,
) -> None:
    """No proxy is trusted by default: a client's own X-Forwarded-For is not its address."""
    async with platform(tmp_path, services=["auth"]) as p:
        sprayed = []
        for i in range(25):
            r = await token_reply(
                p.client, f"user{i}", "password-123", headers=from_address(f"198.51.100.{i}")
            )
            sprayed.append(r.status_code)
            if r.status_code == 429:
                break
        assert sprayed == [401] * 20 + [429]
        # the address is what was locked, whatever the header says next
        again = await token_reply(p.client, *ADMIN, headers=from_address("192.0.2.99"))
        assert again.status_code == 429


async def test_nobody_can_lock_the_admin_out(tmp_path: Path) -> None:
    """Guessing from one address locks that address out of the account; guessing spread
    over many locks the account, but only from addresses it never logged in from."""
    async with platform(tmp_path, services=["auth"], trusted_proxies="127.0.0.1") as p:
        office = from_address("192.0.2.10")
        assert (await token_reply(p.client, *ADMIN, headers=office)).status_code == 200

        statuses = []
        for _ in range(6):
            r = await token_reply(
                p.client, "admin", "a-guess-123", headers=from_address("203.0.113.1")
            )
            statuses.append(r.status_code)
        assert statuses == [401] * 5 + [429]
        # the guesser's address is locked out of the account, even with the password ...
        right = await token_reply(p.client, *ADMIN, headers=from_address("203.0.113.1"))
        assert right.status_code == 429
        # ... the admin is not, nor is anyone else from elsewhere
        assert (await token_reply(p.client, *ADMIN, headers=office)).status_code == 200
        assert (
            await token_reply(p.client, *ADMIN, headers=from_address("192.0.2.11"))
        ).status_code == 200

        # guesses spread over many addresses (4 each, under the per-pair limit)
        spread = []
        for i in range(10):
            for _ in range(4):
                r = await token_reply(
                    p.client, "admin", "a-guess-123", headers=from_address(f"198.51.100.{i}")
                )
                spread.append(r.status_code)
        assert 429 in spread
        # lock the account for addresses it has not logged in from, the right password too
        stranger = await token_reply(p.client, *ADMIN, headers=from_address("198.51.100.200"))
        assert stranger.status_code == 429 and int(stranger.headers["retry-after"]) >= 1
        # the admin logs in from where they did before
        assert (await token_reply(p.client, *ADMIN, headers=office)).status_code == 200
        assert (
            await token_reply(p.client, *ADMIN, headers=from_address("192.0.2.11"))
        ).status_code == 200


# -- data usage policy -----------------------------------------------------------------


async def test_the_data_usage_policy_is_accepted_once_and_shows_in_the_token(
    p: Platform, admin: dict[str, str]
) -> None:
    await register(p.client, "paula", "paula-password-1")
    tokens = await login(p.client, "paula", "paula-password-1")
    assert claims_of(tokens["access_token"])["dup"] is False
    policy = await p.client.get("/api/auth/policy", headers=bearer(tokens["access_token"]))
    assert policy.json()["accepted_at"] is None and "cite" in policy.json()["text"]
    anonymous = await p.client.post("/api/auth/me/accept-policy")
    assert anonymous.status_code == 401

    r = await p.client.post("/api/auth/me/accept-policy", headers=bearer(tokens["access_token"]))
    assert r.status_code == 200 and r.json()["accepted_at"]
    again = await p.client.post(
        "/api/auth/me/accept-policy", headers=bearer(tokens["access_token"])
    )
    assert again.json()["accepted_at"] == r.json()["accepted_at"]  # once

    refreshed = (await refresh(p.client, tokens["refresh_token"])).json()
    assert claims_of(refreshed["access_token"])["dup"] is True
    principal = await p.runtime.verifier.principal(refreshed["access_token"])
    assert principal.policy_accepted
    entries = (
        await p.client.get("/api/auth/audit", params={"subject": "paula"}, headers=admin)
    ).json()
    assert [e["action"] for e in entries].count("policy_accepted") == 1


# -- licences --------------------------------------------------------------------------


async def test_licences_are_seeded_and_public(p: Platform) -> None:
    r = await p.client.get("/api/auth/licences")
    by_id = {x["id"]: x for x in r.json()}
    assert {
        "CC-BY-4.0",
        "CC-BY-3.0",
        "CC-BY-NC-4.0",
        "CC-BY-NC-3.0",
        "TCIA-Restricted",
        "NCTN-Data-Archive",
    } <= set(by_id)
    assert by_id["CC-BY-NC-4.0"]["commercial_use"] is False
    assert by_id["TCIA-Restricted"]["requires_approval"] is True
    assert by_id["CC-BY-4.0"]["url"].startswith("https://creativecommons.org/")
    assert (await p.client.get("/api/auth/licences/NOPE")).status_code == 404


async def test_licence_crud_by_admin(p: Platform, admin: dict[str, str]) -> None:
    body = {
        "id": "Site-DUA-1",
        "name": "Site data use agreement",
        "url": "https://x.example",
        "text": "Use for research.",
        "commercial_use": False,
        "requires_approval": True,
    }
    r = await p.client.post("/api/auth/licences", json=body, headers=admin)
    assert r.status_code == 201 and r.json()["requires_approval"] is True
    assert (await p.client.post("/api/auth/licences", json=body, headers=admin)).status_code == 409
    r = await p.client.patch(
        "/api/auth/licences/Site-DUA-1", json={"text": "Use for research only."}, headers=admin
    )
    assert r.json()["text"] == "Use for research only." and r.json()["name"] == body["name"]
    assert (
        await p.client.delete("/api/auth/licences/Site-DUA-1", headers=admin)
    ).status_code == 204
    assert (await p.client.get("/api/auth/licences/Site-DUA-1")).status_code == 404


async def test_open_licences_are_approved_on_acceptance_restricted_ones_need_approval(
    p: Platform, admin: dict[str, str]
) -> None:
    await collection_known(p, "Lim-A", "TCIA-Restricted")
    await collection_known(p, "Pub-B", "CC-BY-4.0", access="public")
    await register(p.client, "rob", "rob-password-1")
    await register(p.client, "mona", "mona-password-1")
    await register(p.client, "otto", "otto-password-1")
    for who, coll in (("mona", "Lim-A"), ("otto", "Pub-B")):
        r = await p.client.post(
            f"/api/auth/users/{who}/roles",
            headers=admin,
            json={"role": "manager", "collection": coll},
        )
        assert r.status_code == 201
    rob = await login(p.client, "rob", "rob-password-1")
    rob_h = bearer(rob["access_token"])

    cc = await p.client.post("/api/auth/me/licences/CC-BY-4.0", headers=rob_h)
    assert cc.status_code == 200
    assert cc.json()["status"] == "approved" and cc.json()["active"] is True
    restricted = await p.client.post("/api/auth/me/licences/TCIA-Restricted", headers=rob_h)
    assert restricted.json()["status"] == "requested" and restricted.json()["active"] is False
    tokens = (await refresh(p.client, rob["refresh_token"])).json()
    assert claims_of(tokens["access_token"])["lic"] == ["CC-BY-4.0"]

    mona = bearer((await login(p.client, "mona", "mona-password-1"))["access_token"])
    otto = bearer((await login(p.client, "otto", "otto-password-1"))["access_token"])
    waiting = (await p.client.get("/api/auth/licence-requests", headers=mona)).json()
    assert [(x["username"], x["licence_id"]) for x in waiting] == [("rob", "TCIA-Restricted")]
    assert (await p.client.get("/api/auth/licence-requests", headers=otto)).json() == []

    # only a manager of a collection under that licence (or an admin) approves it
    url = "/api/auth/users/rob/licences/TCIA-Restricted/approve"
    assert (await p.client.post(url, headers=otto)).status_code == 403
    until = (datetime.now(UTC) + timedelta(days=365)).isoformat()
    r = await p.client.post(url, headers=mona, json={"expires_at": until})
    assert r.status_code == 200
    assert r.json()["approved_by"] == "mona" and r.json()["active"] is True
    assert r.json()["collections"] == ["Lim-A"]  # mona's collection, not the whole licence

    tokens = (await refresh(p.client, tokens["refresh_token"])).json()
    principal = await p.runtime.verifier.principal(tokens["access_token"])
    assert principal.licences == {"CC-BY-4.0"}
    assert principal.licence_collections == {"TCIA-Restricted": {"Lim-A"}}
    assert not principal.can_read("Lim-A", "limited", "TCIA-Restricted"), "policy not accepted"
    r = await p.client.post("/api/auth/me/accept-policy", headers=bearer(tokens["access_token"]))
    assert r.status_code == 200
    tokens = (await refresh(p.client, tokens["refresh_token"])).json()
    principal = await p.runtime.verifier.principal(tokens["access_token"])
    assert principal.can_read("Lim-A", "limited", "TCIA-Restricted")
    assert not principal.can_read("Lim-Z", "limited", "NCTN-Data-Archive")

    # an approval that has expired no longer counts
    db = p.runtime.contexts["auth"].db
    async with db.session() as s, s.begin():
        await s.execute(
            update(LicenceAcceptance)
            .where(LicenceAcceptance.licence_id == "TCIA-Restricted")
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    tokens = (await refresh(p.client, tokens["refresh_token"])).json()
    assert claims_of(tokens["access_token"])["lic"] == ["CC-BY-4.0"]
    assert claims_of(tokens["access_token"])["licc"] == {}

    # revoking an approval takes it out of the next token too
    assert (
        await p.client.delete("/api/auth/users/rob/licences/CC-BY-4.0", headers=admin)
    ).status_code == 204
    tokens = (await refresh(p.client, tokens["refresh_token"])).json()
    assert claims_of(tokens["access_token"])["lic"] == []

    actions = [
        (e["action"], e["actor"])
        for e in (
            await p.client.get("/api/auth/audit", params={"subject": "rob"}, headers=admin)
        ).json()
    ]
    assert ("licence_approved", "mona") in actions
    assert ("licence_requested", "rob") in actions
    assert ("licence_approved", "rob") in actions  # the open licence, self-approved
    # the refused approval is in the log, filed under the path that was refused
    denied = (
        await p.client.get(
            "/api/auth/audit", params={"action": "denied", "actor": "otto"}, headers=admin
        )
    ).json()
    assert denied and denied[0]["subject"] == url


# -- roles and grants ------------------------------------------------------------------


async def test_roles_and_grants_show_in_the_next_token(p: Platform, admin: dict[str, str]) -> None:
    await register(p.client, "sam", "sam-password-1")
    for body in (
        {"role": "submitter", "collection": "Demo-CT", "site": "site-a"},
        {"role": "curator", "collection": "Demo-MR"},
    ):
        r = await p.client.post("/api/auth/users/sam/roles", headers=admin, json=body)
        assert r.status_code == 201
    r = await p.client.post(
        "/api/auth/users/sam/roles",
        headers=admin,
        json={"role": "curator", "collection": "Demo-MR"},
    )
    assert r.status_code == 200  # already held
    r = await p.client.post(
        "/api/auth/users/sam/grants", headers=admin, json={"collection": "Lim-B"}
    )
    assert r.status_code == 201 and r.json()["active"] is True

    tokens = await login(p.client, "sam", "sam-password-1")
    c = claims_of(tokens["access_token"])
    assert c["roles"] == ["user"]
    assert c["coll"] == {"Demo-CT": ["submitter"], "Demo-MR": ["curator"]}
    assert c["sites"] == ["site-a"] and c["grants"] == ["Lim-B"]
    principal = await p.runtime.verifier.principal(tokens["access_token"])
    assert principal.can_submit("Demo-CT", "site-a") and not principal.can_submit("Demo-MR")
    assert principal.can_curate("Demo-MR")
    # the grant counts once sam has accepted the data usage policy
    assert not principal.can_read("Lim-B", "limited")
    assert dataclasses.replace(principal, policy_accepted=True).can_read("Lim-B", "limited")

    # a token asked for with scope "read" leaves the submitter and curator roles out
    narrow = claims_of(
        (await login(p.client, "sam", "sam-password-1", scope="read"))["access_token"]
    )
    assert narrow["coll"] == {} and narrow["grants"] == ["Lim-B"] and narrow["scope"] == "read"

    r = await p.client.delete(
        "/api/auth/users/sam/roles",
        headers=admin,
        params={"role": "curator", "collection": "Demo-MR"},
    )
    assert r.status_code == 204
    r = await p.client.delete(
        "/api/auth/users/sam/roles",
        headers=admin,
        params={"role": "curator", "collection": "Demo-MR"},
    )
    assert r.status_code == 404
    # the same, with the role in a body like the one that gave it
    r = await p.client.request(
        "DELETE",
        "/api/auth/users/sam/roles",
        headers=admin,
        json={"role": "submitter", "collection": "Demo-CT", "site": "site-a"},
    )
    assert r.status_code == 204
    assert (
        await p.client.delete("/api/auth/users/sam/grants/Lim-B", headers=admin)
    ).status_code == 204
    c = claims_of((await refresh(p.client, tokens["refresh_token"])).json()["access_token"])
    assert c["coll"] == {} and c["sites"] == [] and c["grants"] == []


async def test_control_characters_in_a_path_cannot_forge_an_audit_log_line(
    p: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    await register(p.client, "pathfinder", "pathfinder-password-1")
    pathfinder = bearer(
        (await login(p.client, "pathfinder", "pathfinder-password-1"))["access_token"]
    )
    caplog.set_level(logging.INFO, logger="imarc.auth")
    # a vertical tab, an escape sequence, NEL and U+2028 (some viewers break lines there)
    forged = "x%0Baudit%20login%20actor=admin%1B[2K%C2%85%E2%80%A8"
    r = await p.client.delete(
        f"/api/auth/users/{forged}/roles", headers=pathfinder, params={"role": "admin"}
    )
    assert r.status_code == 403
    (line,) = [m for m in caplog.messages if m.startswith("audit denied actor=pathfinder")]
    for raw, escaped in (("\x0b", "\\x0b"), ("\x1b", "\\x1b"), ("\x85", "\\x85")):
        assert raw not in line and escaped in line
    assert "\u2028" not in line and "\\u2028" in line


async def test_the_last_admin_cannot_be_removed(tmp_path: Path) -> None:
    async with platform(tmp_path, services=["auth"]) as p:
        admin = bearer(await admin_token(p.client))
        alone = await p.client.delete(
            "/api/auth/users/admin/roles", headers=admin, params={"role": "admin"}
        )
        assert alone.status_code == 409
        assert "last admin" in alone.json()["detail"]
        assert "make another account admin" in alone.json()["detail"]
        assert (await p.client.get("/api/auth/users", headers=admin)).status_code == 200

        # with a second admin (one who can log in), either may step down
        await register(p.client, "ada", "ada-password-1")
        r = await p.client.post("/api/auth/users/ada/roles", headers=admin, json={"role": "admin"})
        assert r.status_code == 201
        r = await p.client.post("/api/auth/users/ada/disable", headers=admin)
        assert r.status_code == 200
        still = await p.client.delete(
            "/api/auth/users/admin/roles", headers=admin, params={"role": "admin"}
        )
        assert still.status_code == 409  # a disabled admin does not count
        assert (await p.client.post("/api/auth/users/ada/enable", headers=admin)).is_success
        r = await p.client.delete(
            "/api/auth/users/admin/roles", headers=admin, params={"role": "admin"}
        )
        assert r.status_code == 204
        ada = bearer((await login(p.client, "ada", "ada-password-1"))["access_token"])
        last = await p.client.delete(
            "/api/auth/users/ada/roles", headers=ada, params={"role": "admin"}
        )
        assert last.status_code == 409


async def test_a_bad_role_is_explained(p: Platform, admin: dict[str, str]) -> None:
    await register(p.client, "ned", "ned-password-1")
    r = await p.client.post("/api/auth/users/ned/roles", headers=admin, json={"role": "manager"})
    assert r.status_code == 422 and "belongs to a collection" in r.json()["detail"]
    r = await p.client.post("/api/auth/users/nobody/roles", headers=admin, json={"role": "curator"})
    assert r.status_code == 404


# -- disable and reset -----------------------------------------------------------------


async def test_a_disabled_account_is_locked_out_at_once(p: Platform, admin: dict[str, str]) -> None:
    await register(p.client, "dave", "dave-password-1")
    tokens = await login(p.client, "dave", "dave-password-1")
    h = bearer(tokens["access_token"])
    assert (await p.client.get("/api/auth/me", headers=h)).status_code == 200
    r = await p.client.post("/api/auth/users/dave/disable", headers=admin)
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert (await p.client.get("/api/auth/me", headers=h)).status_code == 401
    refused = await token_reply(p.client, "dave", "dave-password-1")
    assert refused.status_code == 401 and "disabled" in refused.json()["error_description"]
    assert (await refresh(p.client, tokens["refresh_token"])).status_code == 401
    # the check every service in the process uses
    assert await p.runtime.deps_of(Auth).revocations.is_revoked(claims_of(tokens["access_token"]))

    assert (await p.client.post("/api/auth/users/dave/enable", headers=admin)).status_code == 200
    assert (await token_reply(p.client, "dave", "dave-password-1")).status_code == 200
    me = claims_of(await admin_token(p.client))["sub"]
    own = await p.client.post(f"/api/auth/users/{me}/disable", headers=admin)
    assert own.status_code == 409


async def test_an_admin_reset_replaces_the_password_and_ends_sessions(
    p: Platform, admin: dict[str, str]
) -> None:
    await register(p.client, "eve", "eve-password-1")
    tokens = await login(p.client, "eve", "eve-password-1")
    r = await p.client.post("/api/auth/users/eve/password", headers=admin)
    assert r.status_code == 200
    generated = r.json()["password"]
    assert generated and len(generated) >= 16
    assert (await token_reply(p.client, "eve", "eve-password-1")).status_code == 401
    assert (await token_reply(p.client, "eve", generated)).status_code == 200
    assert (await refresh(p.client, tokens["refresh_token"])).status_code == 401
    weak = await p.client.post(
        "/api/auth/users/eve/password", headers=admin, json={"password": "short"}
    )
    assert weak.status_code == 422


async def test_users_change_their_own_password(p: Platform) -> None:
    await register(p.client, "fay", "fay-password-1")
    h = bearer((await login(p.client, "fay", "fay-password-1"))["access_token"])
    wrong = await p.client.post(
        "/api/auth/me/password",
        headers=h,
        json={"current_password": "not-it-at-all", "new_password": "fay-password-2"},
    )
    assert wrong.status_code == 403
    r = await p.client.post(
        "/api/auth/me/password",
        headers=h,
        json={"current_password": "fay-password-1", "new_password": "fay-password-2"},
    )
    assert r.status_code == 204
    assert (await token_reply(p.client, "fay", "fay-password-2")).status_code == 200

    # a stolen token is no guessing oracle: wrong current passwords lock like logins
    statuses = []
    for _ in range(6):
        r = await p.client.post(
            "/api/auth/me/password",
            headers=h,
            json={"current_password": "a-wrong-guess", "new_password": "fay-password-3"},
        )
        statuses.append(r.status_code)
    assert statuses == [403] * 5 + [429] and int(r.headers["retry-after"]) >= 1
    assert (await token_reply(p.client, "fay", "fay-password-2")).status_code == 429


# -- machine clients -------------------------------------------------------------------


async def test_client_credentials_for_machine_clients(p: Platform, admin: dict[str, str]) -> None:
    r = await p.client.post(
        "/api/auth/clients",
        headers=admin,
        json={
            "name": "DAC mirror",
            "roles": [{"role": "submitter", "collection": "Demo-CT"}],
            "grants": ["Lim-A"],
            "licences": ["TCIA-Restricted"],
        },
    )
    assert r.status_code == 201
    client_id, secret = r.json()["client_id"], r.json()["client_secret"]
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}
    reply = await p.client.post("/nbia-api/oauth/token", data=form)
    assert reply.status_code == 200
    body = reply.json()
    assert "refresh_token" not in body and body["token_type"] == "bearer"  # RFC 6749 §4.4.3
    c = claims_of(body["access_token"])
    assert c["sub"] == client_id and c["azp"] == client_id
    assert c["coll"] == {"Demo-CT": ["submitter"]}
    assert c["grants"] == ["Lim-A"] and c["lic"] == ["TCIA-Restricted"] and c["dup"] is True

    # HTTP Basic works too (RFC 6749 §2.3.1)
    basic = await p.client.post(
        "/api/auth/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    assert basic.status_code == 200
    # a mirror key asking for "read" only cannot submit
    narrow = await p.client.post("/api/auth/token", data={**form, "scope": "read"})
    assert claims_of(narrow.json()["access_token"])["coll"] == {}

    wrong = await p.client.post("/api/auth/token", data={**form, "client_secret": "nope"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    # a client cannot use the password grant, nor a user the client grant
    as_user = await token_reply(p.client, client_id, secret)
    assert as_user.status_code == 401
    listed = (await p.client.get("/api/auth/clients", headers=admin)).json()
    assert client_id in {x["username"] for x in listed}

    assert (
        await p.client.delete(f"/api/auth/clients/{client_id}", headers=admin)
    ).status_code == 204
    assert (await p.client.post("/api/auth/token", data=form)).status_code == 401
    me = await p.client.get("/api/auth/me", headers=bearer(body["access_token"]))
    assert me.status_code == 401


# -- audit -----------------------------------------------------------------------------


async def test_the_audit_log_records_logins_issues_and_denials(
    p: Platform, admin: dict[str, str]
) -> None:
    await register(p.client, "gus", "gus-password-1")
    gus = bearer((await login(p.client, "gus", "gus-password-1"))["access_token"])
    await token_reply(p.client, "gus", "wrong-password")
    assert (await p.client.get("/api/auth/audit", headers=gus)).status_code == 403
    entries = (await p.client.get("/api/auth/audit", headers=admin, params={"limit": 1000})).json()
    ids = [e["id"] for e in entries]
    assert ids == sorted(ids, reverse=True)
    mine = [(e["action"], e["subject"]) for e in entries if "gus" in (e["subject"], e["actor"])]
    for expected in (
        ("user_created", "gus"),
        ("login", "gus"),
        ("token_issued", "gus"),
        ("login_failed", "gus"),
        ("denied", "/api/auth/audit"),
    ):
        assert expected in mine, expected
    issued = next(e for e in entries if e["action"] == "token_issued" and e["subject"] == "gus")
    assert issued["detail"]["grant"] == "password" and issued["detail"]["jti"]
    page = (
        await p.client.get("/api/auth/audit", headers=admin, params={"before": ids[0], "limit": 2})
    ).json()
    assert [e["id"] for e in page] == ids[1:3]


async def test_housekeeping_prunes_only_what_expired(p: Platform) -> None:
    await register(p.client, "hank", "hank-password-1")
    old = await login(p.client, "hank", "hank-password-1")
    live = await login(p.client, "hank", "hank-password-1")
    db = p.runtime.contexts["auth"].db
    old_jti = claims_of(old["refresh_token"])["jti"]
    async with db.session() as s, s.begin():
        await s.execute(
            update(RefreshToken)
            .where(RefreshToken.jti == old_jti)
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    assert await prune_expired(db) >= 1
    async with db.session() as s:
        left = set(await s.scalars(select(RefreshToken.jti).where(RefreshToken.subject == "hank")))
    assert left == {claims_of(live["refresh_token"])["jti"]}
    assert (await refresh(p.client, live["refresh_token"])).status_code == 200
