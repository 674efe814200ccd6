"""Tables the auth service owns: accounts (people and machine clients), their roles,
collection grants and licence acceptances, licences, signing keys, refresh tokens,
revocations, login throttling and the audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import UTCDateTime
from services.common.messaging import messaging_tables

metadata = MetaData()
outbox, inbox = messaging_tables(metadata)

# SQLite only autoincrements an INTEGER PRIMARY KEY.
_ID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = metadata


class Account(Base):
    """A person (``kind`` user) or a machine client (``kind`` client, API key). ``name``
    is the token's ``sub``: the username, or the client id."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    email: Mapped[str] = mapped_column(String(254), default="")
    display_name: Mapped[str] = mapped_column(String(200), default="")
    secret_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    policy_accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    secret_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RoleAssignment(Base):
    __tablename__ = "role_assignments"
    __table_args__ = (
        UniqueConstraint("account_id", "role", "collection", "site", name="uq_role_assignment"),
    )

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    collection: Mapped[str] = mapped_column(String(64), default="")
    site: Mapped[str] = mapped_column(String(64), default="")
    granted_by: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CollectionGrant(Base):
    """Access to one limited collection, independent of licences."""

    __tablename__ = "collection_grants"
    __table_args__ = (UniqueConstraint("account_id", "collection", name="uq_collection_grant"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    collection: Mapped[str] = mapped_column(String(64))
    granted_by: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Licence(Base):
    __tablename__ = "licences"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(500), default="")
    text: Mapped[str] = mapped_column(Text, default="")
    commercial_use: Mapped[bool] = mapped_column(Boolean, default=False)
    requires_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class LicenceAcceptance(Base):
    """One account's standing with one licence: requested, approved (until an optional
    expiry; for some collections under it, or all) or revoked. History is in the audit log."""

    __tablename__ = "licence_acceptances"
    __table_args__ = (UniqueConstraint("account_id", "licence_id", name="uq_licence_acceptance"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    licence_id: Mapped[str] = mapped_column(
        ForeignKey("licences.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: the collections the approval covers (a manager's approval); null: the whole licence
    collections: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)


class Collection(Base):
    """auth's copy of each collection's licence, kept from ``collection.updated``: a
    manager approves the licences of the collections they manage."""

    __tablename__ = "collections"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    licence_id: Mapped[str] = mapped_column(String(64), default="")
    access: Mapped[str] = mapped_column(String(16), default="public")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SigningKey(Base):
    """An RS256 key. ``private_key`` is the PKCS#8 PEM sealed with AES-GCM under a key
    derived from the deployment secret. ``state``: active (signs), previous (verifies
    until ``retire_at``), retired."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_key: Mapped[bytes] = mapped_column(LargeBinary)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retire_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RefreshToken(Base):
    """One issued refresh token (never the token itself: its id). ``family`` is the login
    session; a used or revoked token presented again ends the whole family."""

    __tablename__ = "refresh_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    family: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(64), index=True)
    client_id: Mapped[str] = mapped_column(String(200), default="")
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    replaced_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Revocation(Base):
    """A revoked access token (``kind`` jti) or session (``kind`` sid), kept until every
    token it covers has expired."""

    __tablename__ = "revocations"
    __table_args__ = (UniqueConstraint("kind", "value", name="uq_revocation"),)

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class LoginFailure(Base):
    """Consecutive failed logins per throttle key (a hashed account name or an address),
    shared by every auth replica through the database."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class KnownAddress(Base):
    """An address an account logged in from (a hash of both, and when): the account-wide
    lockout does not hold there, so an attacker elsewhere cannot lock the owner out."""

    __tablename__ = "known_addresses"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_login_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class AuditEntry(Base):
    """Logins, token issues, denials, approvals and account changes. Never a secret."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    action: Mapped[str] = mapped_column(String(40), index=True)
    actor: Mapped[str] = mapped_column(String(64), default="")
    subject: Mapped[str] = mapped_column(String(200), default="", index=True)
    ip: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
