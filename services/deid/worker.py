"""The part of de-identification that runs in the CPU worker processes.

A worker reads the quarantined object itself, checks its SHA-256, runs the engine and
writes the curation object, so no megabyte-sized buffer crosses the process boundary and
the service's event loop only does database work. Each worker opens the object store
once (from its URL) and keeps it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from services.common.store import ObjectStore, StoredObject, open_store
from services.deid import domain
from services.deid.engine import Request, Result, deidentify, read_patient_id


class ChecksumMismatch(Exception):
    """The quarantined bytes are not the ones intake recorded."""


@dataclass(frozen=True)
class Source:
    """Where a worker finds the quarantined object and how to check it."""

    store_url: str
    fsync: bool
    key: str
    sha256: str


@cache
def _store(url: str, fsync: bool) -> ObjectStore:
    return open_store(url, fsync=fsync)


def _read(source: Source) -> bytes:
    raw = _store(source.store_url, source.fsync).get_sync("quarantine", source.key)
    if hashlib.sha256(raw).hexdigest() != source.sha256:
        raise ChecksumMismatch(source.key)
    return raw


def inspect(source: Source) -> str:
    """The original PatientID of the quarantined object (raises ObjectNotFound,
    ChecksumMismatch or DeidentificationError)."""
    return read_patient_id(_read(source))


def deidentify_object(source: Source, fields: dict[str, Any]) -> tuple[Result, StoredObject | None]:
    """De-identify the quarantined object and write the result to the curation zone.

    Returns the engine's result without its bytes, and the stored curation object (None
    when the engine held the instance).
    """
    result = deidentify(Request(raw=_read(source), **fields))
    if result.held_reason or result.data is None:
        return replace(result, data=None), None
    key = domain.curation_key(fields["collection"], result.deidentified)
    stored = _store(source.store_url, source.fsync).put_sync("curation", key, result.data)
    return replace(result, data=None), stored
