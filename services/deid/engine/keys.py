"""Keyed pseudonyms: UIDs and date offsets derived by HMAC-SHA256 (RFC 2104).

An unkeyed hash of a UID (CTP ``@hashuid``, deid ``pydicom_uuid``) can be recomputed by anyone
who holds the original UID; an HMAC cannot without the deployment secret. Both functions are
deterministic, so the same input gives the same output in every run, batch and process.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Literal

_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")

#: Offsets lie in [-3650, -366] days: at least a year, at most ten, always into the past.
OFFSET_MIN_DAYS = -3650
OFFSET_MAX_DAYS = -366


def is_valid_uid(value: str) -> bool:
    """A PS3.5 9.1 UID: digits and dots, no leading zeros, at most 64 characters."""
    return 0 < len(value) <= 64 and _UID_RE.match(value) is not None


@dataclass(frozen=True)
class Keys:
    """The deployment secret and the UID root under which new UIDs are made."""

    secret: bytes
    uid_root: str

    def __post_init__(self) -> None:
        if len(self.secret) < 16:
            raise ValueError("the de-identification secret must be at least 16 bytes")
        if not is_valid_uid(self.uid_root) or len(self.uid_root) > 40:
            raise ValueError(
                f"UID root {self.uid_root!r} is not a valid UID of at most 40 characters"
            )

    def __repr__(self) -> str:  # never print the secret
        return f"Keys(secret=<{len(self.secret)} bytes>, uid_root={self.uid_root!r})"


def _mac(keys: Keys, label: bytes, *parts: str) -> bytes:
    msg = label + b"\x00" + b"\x00".join(p.encode("utf-8") for p in parts)
    return hmac.new(keys.secret, msg, hashlib.sha256).digest()


def new_uid(keys: Keys, original_uid: str) -> str:
    """The re-rooted UID for ``original_uid``: ``<uid_root>.<decimal HMAC>``, <= 64 chars.

    Under the ``2.25`` root the suffix is a version-8 (RFC 9562 custom) UUID as an integer, as
    PS3.5 B.2 asks of that root; under an organisation root it is as many decimal digits of the
    HMAC as fit in 64 characters (at least 24, i.e. > 79 bits, since roots are <= 40 chars).
    """
    original = original_uid.strip().rstrip("\x00").strip()
    mac = _mac(keys, b"uid", original)
    if keys.uid_root == "2.25":
        raw = bytearray(mac[:16])
        raw[6] = (raw[6] & 0x0F) | 0x80  # version 8
        raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
        return f"2.25.{int.from_bytes(raw, 'big')}"
    room = 64 - len(keys.uid_root) - 1
    number = int.from_bytes(mac, "big") % (10**room)
    return f"{keys.uid_root}.{number}"


def date_offset_days(
    keys: Keys,
    collection: str,
    original_patient_id: str,
    scope: Literal["patient", "collection"] = "patient",
) -> int:
    """The keyed day offset for a patient (or a whole collection), in [-3650, -366].

    Per-patient offsets mean one known date reveals only that patient's offset; intervals
    between a patient's studies are kept because every study of theirs gets the same offset.
    """
    if scope not in ("patient", "collection"):
        raise ValueError(f"date shift scope must be 'patient' or 'collection', not {scope!r}")
    subject = original_patient_id.strip() if scope == "patient" else ""
    mac = _mac(keys, b"date", scope, collection, subject)
    span = OFFSET_MAX_DAYS - OFFSET_MIN_DAYS + 1
    return OFFSET_MIN_DAYS + int.from_bytes(mac[:8], "big") % span
