"""A mirror's rules: which feed entries it takes and the local event each one becomes.

A mirror site applies another site's feed by emitting, for each entry, the event its own
services index from (``collection.updated``, ``series.published``, ``series.withdrawn``),
with the entry's time (so the same newest-wins guards hold) and an id derived from the
source feed and the entry, so that an entry applied twice is one event to every inbox.
Pure: no I/O.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime
from typing import Any

from services.common.app import DomainError
from services.common.events import (
    CollectionUpdated,
    Event,
    Payload,
    SeriesPublished,
    SeriesWithdrawn,
)

_TYPES: dict[str, type[Payload]] = {
    "collection.updated": CollectionUpdated,
    "series.published": SeriesPublished,
    "series.republished": SeriesPublished,
    "series.withdrawn": SeriesWithdrawn,
}
#: how a mirror calls the site it mirrors, in its status
NOT_A_MIRROR = (
    "this site is not a mirror; start it with IMARC_SITE_ROLE=mirror (a mirror refuses "
    "submissions and takes its collections from the site it mirrors)"
)


class NotAMirror(DomainError):
    status = 409


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise DomainError(
            f"--from {url!r} is not an http(s) URL of an imarc site; give its base URL"
        )
    return url


def wanted(entry: dict[str, Any], collections: Collection[str]) -> bool:
    """Whether a mirror of ``collections`` (empty: all it may see) takes ``entry``."""
    if not collections:
        return True
    return entry["collection"].upper() in {c.upper() for c in collections}


def event_id(source_url: str, entry: dict[str, Any]) -> str:
    """The local event id of an entry of the feed at ``source_url``: the same every time."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{source_url}/api/feed#{entry['id']}"))


def local_event(source_url: str, entry: dict[str, Any], source: str) -> Event:
    """The event this site's services index ``entry`` from (validated on the way)."""
    kind = entry["type"]
    payload_type = _TYPES.get(kind)
    if payload_type is None:
        raise DomainError(f"the feed at {source_url} sent an entry of unknown type {kind!r}")
    payload = payload_type.model_validate(entry["data"])
    return Event(
        id=event_id(source_url, entry),
        source=source,
        type=payload_type.TYPE,
        subject=entry["subject"],
        time=datetime.fromisoformat(entry["time"]),
        data=payload.model_dump(mode="json"),
    )
