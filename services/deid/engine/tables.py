"""Reference tables of PS3.15 Annex E, loaded lazily from ``services/deid/data``.

The files are copies of published tables (see ``services/deid/data/PROVENANCE.md``). Each is
pinned here by SHA-256 so that a changed table cannot slip in silently: the edition written
into DeidentificationMethod (0012,0063) is the edition the engine actually applied.

Nothing is read at import time; every loader is cached for the life of the process.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

#: PS3.15 Table E.1-1 edition applied by this engine (innolitics/dicom-standard, rev 2024b).
TABLE_EDITION = "2024b"
#: PS3.15 Table E.3.10-1 and PS3.16 CID 7050 edition (pymedphys excerpts, 2026d).
SAFE_PRIVATE_EDITION = "2026d"

_PINNED_SHA256 = {
    "annex_e_table.json": "a99a35d1278e2bace8d90ff791b11aea2d45f1e3e1230388eb5224c9dbcd29e6",
    "cid_7050_deid_method_codes.json": (
        "94d4f3321f35c3e1c1ddc1dd818021dcec4a3de6318433b54593c224ca73948a"
    ),
    "e3_10_1_safe_private_attributes.json": (
        "faf039fdc79554cd8eb18b156cac1f31d92b6ede8e298de7c94426c0269496b7"
    ),
    "tcia_private_tags_template.csv": (
        "5f452b55781c09460b2567dce9c108879045e2fb4cbac4b25007380a5f06d6a6"
    ),
}

#: Action codes of Table E.1-1a.
ACTION_CODES = frozenset({"D", "Z", "X", "K", "C", "U", "Z/D", "X/Z", "X/D", "X/Z/D", "X/Z/U*"})

#: Table E.1-1 option columns, keyed by the engine's option names.
OPTION_COLUMNS = {
    "retain_safe_private": "rtnSafePrivOpt",
    "retain_uids": "rtnUIDsOpt",
    "retain_device_identity": "rtnDevIdOpt",
    "retain_institution_identity": "rtnInstIdOpt",
    "retain_patient_characteristics": "rtnPatCharsOpt",
    "retain_long_full_dates": "rtnLongFullDatesOpt",
    "retain_long_modified_dates": "rtnLongModifDatesOpt",
    "clean_descriptors": "cleanDescOpt",
    "clean_structured_content": "cleanStructContOpt",
    "clean_graphics": "cleanGraphOpt",
}


class TableError(RuntimeError):
    """A packaged reference table is missing or differs from the pinned copy."""


def _read_pinned(name: str) -> bytes:
    path = DATA_DIR / name
    try:
        raw = path.read_bytes()
    except OSError as exc:  # pragma: no cover - packaging error
        raise TableError(f"reference table {path} is missing; reinstall imarc") from exc
    digest = hashlib.sha256(raw).hexdigest()
    if digest != _PINNED_SHA256[name]:
        raise TableError(
            f"reference table {name} has SHA-256 {digest}, not the pinned "
            f"{_PINNED_SHA256[name]}; update the pin and TABLE_EDITION together"
        )
    return raw


@dataclass(frozen=True, slots=True)
class E11Row:
    """One row of Table E.1-1: the Basic Profile action and the option actions."""

    tag: int
    name: str
    basic: str
    options: dict[str, str]


_TAG_RE = re.compile(r"^\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)$")


@cache
def annex_e_rows() -> tuple[E11Row, ...]:
    """Rows of Table E.1-1 with a concrete tag (wildcard rows are handled in code)."""
    rows: list[E11Row] = []
    for item in json.loads(_read_pinned("annex_e_table.json")):
        match = _TAG_RE.match(item["tag"])
        if match is None:
            continue  # 50XX,XXXX / 60XX,3000 / 60XX,4000 / odd groups: see rules.py
        basic = item["basicProfile"]
        if basic not in ACTION_CODES:  # pragma: no cover - guarded by the pin
            raise TableError(f"unknown action {basic!r} for {item['tag']}")
        options = {opt: item[col] for opt, col in OPTION_COLUMNS.items() if item.get(col)}
        rows.append(
            E11Row(
                tag=int(match.group(1) + match.group(2), 16),
                name=item["name"].split("\n")[0].strip(),
                basic=basic,
                options=options,
            )
        )
    return tuple(rows)


@cache
def cid_7050() -> dict[str, str]:
    """CID 7050 code value -> code meaning."""
    doc: dict[str, Any] = json.loads(_read_pinned("cid_7050_deid_method_codes.json"))
    return {row["code_value"]: row["code_meaning"] for row in doc["rows"]}


@dataclass(frozen=True, slots=True)
class PrivateRule:
    """What to do with a private element that a keep-list names.

    ``action`` is ``keep``, ``uid`` (re-root by HMAC like a standard UID) or ``date``
    (shift like a standard date); ``vr`` is the VR the list gives, used to read UN values.
    """

    action: str
    vr: str
    source: str
    vrs: frozenset[str] = frozenset()

    def allows(self, vr: str) -> bool:
        """Whether a value written with ``vr`` is what the list names (UN: unknown)."""
        return vr in ("", "UN") or not self.vrs or "UN" in self.vrs or vr in self.vrs


def _vrs(listed: str) -> frozenset[str]:
    """``"US or SS"``, ``"OW/OB"`` -> {"US", "SS"}, {"OW", "OB"}; "" -> any."""
    return frozenset(v for v in re.split(r"\s+or\s+|/|\s+", listed.strip()) if v)


def normalise_creator(creator: str) -> str:
    """A private creator without its padding (LO: leading and trailing spaces, NUL).

    The comparison is otherwise exact (PS3.5 7.8.1): ``gems_iden_01`` or ``GEMS_IDEN_01X``
    is not ``GEMS_IDEN_01``, and nothing listed for one is safe under the other.
    """
    return creator.strip(" \x00")


@cache
def private_rules() -> dict[tuple[int, str, int], PrivateRule]:
    """(group, creator, element low byte) -> rule, from Table E.3.10-1 + the TCIA keep-list.

    Matching on the creator and low byte (never on the absolute tag) is what PS3.5 7.8.1
    requires: a creator may be reserved in any block 0x10..0xFF of its group.
    """
    rules: dict[tuple[int, str, int], PrivateRule] = {}
    doc = json.loads(_read_pinned("e3_10_1_safe_private_attributes.json"))
    for row in doc["rows"]:
        group_s, elem_s = row["tag"].strip("()").split(",")
        key = (int(group_s, 16), normalise_creator(row["private_creator"]), int(elem_s[2:], 16))
        vrs = _vrs(row["vr"])
        rules[key] = PrivateRule("keep", row["vr"].split(" ")[0].split("/")[0], "E.3.10-1", vrs)
    text = _read_pinned("tcia_private_tags_template.csv").decode("utf-8")
    for rec in csv.DictReader(text.splitlines()):
        key = (
            int(rec["Group"], 16),
            normalise_creator(rec["Private Creator"]),
            int(rec["Element"][2:], 16),
        )
        action = rec["Rtn. Safe Priv. Opt."]
        if action == "keep":
            kind = "keep"
        elif action == "func:generate_hmacuid":
            kind = "uid"
        elif action.startswith("func:generate_hmacdate_shift"):
            kind = "date"
        else:  # pragma: no cover - guarded by the pin
            raise TableError(f"unknown TCIA private action {action!r}")
        previous = rules.get(key)
        vrs = _vrs(rec["VR"]) | (previous.vrs if previous is not None else frozenset())
        # A transform (uid/date) always wins over a plain keep: keeping a UID or date raw
        # would leak it even where Table E.3.10-1 calls the element safe.
        if previous is None or kind != "keep":
            first = (rec["VR"] or "UN").split(" ")[0].split("/")[0]
            rules[key] = PrivateRule(kind, first, "TCIA", vrs)
        else:
            rules[key] = replace(previous, vrs=vrs)
    return rules
