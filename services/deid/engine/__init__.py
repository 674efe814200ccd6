"""The imarc de-identification engine: PS3.15 Annex E as a pure library.

The deid service calls ``deidentify`` (in a process pool) and ``read_patient_id``; everything
else here describes profiles and keys. No I/O happens besides reading the packaged tables.
"""

from .core import (
    HOLD_BURNED_IN_PHI,
    HOLD_RECOGNIZABLE_FEATURES,
    AuditEntry,
    DeidentificationError,
    Request,
    Result,
    deidentify,
    read_patient_id,
)
from .keys import Keys, date_offset_days, new_uid
from .profile import OPTION_CODES, OPTIONS, BlankRule, PixelRule, Profile, default_profile
from .tables import SAFE_PRIVATE_EDITION, TABLE_EDITION

__all__ = [
    "HOLD_BURNED_IN_PHI",
    "HOLD_RECOGNIZABLE_FEATURES",
    "OPTIONS",
    "OPTION_CODES",
    "SAFE_PRIVATE_EDITION",
    "TABLE_EDITION",
    "AuditEntry",
    "BlankRule",
    "DeidentificationError",
    "Keys",
    "PixelRule",
    "Profile",
    "Request",
    "Result",
    "date_offset_days",
    "default_profile",
    "deidentify",
    "new_uid",
    "read_patient_id",
]
