"""De-identification profiles: the Basic Profile of PS3.15 E.2 plus options (E.3, CID 7050).

A profile belongs to a collection and is versioned; its digest (SHA-256 of a canonical JSON)
is written into every output instance so that a curator can tell which rules made it. The
models are frozen pydantic models: the deid API takes and returns them as its schema.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, PrivateAttr, field_validator

#: Option name -> CID 7050 code value (PS3.16). 113100 is the Basic Profile itself.
OPTION_CODES: dict[str, str] = {
    "clean_pixel_data": "113101",
    "clean_recognizable_visual_features": "113102",
    "clean_graphics": "113103",
    "clean_structured_content": "113104",
    "clean_descriptors": "113105",
    "retain_long_full_dates": "113106",
    "retain_long_modified_dates": "113107",
    "retain_patient_characteristics": "113108",
    "retain_device_identity": "113109",
    "retain_uids": "113110",
    "retain_safe_private": "113111",
    "retain_institution_identity": "113112",
}
BASIC_PROFILE_CODE = "113100"

#: Every option name a profile may carry.
OPTIONS: frozenset[str] = frozenset(OPTION_CODES)

#: Options this engine cannot honour (defacing is not implemented), refused at construction.
UNSUPPORTED_OPTIONS: frozenset[str] = frozenset({"clean_recognizable_visual_features"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PixelRule(_Frozen):
    """Hold instances of a device for pixel review (``possible burned-in PHI``).

    Empty fields match anything; ``manufacturer`` and ``model`` match case-insensitive
    substrings of Manufacturer (0008,0070) and Manufacturer's Model Name (0008,1090).
    """

    manufacturer: str = ""
    model: str = ""
    modality: str = ""
    reason: str = "device known to burn in annotations"

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()


Rectangle = tuple[int, int, int, int]


class BlankRule(_Frozen):
    """Blank rectangles ``(x, y, width, height)`` in every frame of matching instances.

    Like CTP's DicomPixelAnonymizer signatures, a rule is a device signature plus the image
    size; ``None``/empty fields match anything. Only native (uncompressed) pixel data is
    blanked; a compressed match stays held.
    """

    rectangles: tuple[Rectangle, ...]
    manufacturer: str = ""
    model: str = ""
    rows: int | None = None
    columns: int | None = None

    @field_validator("rectangles", mode="before")
    @classmethod
    def _rectangles(cls, value: Any) -> tuple[Rectangle, ...]:
        rects = tuple(tuple(int(v) for v in r) for r in value)
        for r in rects:
            if len(r) != 4 or r[2] <= 0 or r[3] <= 0 or r[0] < 0 or r[1] < 0:
                raise ValueError(f"a blank rectangle is (x, y, width, height) > 0, not {r}")
        return rects  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        return {
            "manufacturer": self.manufacturer,
            "model": self.model,
            "rows": self.rows,
            "columns": self.columns,
            "rectangles": [list(r) for r in self.rectangles],
        }


class Profile(_Frozen):
    """Basic Application Level Confidentiality Profile plus ``options`` (names in OPTIONS).

    A frozen pydantic model, so the API can take and show it as it is. ``defacing_modalities``
    names the modalities for which the collection's pipeline has a defacing step (Clean
    Recognizable Visual Features); an instance of another modality whose Recognizable Visual
    Features (0028,0302) is YES is held.
    """

    options: frozenset[str]
    version: int = 1
    date_shift_scope: Literal["patient", "collection"] = "patient"
    require_id_map: bool = False
    pixel_rules: tuple[PixelRule, ...] = ()
    blank_rectangles: tuple[BlankRule, ...] = ()
    keep_tags: tuple[str, ...] = ()
    defacing_modalities: tuple[str, ...] = ()
    _digest: str = PrivateAttr(default="")

    @field_validator("options")
    @classmethod
    def _options(cls, options: frozenset[str]) -> frozenset[str]:
        unknown = options - OPTIONS
        if unknown:
            raise ValueError(
                f"unknown de-identification option(s) {sorted(unknown)}; "
                f"choose from {sorted(OPTIONS)}"
            )
        unsupported = options & UNSUPPORTED_OPTIONS
        if unsupported:
            raise ValueError(
                f"option(s) {sorted(unsupported)} are not supported by this engine; "
                "name the modalities your defacing step covers in defacing_modalities instead"
            )
        if {"retain_long_full_dates", "retain_long_modified_dates"} <= options:
            raise ValueError(
                "retain_long_full_dates and retain_long_modified_dates exclude each other"
            )
        return options

    @field_validator("version")
    @classmethod
    def _version(cls, version: int) -> int:
        if version < 1:
            raise ValueError("profile version starts at 1")
        return version

    @field_validator("keep_tags")
    @classmethod
    def _keep_tags(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(set(tags)))

    @field_validator("defacing_modalities")
    @classmethod
    def _modalities(cls, modalities: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = {m.strip().upper() for m in modalities}
        if "" in cleaned or any(len(m) > 16 for m in cleaned):
            raise ValueError("defacing_modalities are Modality (0008,0060) values, e.g. MR")
        return tuple(sorted(cleaned))

    def model_post_init(self, context: Any, /) -> None:
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        self._digest = hashlib.sha256(canonical.encode()).hexdigest()

    def digest(self) -> str:
        """SHA-256 (hex) of the canonical JSON form: identical profiles, identical digest."""
        return self._digest

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "options": sorted(self.options),
            "version": self.version,
            "date_shift_scope": self.date_shift_scope,
            "require_id_map": self.require_id_map,
            "pixel_rules": [r.to_dict() for r in self.pixel_rules],
            "blank_rectangles": [r.to_dict() for r in self.blank_rectangles],
            "keep_tags": list(self.keep_tags),
        }
        if self.defacing_modalities:  # absent when empty: earlier profiles keep their digest
            out["defacing_modalities"] = list(self.defacing_modalities)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        return cls.model_validate({**data, "options": frozenset(data.get("options", ()))})

    @classmethod
    def from_json(cls, text: str | bytes) -> Profile:
        return cls.from_dict(json.loads(text))

    def method_codes(self) -> list[str]:
        """CID 7050 codes this profile claims (113101 is added per instance when blanked)."""
        codes = [BASIC_PROFILE_CODE]
        codes += sorted(OPTION_CODES[o] for o in self.options if o != "clean_pixel_data")
        return codes


def default_profile() -> Profile:
    """TCIA practice: Basic + Retain Safe Private + Retain Longitudinal Modified Dates +
    Retain Patient Characteristics + Retain Device Identity + Clean Descriptors."""
    return Profile(
        options=frozenset(
            {
                "retain_safe_private",
                "retain_long_modified_dates",
                "retain_patient_characteristics",
                "retain_device_identity",
                "clean_descriptors",
            }
        )
    )
