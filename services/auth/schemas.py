"""HTTP shapes of the auth API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

Role = Literal["admin", "manager", "curator", "submitter", "user"]


class RoleIn(BaseModel):
    role: Role
    collection: str | None = Field(default=None, max_length=64)
    site: str | None = Field(default=None, max_length=64)


class RoleOut(BaseModel):
    role: str
    collection: str | None = None
    site: str | None = None


class GrantIn(BaseModel):
    collection: str = Field(max_length=64)
    expires_at: datetime | None = None


class GrantOut(BaseModel):
    collection: str
    granted_by: str
    granted_at: datetime
    expires_at: datetime | None = None
    active: bool


class UserCreate(BaseModel):
    username: str = Field(max_length=64)
    password: SecretStr
    email: str = Field(default="", max_length=254)
    name: str = Field(default="", max_length=200)
    roles: list[RoleIn] = Field(default_factory=list)


class AcceptanceOut(BaseModel):
    username: str
    licence_id: str
    status: Literal["requested", "approved", "revoked"]
    active: bool
    requested_at: datetime
    approved_by: str | None = None
    approved_at: datetime | None = None
    expires_at: datetime | None = None
    collections: list[str] | None = Field(
        default=None,
        description="the collections the approval covers; null: every collection under the "
        "licence (an admin's approval)",
    )


class UserOut(BaseModel):
    username: str
    kind: Literal["user", "client"]
    email: str = ""
    name: str = ""
    disabled: bool
    created_at: datetime
    created_by: str = ""
    policy_accepted_at: datetime | None = None
    roles: list[RoleOut] = Field(default_factory=list)
    grants: list[GrantOut] = Field(default_factory=list)
    licences: list[AcceptanceOut] = Field(default_factory=list)


class PasswordReset(BaseModel):
    """An admin reset: give a password, or get a generated one back (shown once)."""

    password: SecretStr | None = None


class PasswordResetOut(BaseModel):
    username: str
    password: str | None = Field(
        default=None, description="the generated password, when none was given; shown once"
    )


class PasswordChange(BaseModel):
    current_password: SecretStr
    new_password: SecretStr


class LicenceIn(BaseModel):
    id: str = Field(max_length=64)
    name: str = Field(min_length=1, max_length=200)
    url: str = Field(default="", max_length=500)
    text: str = Field(default="", max_length=100_000)
    commercial_use: bool = False
    requires_approval: bool = False


class LicenceUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    url: str | None = Field(default=None, max_length=500)
    text: str | None = Field(default=None, max_length=100_000)
    commercial_use: bool | None = None
    requires_approval: bool | None = None


class LicenceOut(BaseModel):
    id: str
    name: str
    url: str
    text: str
    commercial_use: bool
    requires_approval: bool
    created_at: datetime
    updated_at: datetime


class ApproveIn(BaseModel):
    expires_at: datetime | None = None
    collections: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="the collections under the licence the approval covers; none named: those "
        "the approving manager manages, or (an admin) every collection under the licence",
    )


class PolicyOut(BaseModel):
    version: str
    text: str
    accepted_at: datetime | None = None


class ClientCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    roles: list[RoleIn] = Field(default_factory=list)
    grants: list[str] = Field(default_factory=list)
    licences: list[str] = Field(default_factory=list)


class ClientCreated(BaseModel):
    client_id: str
    client_secret: str = Field(description="shown once; store it now")
    name: str


class Revoked(BaseModel):
    """RFC 7009 §2.2: the answer to a revocation says nothing (an empty object)."""

    model_config = ConfigDict(extra="forbid")


class KeyOut(BaseModel):
    kid: str
    state: Literal["active", "previous", "retired"]
    created_at: datetime
    retire_at: datetime | None = None


class RotateOut(BaseModel):
    kid: str
    previous: str | None = None


class AuditOut(BaseModel):
    id: int
    at: datetime
    action: str
    actor: str
    subject: str
    ip: str
    detail: dict[str, Any]


class AccountsMonth(BaseModel):
    month: str = Field(description="YYYY-MM (UTC)")
    registered: int = Field(description="user accounts registered that month")
    total: int = Field(description="user accounts registered up to the end of that month")
