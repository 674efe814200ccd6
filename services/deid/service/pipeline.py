"""The de-identification pipeline: one ``instance.received`` event → a curation object
and ``instance.deidentified``, or a hold with its reason.

Fetching, checking and de-identifying run outside any database transaction (the engine
in the CPU worker processes); the effect — instance row, UID map, hold cleared, the event
staged in the outbox — commits once per event id through ``Messaging.apply_once``, so a
redelivery has exactly one effect. Each quarantined object is fetched and hashed once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete

from services.common.events import (
    Event,
    InstanceDeidentified,
    InstanceReceived,
    ObjectRef,
    ResidualFinding,
)
from services.common.messaging import UnitOfWork
from services.common.metrics import DEID_SECONDS, INSTANCES_DEIDENTIFIED
from services.common.persistence import upsert
from services.common.store import ObjectNotFound, StoredObject
from services.deid import domain, worker
from services.deid.engine import DeidentificationError, Profile, Result, date_offset_days
from services.deid.models import Hold, Instance, UidMapping
from services.deid.service.holds import Outcome, is_current, record_hold
from services.deid.service.profiles import profile_for
from services.deid.service.pseudonyms import pseudonym_for
from services.deid.service.studies import study_owner

if TYPE_CHECKING:
    from services.deid.bootstrap import Deid

log = logging.getLogger("imarc.deid")

#: Inbox name of curator releases (each release is its own synthetic received event).
RELEASE_CONSUMER = "deid.release"


class CollectionNotKnown(RuntimeError):
    """An instance arrived before its collection's ``collection.updated``; retried."""


async def process_received(
    deid: Deid, consumer: str, event: Event, *, released_by: str | None = None
) -> Outcome:
    """De-identify the instance an ``instance.received`` event names, or hold it."""
    received = event.payload(InstanceReceived)
    collection = received.collection
    release = released_by is not None
    profile = await profile_for(deid, collection)
    if profile is None:
        raise CollectionNotKnown(
            f"collection {collection!r} is not known to deid yet (its collection.updated "
            "has not arrived); the event will be retried"
        )

    async def hold(reason: str, uid_map: dict[str, str] | None = None) -> Outcome:
        return await record_hold(deid, consumer, event, received, reason, release, uid_map)

    try:
        raw = await deid.store.get("quarantine", received.object.key)
        identity = await asyncio.to_thread(worker.inspect, raw, received.object.sha256)
    except ObjectNotFound:
        return await hold(domain.QUARANTINE_MISSING)
    except worker.ChecksumMismatch:
        return await hold(domain.CHECKSUM_MISMATCH)
    except DeidentificationError as e:
        return await hold(domain.failure_reason(e))
    patient = (identity.patient_id, identity.issuer)
    if identity.study_uid:
        owner = await study_owner(deid, collection, identity.study_uid, patient)
        if owner != patient:
            return await hold(domain.STUDY_OF_TWO_PATIENTS)
    pseudonym = await pseudonym_for(deid, collection, patient, profile.require_id_map)
    if pseudonym.value is None:
        return await hold(pseudonym.hold_reason or domain.NO_ID_MAP_ENTRY)
    keys = domain.collection_keys(deid.keys, collection)
    fields = {
        "collection": collection,
        "patient_pseudonym": pseudonym.value,
        "keys": keys,
        "profile": profile,
        "date_offset_days": date_offset_days(
            keys, collection, domain.patient_key(*patient), profile.date_shift_scope
        ),
        "release_pixel_hold": received.release_pixel_hold,
    }
    started = time.perf_counter()
    try:
        result, stored, findings = await deid.run_cpu(
            worker.deidentify_object, raw, fields, deid.destination
        )
    except BrokenExecutor:
        raise  # the pool died, not the file: retry on a fresh delivery
    except Exception as e:
        log.warning("de-identification of %s failed", received.instance_id, exc_info=True)
        return await hold(domain.failure_reason(e))
    finally:
        DEID_SECONDS.observe(time.perf_counter() - started)
    if stored is None:
        reason = result.held_reason or "the engine produced no output"
        if identity.recognizable and not reason.startswith(domain.BURNED_IN_PHI):
            reason = domain.recognizable_features_reason(reason)
        return await hold(reason, result.uid_map)
    deidentified = Deidentified(profile, pseudonym.value, result, stored, findings)
    return await _record_deidentified(deid, consumer, event, received, deidentified, released_by)


