"""Pure rules of the auth service: names, roles and who may grant them, what a token
says, when licences count as approved; and

* :mod:`.throttle` — how password guessing is slowed down;
* :mod:`.texts` — the standard licences and the data usage policy.

No I/O here: callers pass in the time and the rows they loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.auth.domain.texts import DATA_USAGE_POLICY, POLICY_VERSION, SEED_LICENCES, LicenceSeed
from services.auth.domain.throttle import (
    KNOWN_ADDRESS_DAYS,
    PER_ACCOUNT,
    PER_ACCOUNT_ADDRESS,
    PER_ADDRESS,
    ThrottlePolicy,
    failures_after_one_more,
    lockout_seconds,
    retry_after,
)
from services.common.app import Conflict, DomainError, Forbidden, NotFound
from services.common.contracts import ROLES, collection_name_problem
from services.common.security import Principal

__all__ = [
    "DATA_USAGE_POLICY",
    "KNOWN_ADDRESS_DAYS",
    "PER_ACCOUNT",
    "PER_ACCOUNT_ADDRESS",
    "PER_ADDRESS",
    "POLICY_VERSION",
    "SEED_LICENCES",
    "Conflict",
    "Forbidden",
    "LicenceSeed",
    "NotFound",
    "ThrottlePolicy",
    "failures_after_one_more",
    "lockout_seconds",
    "retry_after",
]


class Invalid(DomainError):
    """A request the rules refuse as it stands (a short password, a bad role)."""

    status = 422


class Unauthenticated(DomainError):
    """No valid session to act on (a missing or broken bearer token)."""

    status = 401


class NotPermitted(Exception):
    """The rules refuse the principal ``what`` they asked to do; the service records the
    refusal (``service.audit.denied``) and answers 403."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


class Throttled(DomainError):
    """Too many failed attempts: wait ``retry_after`` seconds."""

    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed attempts; try again in {retry_after} seconds")
        self.headers = {"Retry-After": str(retry_after)}


# Token lifetimes. Access tokens live one hour (issue 4); refresh tokens one day, so a
# CLI session survives a long download without keeping a password around.
ACCESS_TTL = 3600
REFRESH_TTL = 24 * 3600
# How long a key that stopped signing stays in the JWKS: until the last token it signed
# (a refresh token, the longest-lived) has expired, plus the verifier's clock leeway.
KEY_OVERLAP = timedelta(seconds=REFRESH_TTL + 60)

ANONYMOUS = "anonymous"
# NBIA's public guest login (nbia-api.md §4): any password; it gets an anonymous token.
GUEST_USERNAME = "nbia_guest"
CLIENT_PREFIX = "client-"
RESERVED_NAMES = frozenset({ANONYMOUS, GUEST_USERNAME})

_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{0,63}$")
_SITE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_LICENCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

MIN_PASSWORD = 10
# Bounded so that one request cannot make argon2 hash megabytes.
MAX_PASSWORD = 1024


def normalise_username(raw: str) -> str:
    """Usernames compare case-insensitively: ``Alice`` and ``alice`` are one account."""
    return raw.strip().lower()


def username_problem(name: str) -> str | None:
    if not _USERNAME.match(name):
        return (
            "a username is 1-64 characters: letters, digits, '.', '_', '@' or '-', "
            "starting with a letter or digit"
        )
    if name in RESERVED_NAMES or name.startswith(CLIENT_PREFIX):
        return f"the username {name!r} is reserved; choose another"
    return None


def password_problem(password: str, username: str) -> str | None:
    """Length is what makes a password strong (NIST SP 800-63B §5.1.1.2); no
    composition rules, but it must not be the username."""
    if len(password) < MIN_PASSWORD:
        return f"the password is too short; use at least {MIN_PASSWORD} characters"
    if len(password) > MAX_PASSWORD:
        return f"the password is too long; use at most {MAX_PASSWORD} characters"
    if password.strip().lower() == username:
        return "the password must not be the username"
    return None


def email_problem(email: str) -> str | None:
    if email and not _EMAIL.match(email):
        return "the e-mail address does not look valid (name@example.org)"
    return None


def collection_problem(name: str) -> str | None:
    return collection_name_problem(name)


def licence_id_problem(licence_id: str) -> str | None:
    if not _LICENCE_ID.match(licence_id):
        return "a licence id is 1-64 letters, digits, '.', '_' or '-' (e.g. CC-BY-4.0)"
    return None


