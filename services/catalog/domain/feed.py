"""The mirror feed's rules: what an entry holds, its attribution, and opaque cursors.

An entry is one public change the catalog applied: a collection's record (created or
updated), a series published (first version or a new one) or withdrawn. It is written
once and never changed; a reader resumes after the cursor of the last entry it applied.
Pure: no I/O.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from services.common.app import DomainError
from services.common.events import CollectionUpdated, Event, SeriesPublished, SeriesWithdrawn

Kind = Literal["collection.updated", "series.published", "series.republished", "series.withdrawn"]
SERIES_KINDS = ("series.published", "series.republished")
_CURSOR = "imarc-feed:1:"
#: the most entries one page holds
MAX_LIMIT = 1000


class BadCursor(DomainError):
    status = 400


def cursor(position: int) -> str:
    """The opaque cursor of the entry at ``position`` (0: before the first entry)."""
    raw = f"{_CURSOR}{position}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def position_of(value: str | None) -> int:
    """The position a cursor stands for; no cursor is the beginning of the feed."""
    if not value:
        return 0
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        if raw.startswith(_CURSOR) and raw[len(_CURSOR) :].isdigit():
            return int(raw[len(_CURSOR) :])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise BadCursor(
        f"after={value[:80]!r} is not a cursor of this feed; pass the cursor of the last "
        "entry you applied (or the page's next cursor), or leave after= out to start from "
        "the beginning"
    )


def attribution(record: CollectionUpdated) -> dict[str, Any]:
    """What whoever passes the collection's data on must pass on with it."""
    policy = record.data_usage_policy
    notice = f"Data from the {record.name} collection"
    if record.citation:
        notice += f" ({record.citation})"
    notice += f", under {record.licence.name or record.licence.id}."
    if record.doi:
        notice += f" DOI: {record.doi}."
    if policy:
        notice += (
            " Anyone who passes this data on must provide attribution and a link back to "
            f"the data usage policy: {policy}"
        )
    return {
        "collection": record.name,
        "licence": record.licence.model_dump(mode="json"),
        "doi": record.doi,
        "citation": record.citation,
        "data_usage_policy": policy,
        "notice": notice,
    }


def _entry(event: Event, kind: Kind, subject: str, data: dict[str, Any], attr: Any) -> dict:
    return {
        "id": event.id,
        "type": kind,
        "time": event.time.isoformat(),
        "collection": attr["collection"],
        "subject": subject,
        "data": data,
        "attribution": attr,
    }


def collection_entry(event: Event, record: CollectionUpdated) -> dict[str, Any]:
    data = record.model_dump(mode="json")
    return _entry(event, "collection.updated", record.name, data, attribution(record))


def series_entry(event: Event, p: SeriesPublished, version: int) -> dict[str, Any]:
    """A publication: every instance's key, size, sha256 and header, as published."""
    kind: Kind = "series.published" if version == 1 else "series.republished"
    entry = _entry(
        event, kind, p.series_instance_uid, p.model_dump(mode="json"), attribution(p.collection)
    )
    entry["version"] = version
    return entry


def withdrawal_entry(
    event: Event, p: SeriesWithdrawn, attr: dict[str, Any] | None
) -> dict[str, Any]:
    """A tombstone: the series is gone, and why."""
    attr = attr or {"collection": p.collection}
    return _entry(event, "series.withdrawn", p.series_instance_uid, p.model_dump(), attr)
