"""Calendar months for usage reports (``YYYY-MM``, UTC), the same in every service."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from services.common.app import DomainError

#: a month as a query parameter takes it
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


class BadMonths(DomainError):
    status = 422


def month_start(month: str) -> datetime:
    year, m = (int(p) for p in month.split("-"))
    return datetime(year, m, 1, tzinfo=UTC)


def month_after(month: str) -> datetime:
    """The first instant after ``month``."""
    start = month_start(month)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


@dataclass(frozen=True)
class Months:
    """``since`` to ``until``, both included; ``start``/``end`` bound them half-open."""

    since: str
    until: str

    @property
    def start(self) -> datetime:
        return month_start(self.since)

    @property
    def end(self) -> datetime:
        return month_after(self.until)


def months(since: str | None, until: str | None, now: datetime | None = None) -> Months:
    """The months a report covers: ``until`` defaults to this month, ``since`` to January
    of ``until``'s year."""
    until = until or (now or datetime.now(UTC)).strftime("%Y-%m")
    since = since or f"{until[:4]}-01"
    if since > until:
        raise BadMonths(f"since ({since}) is after until ({until}); give since <= until")
    return Months(since, until)
