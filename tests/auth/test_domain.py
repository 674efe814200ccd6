"""Pure rules of the auth service and its cryptography."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.exceptions import InvalidTag

from services.auth import crypto, domain
from services.auth.domain import Holder, RoleRow
from services.common.security import Principal

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def principal(**claims: object) -> Principal:
    return Principal.from_claims({"sub": "someone", **claims})


def test_production_password_hashing_is_memory_hard_argon2id() -> None:
    # crypto.hasher is swapped for a cheap one in these tests; check the real factory.
    real = crypto.make_hasher()
    assert real.type.name == "ID"
    assert real.memory_cost >= 64 * 1024 and real.time_cost >= 3
    assert crypto.hash_secret("correct horse battery").startswith("$argon2id$")


def test_verify_secret_rejects_wrong_and_unknown_and_accepts_right() -> None:
    stored = crypto.hash_secret("right password 1")
    assert crypto.verify_secret(stored, "right password 1") == (True, False)
    assert crypto.verify_secret(stored, "wrong password 1")[0] is False
    assert crypto.verify_secret(None, "anything at all")[0] is False
    assert crypto.verify_secret("not-a-hash", "anything at all")[0] is False


def test_sealed_signing_key_needs_the_deployment_secret_and_its_own_kid() -> None:
    key = crypto.wrapping_key("deployment-secret")
    sealed = crypto.seal(key, "kid-1", b"-----BEGIN PRIVATE KEY-----")
    assert b"PRIVATE KEY" not in sealed
    assert crypto.unseal(key, "kid-1", sealed) == b"-----BEGIN PRIVATE KEY-----"
    with pytest.raises(InvalidTag):
        crypto.unseal(crypto.wrapping_key("another-secret"), "kid-1", sealed)
    with pytest.raises(InvalidTag):
        crypto.unseal(key, "kid-2", sealed)
    with pytest.raises(RuntimeError, match="IMARC_SECRET"):
        crypto.wrapping_key("")


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("alice", True),
        ("a.b-c_d@example.org", True),
        ("", False),
        ("-alice", False),
        ("al ice", False),
        ("x" * 65, False),
        ("anonymous", False),
        ("nbia_guest", False),
        ("client-0123", False),
    ],
)
def test_usernames(name: str, ok: bool) -> None:
    assert (domain.username_problem(name) is None) is ok


def test_usernames_are_case_insensitive() -> None:
    assert domain.normalise_username("  Alice ") == "alice"


def test_password_rules_are_about_length_not_composition() -> None:
    assert domain.password_problem("short", "bob") is not None
    assert domain.password_problem("bob", "bob") is not None
    assert domain.password_problem("aaaaaaaaaaaa", "bob") is None
    assert domain.password_problem("Bobbobbobbob", "bobbobbobbob") is not None
    assert domain.password_problem("x" * 2000, "bob") is not None


@pytest.mark.parametrize(
    ("role", "collection", "site", "ok"),
    [
        ("admin", "", "", True),
        ("admin", "Demo-CT", "", False),
        ("user", "", "", True),
        ("manager", "", "", False),
        ("manager", "Demo-CT", "", True),
        ("manager", "Demo-CT", "site-a", False),
        ("submitter", "Demo-CT", "site-a", True),
        ("submitter", "", "", False),
        ("curator", "", "", True),
        ("curator", "Demo-CT", "", True),
        ("curator", "bad name!", "", False),
        ("wizard", "", "", False),
    ],
)
def test_role_shapes(role: str, collection: str, site: str, ok: bool) -> None:
    assert (domain.role_problem(role, collection, site) is None) is ok


def test_who_may_grant_roles() -> None:
    admin = principal(roles=["admin"])
    manager = principal(coll={"C": ["manager"]})
    user = principal(roles=["user"])
    assert domain.may_grant_role(admin, "manager", "C")
    assert domain.may_grant_role(manager, "submitter", "C")
    assert domain.may_grant_role(manager, "curator", "C")
    assert not domain.may_grant_role(manager, "manager", "C")
    assert not domain.may_grant_role(manager, "admin", "")
    assert not domain.may_grant_role(manager, "submitter", "D")
    assert not domain.may_grant_role(manager, "curator", "")
    assert not domain.may_grant_role(user, "submitter", "C")
    assert domain.may_grant_collection(manager, "C")
    assert not domain.may_grant_collection(manager, "D")


def test_managers_approve_licences_only_for_the_collections_they_manage() -> None:
    licences = {"C": "TCIA-Restricted", "X": "TCIA-Restricted", "D": "NCTN-Data-Archive"}
    manager = principal(coll={"C": ["manager"]})
    assert domain.approval_scope(manager, "TCIA-Restricted", licences) == {"C"}
    with pytest.raises(domain.NotPermitted):
        domain.approval_scope(manager, "NCTN-Data-Archive", licences)
    with pytest.raises(domain.NotPermitted, match="for X"):
        domain.approval_scope(manager, "TCIA-Restricted", licences, ["C", "X"])
    with pytest.raises(domain.NotPermitted):
        domain.approval_scope(principal(roles=["curator"]), "TCIA-Restricted", licences)
    admin = principal(roles=["admin"])
    assert domain.approval_scope(admin, "NCTN-Data-Archive", {}) is None  # the whole licence
    assert domain.approval_scope(admin, "TCIA-Restricted", licences, ["X"]) == {"X"}
    with pytest.raises(domain.Invalid, match="not under"):
        domain.approval_scope(admin, "TCIA-Restricted", licences, ["D"])


def test_approvals_widen_and_narrow_by_collection() -> None:
    assert domain.widened_scope(["C"], True, frozenset({"X"})) == ["C", "X"]
    assert domain.widened_scope(["C"], False, frozenset({"X"})) == ["X"]  # lapsed: afresh
    assert domain.widened_scope(None, True, frozenset({"X"})) is None  # already whole
    assert domain.widened_scope(["C"], True, None) is None
    assert domain.narrowed_scope(["C", "X"], {"C", "X", "Y"}, frozenset({"X"})) == ["C"]
    assert domain.narrowed_scope(None, {"C", "X", "Y"}, frozenset({"X"})) == ["C", "Y"]


def test_a_licence_approved_for_some_collections_reads_those_only() -> None:
    claims = domain.access_claims(
        domain.Holder(
            "una", policy_accepted=True, licence_scopes={"TCIA-Restricted": frozenset({"Z"})}
        ),
        scopes=frozenset({"read"}),
        issuer="i",
        audience="a",
        now=0,
        jti="j",
        sid="s",
    )
    assert claims["lic"] == [] and claims["licc"] == {"TCIA-Restricted": ["Z"]}
    p = Principal.from_claims(claims)
    assert p.can_read("Z", "limited", "TCIA-Restricted")
    assert not p.can_read("X", "limited", "TCIA-Restricted")
    assert not p.can_read("Z", "limited", "NCTN-Data-Archive")


def test_acceptance_counts_only_when_approved_and_unexpired() -> None:
    assert domain.acceptance_active("approved", None, NOW)
    assert domain.acceptance_active("approved", NOW + timedelta(days=1), NOW)
    assert not domain.acceptance_active("approved", NOW - timedelta(seconds=1), NOW)
    assert not domain.acceptance_active("requested", None, NOW)
    assert not domain.acceptance_active("revoked", None, NOW)


ROWS = (
    RoleRow("user"),
    RoleRow("curator"),
    RoleRow("submitter", "Demo-CT", "site-a"),
    RoleRow("manager", "Lim-A"),
)


def test_claims_carry_roles_collections_sites_licences_and_policy() -> None:
    holder = Holder("alice", ROWS, frozenset({"CC-BY-4.0"}), frozenset({"Lim-B"}), True)
    scopes = domain.available_scopes(ROWS)
    c = domain.access_claims(
        holder,
        scopes=scopes,
        issuer="imarc",
        audience="imarc",
        now=1000,
        jti="j",
        sid="s",
        client_id="nbia",
    )
    assert c["sub"] == "alice" and c["typ"] == "access" and c["exp"] == 1000 + 3600
    assert c["roles"] == ["curator", "user"]
    assert c["coll"] == {"Demo-CT": ["submitter"], "Lim-A": ["manager"]}
    assert c["sites"] == ["site-a"]
    assert c["lic"] == ["CC-BY-4.0"] and c["grants"] == ["Lim-B"] and c["dup"] is True
    assert c["scope"] == "read submit curate manage" and c["azp"] == "nbia"
    p = Principal.from_claims(c)
    assert p.can_submit("Demo-CT", "site-a") and not p.can_submit("Demo-CT", "site-b")
    assert p.can_manage("Lim-A") and not p.can_manage("Demo-CT")
    assert p.can_read("Lim-C", "limited")  # a global curator reads every collection
    plain = Holder("bob", (RoleRow("user"),), frozenset({"TCIA-Restricted"}), frozenset({"Lim-B"}))
    q = Principal.from_claims(
        domain.access_claims(
            plain,
            scopes=domain.available_scopes(plain.rows),
            issuer="i",
            audience="a",
            now=0,
            jti="j",
            sid="s",
        )
    )
    assert not q.can_read("Lim-B", "limited"), "the data usage policy is not accepted yet"
    q = dataclasses.replace(q, policy_accepted=True)
    assert q.can_read("Lim-B", "limited") and not q.can_read("Lim-C", "limited")
    assert q.can_read("Lim-C", "limited", "TCIA-Restricted")
    assert not q.can_read("Lim-C", "limited", "NCTN-Data-Archive")


def test_a_narrower_scope_drops_the_roles_outside_it() -> None:
    available = domain.available_scopes(ROWS)
    assert domain.effective_scopes(available, "read") == {"read"}
    assert domain.effective_scopes(available, "openid") == available  # unknown → all
    assert domain.effective_scopes(available, "read admin") == {"read"}  # not held
    roles, coll, sites = domain.role_claims(ROWS, frozenset({"read"}))
    assert roles == ["user"] and coll == {} and sites == []
    holder = Holder("m", ROWS, frozenset({"CC-BY-4.0"}), frozenset({"Lim-B"}))
    submit_only = domain.access_claims(
        holder, scopes=frozenset({"submit"}), issuer="i", audience="a", now=0, jti="j", sid="s"
    )
    assert submit_only["coll"] == {"Demo-CT": ["submitter"]}
    assert submit_only["lic"] == [] and submit_only["grants"] == []


def test_refresh_claims_name_only_the_subject_and_session() -> None:
    c = domain.refresh_claims(
        "alice", scopes=frozenset({"read"}), issuer="i", audience="a", now=0, jti="j", sid="s"
    )
    assert c["typ"] == "refresh" and c["exp"] == domain.REFRESH_TTL
    assert not {"roles", "coll", "lic", "grants"} & c.keys()


def test_lockout_doubles_after_the_threshold_and_is_capped() -> None:
    policy = domain.ThrottlePolicy(threshold=5, base=30, cap=900)
    assert [domain.lockout_seconds(policy, n) for n in range(1, 11)] == [
        0,
        0,
        0,
        0,
        30,
        60,
        120,
        240,
        480,
        900,
    ]
    assert domain.lockout_seconds(policy, 50) == 900


def test_failures_are_forgotten_after_a_quiet_hour() -> None:
    policy = domain.PER_ACCOUNT
    assert domain.failures_after_one_more(policy, 4, NOW - timedelta(minutes=5), NOW) == 5
    assert domain.failures_after_one_more(policy, 4, NOW - timedelta(hours=2), NOW) == 1
    assert domain.failures_after_one_more(policy, 0, None, NOW) == 1
    assert domain.retry_after(NOW + timedelta(seconds=29.2), NOW) == 30
    assert domain.retry_after(NOW, NOW) == 1


def test_a_rotated_key_is_published_until_its_tokens_expire() -> None:
    assert domain.key_live("active", None, NOW)
    retire = NOW + domain.KEY_OVERLAP
    assert domain.key_live("previous", retire, NOW + timedelta(hours=23))
    assert not domain.key_live("previous", retire, retire + timedelta(seconds=1))
    assert not domain.key_live("retired", None, NOW)
    assert domain.KEY_OVERLAP.total_seconds() > domain.REFRESH_TTL >= domain.ACCESS_TTL


def test_seed_licences() -> None:
    ids = {s.id: s for s in domain.SEED_LICENCES}
    assert set(ids) == {
        "CC-BY-4.0",
        "CC-BY-3.0",
        "CC-BY-NC-4.0",
        "CC-BY-NC-3.0",
        "TCIA-Restricted",
        "NCTN-Data-Archive",
    }
    assert not ids["CC-BY-4.0"].requires_approval and ids["CC-BY-4.0"].commercial_use
    assert not ids["CC-BY-NC-4.0"].commercial_use
    assert ids["TCIA-Restricted"].requires_approval and ids["NCTN-Data-Archive"].requires_approval