# -- roles ---------------------------------------------------------------------------

# The scope that carries each role: a client asking for a narrower scope gets a token
# without the roles outside it (a mirror's key asks for "read" and cannot publish).
ROLE_SCOPE = {
    "admin": "admin",
    "manager": "manage",
    "curator": "curate",
    "submitter": "submit",
    "user": "read",
}
SCOPES = ("read", "submit", "curate", "manage", "admin")


@dataclass(frozen=True, order=True)
class RoleRow:
    """One role assignment. ``collection`` and ``site`` are empty when not bound."""

    role: str
    collection: str = ""
    site: str = ""


def role_problem(role: str, collection: str, site: str) -> str | None:
    """admin and user are global; manager and submitter belong to a collection (a
    submitter optionally to one site); a curator is global or per collection."""
    if role not in ROLES:
        return f"unknown role {role!r}; choose one of {', '.join(ROLES)}"
    if role in ("admin", "user") and (collection or site):
        return f"the {role} role is global; give no collection or site"
    if role in ("manager", "submitter") and not collection:
        return f"the {role} role belongs to a collection; name one"
    if site and role != "submitter":
        return "only the submitter role is bound to a site"
    if collection and (problem := collection_problem(collection)):
        return problem
    if site and not _SITE.match(site):
        return "a site name is 1-64 letters, digits, '.', '-' or '_'"
    return None


def role_row(role: str, collection: str | None = None, site: str | None = None) -> RoleRow:
    """A role assignment as asked for, or ``Invalid`` saying what is wrong with it."""
    row = RoleRow(role, collection or "", site or "")
    if problem := role_problem(row.role, row.collection, row.site):
        raise Invalid(problem)
    return row


def may_grant_role(principal: Principal, role: str, collection: str) -> bool:
    """Admins grant anything; a manager grants submitter and curator roles on the
    collections they manage (not manager or admin: that stays with admins)."""
    if principal.is_admin:
        return True
    return (
        role in ("submitter", "curator") and bool(collection) and principal.can_manage(collection)
    )


def may_grant_collection(principal: Principal, collection: str) -> bool:
    return principal.can_manage(collection)


def collections_under(licence_id: str, collection_licences: Mapping[str, str]) -> set[str]:
    """The collections published under a licence (``collection_licences`` maps collection
    → licence id, from collection.updated)."""
    return {coll for coll, lic in collection_licences.items() if lic == licence_id}


def approval_scope(
    principal: Principal,
    licence_id: str,
    collection_licences: Mapping[str, str],
    named: Iterable[str] = (),
) -> frozenset[str] | None:
    """The collections an approval by ``principal`` covers; None: the whole licence (every
    collection under it, now and later), which only an admin approves. A manager's approval
    covers the collections under the licence they manage — those ``named``, or all of them.
    Raises ``Invalid`` for a named collection not under the licence, ``NotPermitted`` when
    the principal manages none of them (or not every one named)."""
    under = collections_under(licence_id, collection_licences)
    named = set(named)
    if outside := sorted(named - under):
        raise Invalid(
            f"{', '.join(outside)} is not under the {licence_id} licence; name collections "
            "published under it"
        )
    if principal.is_admin:
        return frozenset(named) if named else None
    mine = {c for c in under if principal.can_manage(c)}
    if not mine:
        raise NotPermitted(f"approve the {licence_id} licence")
    if not_mine := sorted(named - mine):
        raise NotPermitted(f"approve the {licence_id} licence for {', '.join(not_mine)}")
    return frozenset(named or mine)


def widened_scope(
    current: Iterable[str] | None, active: bool, adding: frozenset[str] | None
) -> list[str] | None:
    """An approval's collections once ``adding`` is approved too (None: the whole licence).
    An approval no longer active starts afresh."""
    if adding is None or (active and current is None):
        return None
    return sorted((set(current or ()) if active else set()) | adding)


def narrowed_scope(
    current: Iterable[str] | None, under: set[str], removing: frozenset[str]
) -> list[str]:
    """An approval's collections once ``removing`` is taken away; a whole-licence approval
    keeps the other collections under the licence as they are now."""
    return sorted((under if current is None else set(current)) - removing)


def managed_licences(principal: Principal, collection_licences: Mapping[str, str]) -> set[str]:
    return {lic for coll, lic in collection_licences.items() if principal.can_manage(coll)}


# -- licences ------------------------------------------------------------------------


