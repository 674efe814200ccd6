"""The CPU side of de-identification: checking and reading a quarantined object, and the
engine's run, which happens in the CPU worker processes.

The pipeline fetches each quarantined object once, and :func:`inspect` checks its SHA-256
and reads the identity the service needs (in a thread: hashing releases the interpreter
lock). :func:`deidentify_object` then runs in a worker process on those same bytes and
writes the curation object itself, so the de-identified bytes never travel back; each
worker opens the object store once (from its URL) and keeps it.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from services.common.dicom_json import header_json
from services.common.store import ObjectStore, StoredObject, open_store
from services.deid import domain, phiscan
from services.deid.engine import DeidentificationError, Request, Result, deidentify

_IDENTITY_TAGS = [
    "PatientID",
    "IssuerOfPatientID",
    "StudyInstanceUID",
    "RecognizableVisualFeatures",
]


#: A residual-PHI finding: (element path, kind of identifier) — never the value.
Finding = tuple[str, str]


class ChecksumMismatch(Exception):
    """The quarantined bytes are not the ones intake recorded."""


@dataclass(frozen=True)
class Identity:
    """Who an original instance belongs to, as the service needs it before de-identifying."""

    patient_id: str
    #: IssuerOfPatientID: the same PatientID from two issuers is two patients
    issuer: str
    study_uid: str
    #: RecognizableVisualFeatures (0028,0301) is YES
    recognizable: bool = False


@dataclass(frozen=True)
class Destination:
    """Where a worker writes curation objects."""

    store_url: str
    fsync: bool


@cache
def _store(url: str, fsync: bool) -> ObjectStore:
    return open_store(url, fsync=fsync)


def _text(value: Any) -> str:
    return str(value or "").strip()


def inspect(raw: bytes, sha256: str) -> Identity:
    """Check ``raw`` against the SHA-256 intake recorded and read its identity from the
    header (raises ChecksumMismatch or DeidentificationError)."""
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise ChecksumMismatch()
    try:
        ds = dcmread(io.BytesIO(raw), stop_before_pixels=True, specific_tags=_IDENTITY_TAGS)
    except (InvalidDicomError, EOFError, ValueError, OSError) as exc:
        raise DeidentificationError(f"not a readable DICOM Part 10 file: {exc}") from exc
    return Identity(
        _text(ds.get("PatientID", "")),
        _text(ds.get("IssuerOfPatientID", "")),
        _text(ds.get("StudyInstanceUID", "")),
        _text(ds.get("RecognizableVisualFeatures", "")).upper() == "YES",
    )


def residual_phi(raw: bytes, output: bytes, retained: frozenset[str], key: str) -> list[Finding]:
    """Where the output (and its object ``key``) still carries an identifier of its own
    original record, given the options the profile ``retained`` on purpose. The
    pseudonym and the collection name (the first part of the key) are there by design."""
    original = dcmread(io.BytesIO(raw), stop_before_pixels=True)
    looked_for = phiscan.identifiers_of(original, retained)
    out = dcmread(io.BytesIO(output))
    allowed = (str(out.get("PatientID", "") or ""), key.split("/", 1)[0])
    found = phiscan.scan(out, looked_for, key=key, allowed=allowed)
    return [(f.path, f.kind) for f in found]


def deidentify_object(
    raw: bytes, fields: dict[str, Any], to: Destination
) -> tuple[Result, StoredObject | None, list[Finding]]:
    """De-identify ``raw``, write the result to the curation zone and scan it for
    residual PHI against ``raw``.

    Returns the engine's result without its bytes, the stored curation object (None when
    the engine held the instance) and the scan's findings.
    """
    result = deidentify(Request(raw=raw, **fields))
    if result.held_reason or result.data is None:
        return replace(result, data=None), None, []
    key = domain.curation_key(fields["collection"], result.deidentified)
    stored = _store(to.store_url, to.fsync).put_sync("curation", key, result.data)
    findings = residual_phi(raw, result.data, fields["profile"].options, key)
    return replace(result, data=None), stored, findings


def rescan(
    original: bytes, curated: bytes, retained: frozenset[str], key: str
) -> tuple[list[Finding], dict[str, Any]]:
    """Scan a curated object against its original again; returns the findings and the
    curated header (DICOM JSON) the announcement carries."""
    findings = residual_phi(original, curated, retained, key)
    return findings, header_json(dcmread(io.BytesIO(curated), stop_before_pixels=True))
