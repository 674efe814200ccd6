"""auth: accounts, roles, grants, licences, acceptances, collections, signing keys,
refresh tokens, revocations, login failures, audit log, outbox, inbox.

Revision ID: 0001
Revises:
Create Date: 2024-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)
# SQLite only autoincrements an INTEGER PRIMARY KEY.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column("id", ID, primary_key=True, autoincrement=True)


def _account_fk() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(
        "account_id", ID, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "accounts",
        _id(),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(255), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("policy_accepted_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("secret_changed_at", TS, nullable=False),
    )
    op.create_table(
        "role_assignments",
        _id(),
        _account_fk(),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("granted_by", sa.String(64), nullable=False),
        sa.Column("granted_at", TS, nullable=False),
        sa.UniqueConstraint("account_id", "role", "collection", "site", name="uq_role_assignment"),
    )
    op.create_index("ix_role_assignments_account_id", "role_assignments", ["account_id"])
    op.create_table(
        "collection_grants",
        _id(),
        _account_fk(),
        sa.Column("collection", sa.String(64), nullable=False),
        sa.Column("granted_by", sa.String(64), nullable=False),
        sa.Column("granted_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=True),
        sa.UniqueConstraint("account_id", "collection", name="uq_collection_grant"),
    )
    op.create_index("ix_collection_grants_account_id", "collection_grants", ["account_id"])
    op.create_table(
        "licences",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("commercial_use", sa.Boolean(), nullable=False),
        sa.Column("requires_approval", sa.Boolean(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "licence_acceptances",
        _id(),
        _account_fk(),
        sa.Column(
            "licence_id",
            sa.String(64),
            sa.ForeignKey("licences.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("approved_by", sa.String(64), nullable=True),
        sa.Column("approved_at", TS, nullable=True),
        sa.Column("expires_at", TS, nullable=True),
        sa.UniqueConstraint("account_id", "licence_id", name="uq_licence_acceptance"),
    )
    op.create_index("ix_licence_acceptances_account_id", "licence_acceptances", ["account_id"])
    op.create_index("ix_licence_acceptances_licence_id", "licence_acceptances", ["licence_id"])
    op.create_table(
        "collections",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("licence_id", sa.String(64), nullable=False),
        sa.Column("access", sa.String(16), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("private_key", sa.LargeBinary(), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("retire_at", TS, nullable=True),
    )
    op.create_index("ix_signing_keys_state", "signing_keys", ["state"])
    op.create_table(
        "refresh_tokens",
        sa.Column("jti", sa.String(64), primary_key=True),
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("client_id", sa.String(200), nullable=False),
        sa.Column("issued_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("used_at", TS, nullable=True),
        sa.Column("revoked_at", TS, nullable=True),
        sa.Column("replaced_by", sa.String(64), nullable=True),
    )
    op.create_index("ix_refresh_tokens_family", "refresh_tokens", ["family"])
    op.create_index("ix_refresh_tokens_subject", "refresh_tokens", ["subject"])
    op.create_table(
        "revocations",
        _id(),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("value", sa.String(64), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.UniqueConstraint("kind", "value", name="uq_revocation"),
    )
    op.create_index("ix_revocations_expires_at", "revocations", ["expires_at"])
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", TS, nullable=True),
        sa.Column("locked_until", TS, nullable=True),
    )
    op.create_table(
        "audit_log",
        _id(),
        sa.Column("at", TS, nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("ip", sa.String(64), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_action", "audit_log", ["action"])
    op.create_index("ix_audit_log_subject", "audit_log", ["subject"])

    op.create_table(
        "outbox",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("id", sa.String(64), nullable=False, unique=True),
        sa.Column("type", sa.String(200), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("published_at", TS, nullable=True),
    )
    op.create_index("ix_outbox_published_at", "outbox", ["published_at"])
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.String(200), primary_key=True),
        sa.Column("event_id", sa.String(64), primary_key=True),
        sa.Column("processed_at", TS, nullable=False),
    )


def downgrade() -> None:
    for table in (
        "inbox",
        "outbox",
        "audit_log",
        "login_failures",
        "revocations",
        "refresh_tokens",
        "signing_keys",
        "collections",
        "licence_acceptances",
        "licences",
        "collection_grants",
        "role_assignments",
        "accounts",
    ):
        op.drop_table(table)
