"""The audit hook of auth's unit of work: who acts and from where (``Caller``), and a
unit of work (``Unit``) whose ``audit`` records a row in the same transaction as the
change it describes — a change and its audit row commit together or not at all."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.auth.domain import Forbidden
from services.auth.models import AuditEntry
from services.auth.tokens import utcnow
from services.common.events import Event
from services.common.logs import printable
from services.common.messaging import UnitOfWork
from services.common.security import ANONYMOUS, Principal

if TYPE_CHECKING:
    from services.auth.bootstrap import Auth

log = logging.getLogger("imarc.auth")


@dataclass(frozen=True)
class Caller:
    """Who makes a request and from where: what the audit log records of it."""

    principal: Principal = ANONYMOUS
    ip: str = ""
    method: str = ""
    path: str = ""

    @property
    def name(self) -> str:
        return self.principal.subject


class Unit:
    """auth's unit of work: its ``session``, the events it ``emit``s and the audit rows it
    records, committed together. ``actor`` and ``ip`` are those of the caller unless an
    entry names others (a login names the account it logged in)."""

    def __init__(self, uow: UnitOfWork, *, actor: str = "", ip: str = "") -> None:
        self.session: AsyncSession = uow.session
        self._uow = uow
        self.actor = actor
        self.ip = ip

    def emit(self, *events: Event) -> None:
        self._uow.emit(*events)

    def audit(
        self, action: str, *, subject: str = "", actor: str | None = None, **detail: Any
    ) -> None:
        """Record an audit entry in this unit of work (never pass a secret here)."""
        actor = self.actor if actor is None else actor
        self.session.add(
            AuditEntry(
                at=utcnow(),
                action=action,
                actor=actor,
                subject=subject,
                ip=self.ip,
                detail={k: v for k, v in detail.items() if v not in (None, "", [], {})},
            )
        )
        # the subject may be a request path as the client sent it
        log.info(
            "audit %s actor=%s subject=%s",
            action,
            printable(actor or "-"),
            printable(subject or "-"),
        )


async def denied(auth: Auth, caller: Caller, what: str) -> Forbidden:
    """A refusal, recorded in the audit log (in a unit of its own: the refused change
    never happens) under the path that was refused."""
    async with auth.uow(caller) as unit:
        unit.audit("denied", subject=caller.path, method=caller.method, what=what)
    return Forbidden(f"you are not allowed to {what}; ask a manager for access")


async def require_admin(auth: Auth, caller: Caller, what: str) -> None:
    if not caller.principal.is_admin:
        raise await denied(auth, caller, what)
