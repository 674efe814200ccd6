"""Event payloads are a published API: each type has a golden JSON sample here.

For every payload model, a fixed example serialises to exactly its golden sample, and
the sample parses back into the same example. A field renamed, removed, retyped or
added without a default fails here; so does a new event type without a sample.

A deliberate, compatible change (a field added with a default) updates the samples:
``.venv/bin/python -m tests.contract.test_event_shapes`` rewrites them from the examples.
A breaking change is a new event type emitted beside the old one (services/common/events.py).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.common.events import (
    EVENT_TYPES,
    CollectionUpdated,
    Event,
    InstanceDeidentified,
    InstanceHeld,
    InstanceReceived,
    Licence,
    LicenceUpdated,
    ObjectRef,
    Payload,
    PublishedInstance,
    ResidualFinding,
    SeriesIndexed,
    SeriesPublished,
    SeriesWithdrawn,
)

GOLDEN = Path(__file__).with_name("golden")
ENVELOPE = "envelope"

_COLLECTION = CollectionUpdated(
    name="Demo-CT",
    licence=Licence(
        id="CC-BY-4.0",
        name="Creative Commons Attribution 4.0 International",
        url="https://creativecommons.org/licenses/by/4.0/",
    ),
    access="limited",
    description="CT of the chest, de-identified to PS3.15 Annex E",
    doi="10.7937/demo-ct",
    require_id_map=True,
    citation="Demo Consortium (2026). Demo-CT: chest CT for testing [Data set]. imarc.",
    data_usage_policy="https://archive.example.org/data-usage-policy",
    face_reconstructable=True,
)
_HEADER = {
    "00080060": {"vr": "CS", "Value": ["CT"]},
    "00100020": {"vr": "LO", "Value": ["Demo-CT-0001"]},
    "00280010": {"vr": "US", "Value": [128]},
}
_SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

#: One fixed example per payload type, every field set (no field left to its default).
EXAMPLES: dict[str, Payload] = {
    CollectionUpdated.TYPE: _COLLECTION,
    InstanceReceived.TYPE: InstanceReceived(
        instance_id="0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        collection="Demo-CT",
        site="site-1",
        filename="series1/IM0001.dcm",
        object=ObjectRef(
            zone="quarantine",
            key="Demo-CT/0f1e2d3c4b5a69788796a5b4c3d2e1f0.dcm",
            size=39206,
            sha256=_SHA,
        ),
        release_pixel_hold=True,
    ),
    InstanceHeld.TYPE: InstanceHeld(
        instance_id="5d41402abc4b2a76b9719d911017c592",
        collection="Demo-CT",
        site="site-1",
        filename="series1/broken.dcm",
        stage="deid",
        reason="burned-in annotation suspected (BurnedInAnnotation is YES)",
        code="burned_in_phi",
    ),
    InstanceDeidentified.TYPE: InstanceDeidentified(
        instance_id="0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        collection="Demo-CT",
        site="site-1",
        object=ObjectRef(
            zone="curation", key="Demo-CT/2.25.1/2.25.2/2.25.3.dcm", size=38912, sha256=_SHA
        ),
        patient_id="Demo-CT-0001",
        study_instance_uid="2.25.1",
        series_instance_uid="2.25.2",
        sop_instance_uid="2.25.3",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        modality="CT",
        header=_HEADER,
        profile_version=3,
        findings=[ResidualFinding(path="00204000", kind="name")],
    ),
    SeriesPublished.TYPE: SeriesPublished(
        collection=_COLLECTION,
        site="site-1",
        patient_id="Demo-CT-0001",
        study_instance_uid="2.25.1",
        series_instance_uid="2.25.2",
        released_at=datetime(2026, 11, 28, 9, 30, 0, tzinfo=UTC),
        instances=[
            PublishedInstance(
                sop_instance_uid="2.25.3",
                key="Demo-CT/2.25.1/2.25.2/2.25.3.dcm",
                size=38912,
                sha256=_SHA,
                header=_HEADER,
                crc32=3735928559,
            )
        ],
    ),
    SeriesWithdrawn.TYPE: SeriesWithdrawn(
        collection="Demo-CT", series_instance_uid="2.25.2", reason="consent withdrawn"
    ),
    SeriesIndexed.TYPE: SeriesIndexed(
        collection="Demo-CT",
        series_instance_uid="2.25.2",
        study_instance_uid="2.25.1",
        patient_id="Demo-CT-0001",
        released_at=datetime(2026, 11, 28, 9, 30, 0, tzinfo=UTC),
        instances=120,
    ),
    LicenceUpdated.TYPE: LicenceUpdated(
        id="Site-DUA-1",
        name="Site data use agreement 1",
        url="https://dua.example.org/1",
        commercial_use=False,
        requires_approval=True,
        deleted=False,
    ),
}

#: The CloudEvents envelope around a payload, with its generated attributes fixed.
ENVELOPE_EXAMPLE = Event(
    id="3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6b",
    source="/site-a/intake",
    type=CollectionUpdated.TYPE,
    subject="Demo-CT",
    time=datetime(2026, 11, 28, 9, 30, 0, tzinfo=UTC),
    data=_COLLECTION.model_dump(mode="json"),
)


def canonical(value: Any) -> str:
    """JSON text with sorted keys: equal only if every key, value and JSON type is
    (``1`` and ``1.0``, ``true`` and ``1`` differ here, not in a Python comparison)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def golden_path(name: str) -> Path:
    return GOLDEN / f"{name}.json"


def golden(name: str) -> Any:
    return json.loads(golden_path(name).read_text())


def test_every_event_type_has_an_example_and_a_golden_sample() -> None:
    assert set(EXAMPLES) == set(EVENT_TYPES)
    samples = {p.stem for p in GOLDEN.glob("*.json")}
    assert samples == {*EVENT_TYPES, ENVELOPE}


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_example_sets_every_field(event_type: str) -> None:
    example = EXAMPLES[event_type]
    assert type(example) is EVENT_TYPES[event_type]
    assert example.model_fields_set == set(type(example).model_fields)


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_payload_serialises_to_its_golden_sample(event_type: str) -> None:
    example = EXAMPLES[event_type]
    assert canonical(example.model_dump(mode="json")) == canonical(golden(event_type))
    # what actually travels: the event's data, through the envelope's JSON
    sent = Event.from_bytes(example.event("/site-a/test", subject="s").to_bytes())
    assert canonical(sent.data) == canonical(golden(event_type))


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_golden_sample_parses_back(event_type: str) -> None:
    model = EVENT_TYPES[event_type]
    event = Event(source="/site-b/mirror", type=event_type, data=golden(event_type))
    assert event.payload(model) == EXAMPLES[event_type]


def test_envelope_serialises_to_its_golden_sample_and_back() -> None:
    assert canonical(json.loads(ENVELOPE_EXAMPLE.to_bytes())) == canonical(golden(ENVELOPE))
    parsed = Event.from_bytes(golden_path(ENVELOPE).read_bytes())
    assert parsed == ENVELOPE_EXAMPLE
    assert parsed.payload(CollectionUpdated) == _COLLECTION


def write_golden() -> None:
    """Rewrite the samples from the examples (for a deliberate, compatible change)."""
    GOLDEN.mkdir(exist_ok=True)
    samples = {t: e.model_dump(mode="json") for t, e in EXAMPLES.items()}
    samples[ENVELOPE] = json.loads(ENVELOPE_EXAMPLE.to_bytes())
    for name, value in samples.items():
        golden_path(name).write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    write_golden()