def acceptance_active(status: str, expires_at: datetime | None, now: datetime) -> bool:
    """An acceptance counts (goes into the token's ``lic``) once approved and until its
    expiry, if it has one."""
    return status == "approved" and (expires_at is None or expires_at > now)


def grant_active(expires_at: datetime | None, now: datetime) -> bool:
    return expires_at is None or expires_at > now


# -- tokens --------------------------------------------------------------------------


@dataclass(frozen=True)
class Holder:
    """What a token is computed from: an account's roles, approved licences, grants."""

    name: str
    rows: tuple[RoleRow, ...] = ()
    #: licences approved whole
    licences: frozenset[str] = frozenset()
    grants: frozenset[str] = frozenset()
    policy_accepted: bool = False
    #: licences approved for some collections only (by their managers): licence → those
    licence_scopes: Mapping[str, frozenset[str]] = field(default_factory=dict)


def available_scopes(rows: Iterable[RoleRow]) -> frozenset[str]:
    """Every account may read; the other scopes follow its roles."""
    return frozenset({"read"} | {ROLE_SCOPE[r.role] for r in rows if r.role in ROLE_SCOPE})


def effective_scopes(available: frozenset[str], requested: str | None) -> frozenset[str]:
    """RFC 6749 §3.3: the token's scope is what was asked for, within what the account
    has. Unknown names (e.g. ``openid`` from Keycloak-era clients) are ignored; asking
    for nothing we know means everything the account has."""
    asked = {s for s in (requested or "").split() if s in SCOPES}
    return available & asked if asked else available


def role_claims(
    rows: Iterable[RoleRow], scopes: frozenset[str]
) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """The ``roles``, ``coll`` and ``sites`` claims (see Principal.from_claims)."""
    roles: set[str] = set()
    coll: dict[str, set[str]] = {}
    sites: set[str] = set()
    for r in rows:
        if ROLE_SCOPE.get(r.role) not in scopes:
            continue
        if r.collection:
            coll.setdefault(r.collection, set()).add(r.role)
        else:
            roles.add(r.role)
        if r.site:
            sites.add(r.site)
    return sorted(roles), {c: sorted(v) for c, v in sorted(coll.items())}, sorted(sites)


def _base(
    subject: str, *, typ: str, issuer: str, audience: str, now: int, ttl: int, jti: str
) -> dict[str, Any]:
    return {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "jti": jti,
        "typ": typ,
    }


def access_claims(
    holder: Holder,
    *,
    scopes: frozenset[str],
    issuer: str,
    audience: str,
    now: int,
    jti: str,
    sid: str,
    client_id: str = "",
    ttl: int = ACCESS_TTL,
) -> dict[str, Any]:
    """The claims of an access token; ``sid`` names the login session (the refresh
    token family) so that logout can end every token of that session."""
    roles, coll, sites = role_claims(holder.rows, scopes)
    reads = "read" in scopes
    claims = _base(
        holder.name, typ="access", issuer=issuer, audience=audience, now=now, ttl=ttl, jti=jti
    )
    claims.update(
        sid=sid,
        roles=roles,
        coll=coll,
        sites=sites,
        lic=sorted(holder.licences) if reads else [],
        licc={lic: sorted(c) for lic, c in sorted(holder.licence_scopes.items())} if reads else {},
        grants=sorted(holder.grants) if reads else [],
        scope=" ".join(s for s in SCOPES if s in scopes),
        dup=holder.policy_accepted,
    )
    if client_id:
        claims["azp"] = client_id
    return claims


def refresh_claims(
    subject: str,
    *,
    scopes: frozenset[str],
    issuer: str,
    audience: str,
    now: int,
    jti: str,
    sid: str,
    client_id: str = "",
    ttl: int = REFRESH_TTL,
) -> dict[str, Any]:
    """A refresh token names only who and which session: roles and licences are read
    afresh at every refresh, so a grant or a revocation shows within an hour."""
    claims = _base(
        subject, typ="refresh", issuer=issuer, audience=audience, now=now, ttl=ttl, jti=jti
    )
    claims.update(sid=sid, scope=" ".join(s for s in SCOPES if s in scopes))
    if client_id:
        claims["azp"] = client_id
    return claims


def key_live(state: str, retire_at: datetime | None, now: datetime) -> bool:
    """A signing key is published while it signs, and after rotation until every token
    it signed has expired (``retire_at``); then it is retired."""
    if state == "active":
        return True
    return state == "previous" and retire_at is not None and now < retire_at