@dataclass(frozen=True)
class Deidentified:
    """What the workers made of one instance."""

    profile: Profile
    pseudonym: str
    result: Result
    stored: StoredObject
    findings: list[worker.Finding]


async def _record_deidentified(
    deid: Deid,
    consumer: str,
    event: Event,
    received: InstanceReceived,
    done: Deidentified,
    released_by: str | None,
) -> Outcome:
    instance_id, collection = received.instance_id, received.collection
    profile, pseudonym, result, stored = done.profile, done.pseudonym, done.result, done.stored
    ref = ObjectRef(zone="curation", key=stored.key, size=stored.size, sha256=stored.sha256)
    ids = result.deidentified
    current = True

    async def effect(uow: UnitOfWork) -> list[Event]:
        nonlocal current
        s = uow.session
        current = await is_current(s, instance_id, event.time, released_by is not None)
        if not current:
            return []
        row: dict[str, Any] = {
            "instance_id": instance_id,
            "collection": collection,
            "patient_id": pseudonym,
            "study_instance_uid": ids["StudyInstanceUID"],
            "series_instance_uid": ids["SeriesInstanceUID"],
            "sop_instance_uid": ids["SOPInstanceUID"],
            "sop_class_uid": ids.get("SOPClassUID") or "",
            "modality": ids.get("Modality") or "",
            "curation_key": stored.key,
            "quarantine_key": received.object.key,
            "findings": len(done.findings),
            "size": stored.size,
            "sha256": stored.sha256,
            "profile_version": profile.version,
            "profile_digest": profile.digest(),
            "audit": domain.audit_rows(result.audit),
            "received_at": event.time,
            "deidentified_at": datetime.now(UTC),
            "released_by": released_by,
            "event_id": event.id,
        }
        await upsert(s, Instance, [row], key=("instance_id",))
        mappings = [
            {"collection": collection, "old": old, "new": new}
            for old, new in sorted(result.uid_map.items())
            if old != new
        ]
        await upsert(s, UidMapping, mappings, key=("collection", "old"))
        await s.execute(delete(Hold).where(Hold.instance_id == instance_id))
        announced = InstanceDeidentified(
            instance_id=instance_id,
            collection=collection,
            site=received.site,
            object=ref,
            patient_id=pseudonym,
            study_instance_uid=ids["StudyInstanceUID"],
            series_instance_uid=ids["SeriesInstanceUID"],
            sop_instance_uid=ids["SOPInstanceUID"],
            sop_class_uid=ids.get("SOPClassUID") or "",
            modality=ids.get("Modality") or "",
            header=result.header_json,
            profile_version=profile.version,
            findings=[ResidualFinding(path=p, kind=k) for p, k in done.findings],
        )
        return [announced.event(deid.source, subject=instance_id)]

    applied = await deid.messaging.apply_once(consumer, event, effect)
    if not (applied and current):
        return Outcome(instance_id, "skipped")
    INSTANCES_DEIDENTIFIED.labels(collection).inc()
    return Outcome(instance_id, "deidentified", profile_version=profile.version, object=ref)


async def release(
    deid: Deid,
    collection: str,
    instance_id: str,
    by: str,
    replacement: ObjectRef | None = None,
) -> Outcome | None:
    """Re-run a held instance (None if it is not held in ``collection``).

    A pixel hold is released past the pixel screen — that is what the curator reviewed;
    any other hold (e.g. a missing ID map entry) is simply tried again. ``replacement``:
    the quarantine object to de-identify instead of the one received (pixels blanked).
    """
    async with deid.db.session() as s:
        held = await s.get(Hold, instance_id)
    if held is None or held.collection != collection:
        return None
    payload = dict(held.received)
    payload["release_pixel_hold"] = domain.releases_pixel_hold(held.reason)
    if replacement is not None:
        payload["object"] = replacement.model_dump(mode="json")
    event = InstanceReceived.model_validate(payload).event(deid.source, subject=instance_id)
    log.info("%s releases %s (%s)", by, instance_id, held.kind, extra={"service": "deid"})
    return await process_received(deid, RELEASE_CONSUMER, event, released_by=by)
