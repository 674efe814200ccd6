"""Usage reports count by calendar month (UTC) the same way on both backends, and take
months as YYYY-MM."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, func, insert, select

from services.common.db import Database, UTCDateTime, dialect_of, month_of
from services.common.reporting import BadMonths, months

metadata = MetaData()
happenings = Table(
    "happenings", metadata, Column("id", Integer, primary_key=True), Column("at", UTCDateTime())
)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, schema="public")
    await database.create_all(metadata)
    yield database
    await database.dispose()


async def test_counts_by_utc_month(db: Database) -> None:
    east = timezone(timedelta(hours=10))
    times = [
        datetime(2026, 1, 31, 23, 59, tzinfo=UTC),
        datetime(2026, 2, 1, 8, 0, tzinfo=east),  # 2026-01-31 22:00 UTC
        datetime(2026, 2, 1, 0, 0, tzinfo=UTC),
        datetime(2026, 12, 31, 23, 0, tzinfo=UTC),
    ]
    async with db.session() as s, s.begin():
        await s.execute(insert(happenings), [{"id": i, "at": t} for i, t in enumerate(times)])
        month = month_of(happenings.c.at, dialect_of(s))
        rows = (await s.execute(select(month, func.count()).group_by(month).order_by(month))).all()
    assert [tuple(r) for r in rows] == [("2026-01", 2), ("2026-02", 1), ("2026-12", 1)]


def test_a_report_covers_whole_months() -> None:
    span = months("2026-11", "2026-12")
    assert (span.start, span.end) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2027, 1, 1, tzinfo=UTC),
    )
    default = months(None, None, now=datetime(2026, 7, 3, tzinfo=UTC))
    assert (default.since, default.until) == ("2026-01", "2026-07")
    with pytest.raises(BadMonths, match=r"since \(2026-08\) is after until \(2026-07\)"):
        months("2026-08", "2026-07")
