"""Clean Descriptors (PS3.15 E.3.5): keep descriptor text, remove the record's own identifiers.

The scrubber is driven by the values of the record being de-identified (its names, IDs,
accession number, dates and UIDs), not by a guess at what PHI looks like: "CT CHEST SMITH
03/14/2019" loses "SMITH" and "03/14/2019" because this patient is Smith and was scanned that
day. A date is found in every common written form (``20190314``, ``03/14/2019``,
``14.03.2019``, ``2019-03-14``, ``2019-3-14``, ``14 Mar 2019``, a DT ``20190314101500``…); an
original UID written in text is replaced by its new UID, so the text still points at the
right instance.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache

from .dates import parse_da

_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_SPLIT_NAME = re.compile(r"[\^=\s,.\-'`]+")
_LETTER_BEFORE = r"(?<![^\W\d_])"
_LETTER_AFTER = r"(?![^\W\d_])"
_ALNUM_BEFORE = r"(?<![^\W_])"
_ALNUM_AFTER = r"(?![^\W_])"
_TIDY_SPACES = re.compile(r"\s{2,}")
_TIDY_PUNCT = re.compile(r"\s+([,;:.])")
_TIDY_EDGES = " \t-_,;:/^|.()[]"
# Name parts that are also everyday descriptor words are still removed (a patient called
# "Chest" would lose "CHEST"): under-cleaning is the failure that matters.


def name_parts(person_name: str) -> list[str]:
    """Family, given and middle name parts of a PN value, at least two characters each."""
    parts: list[str] = []
    for group in person_name.split("="):
        components = group.split("^")[:3]  # prefix and suffix ("DR", "JR") are not names
        for component in components:
            parts += [p for p in _SPLIT_NAME.split(component) if len(p) >= 2]
    return parts


def date_variants(value: str) -> list[str]:
    """Regular expressions for a DA value written in common formats."""
    date = parse_da(value)
    if date is None:
        return []
    y, m, d = f"{date.year:04d}", f"{date.month:02d}", f"{date.day:02d}"
    yy = y[2:]
    mi, di = str(date.month), str(date.day)
    month = _MONTHS[date.month - 1]
    month_re = f"(?:{month[:3]}|{month})\\.?"
    day_re = f"0?{di}(?:st|nd|rd|th)?"
    sep = r"[\s\-/.,]*"
    literal = {
        f"{y}{m}{d}",
        f"{m}{d}{y}",
        f"{d}{m}{y}",
        f"{y}-{m}-{d}",
        f"{y}/{m}/{d}",
        f"{y}.{m}.{d}",
        f"{y} {m} {d}",
        f"{m}/{d}/{y}",
        f"{mi}/{di}/{y}",
        f"{m}-{d}-{y}",
        f"{mi}-{di}-{y}",
        f"{m}.{d}.{y}",
        f"{d}/{m}/{y}",
        f"{di}/{mi}/{y}",
        f"{d}.{m}.{y}",
        f"{di}.{mi}.{y}",
        f"{d}-{m}-{y}",
        f"{m}/{d}/{yy}",
        f"{mi}/{di}/{yy}",
        f"{d}/{m}/{yy}",
        f"{d}.{m}.{yy}",
        f"{yy}{m}{d}",
        f"{y}-{mi}-{di}",
        f"{y}/{mi}/{di}",
        f"{y}.{mi}.{di}",
        f"{di}-{mi}-{y}",
        f"{mi}.{di}.{y}",
        f"{mi}-{di}-{yy}",
        f"{di}.{mi}.{yy}",
        f"{di}/{mi}/{yy}",
    }
    patterns = [re.escape(v) for v in sorted(literal, key=len, reverse=True)]
    # A DT (date glued to its time and offset) and an ISO 8601 date-time go whole.
    patterns.insert(0, f"{y}{m}{d}\\d{{2,6}}(?:\\.\\d{{1,6}})?(?:[+-]\\d{{4}})?")
    patterns.insert(0, f"{y}-0?{mi}-0?{di}[T ]\\d{{2}}(?::\\d{{2}}){{0,2}}(?:\\.\\d+)?")
    patterns.append(f"{day_re}{sep}{month_re}{sep}(?:{y}|{yy})")
    patterns.append(f"{month_re}{sep}{day_re}{sep}(?:{y}|{yy})")
    return [f"(?<!\\d){p}(?!\\d)" for p in patterns]


def _id_patterns(identifier: str) -> list[str]:
    ident = identifier.strip()
    out: list[str] = []
    variants = {ident, re.sub(r"[\W_]+", "", ident)}
    for v in variants:
        if len(v) >= 6:
            out.append(re.escape(v))  # long IDs: anywhere, even glued to "MRN"
        elif len(v) >= 3:
            out.append(f"{_ALNUM_BEFORE}{re.escape(v)}{_ALNUM_AFTER}")
    return out


@dataclass(frozen=True, slots=True)
class _Compiled:
    """One record's patterns, each behind a cheap prefilter (most text holds none of them)."""

    names: re.Pattern[str] | None
    ids: re.Pattern[str] | None
    id_needles: tuple[str, ...]
    dates: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...]

    def passes(self, text: str) -> list[re.Pattern[str]]:
        """The patterns worth running on ``text``."""
        out: list[re.Pattern[str]] = []
        if self.names is not None:
            out.append(self.names)
        if self.ids is not None:
            lowered = text.lower()
            if any(needle in lowered for needle in self.id_needles):
                out.append(self.ids)
        # Every written form of a date holds its year as 4 or 2 digits.
        out += [pattern for years, pattern in self.dates if any(y in text for y in years)]
        return out


@lru_cache(maxsize=256)
def _compile(names: tuple[str, ...], ids: tuple[str, ...], dates: tuple[str, ...]) -> _Compiled:
    parts = sorted({p for n in names for p in name_parts(n)}, key=len, reverse=True)
    name_re = None
    if parts:
        alternatives = "|".join(re.escape(p) for p in parts)
        name_re = re.compile(f"{_LETTER_BEFORE}(?:{alternatives}){_LETTER_AFTER}", re.IGNORECASE)
    id_patterns = [p for ident in ids for p in _id_patterns(ident)]
    needles = {
        v.lower()
        for ident in ids
        for v in (ident.strip(), re.sub(r"[\W_]+", "", ident.strip()))
        if len(v) >= 3
    }
    id_re = re.compile("|".join(id_patterns), re.IGNORECASE) if id_patterns else None
    date_res = []
    for date in dates:
        variants = date_variants(date)
        if variants:
            year = date.strip()[:4]
            date_res.append(((year, year[2:]), re.compile("|".join(variants), re.IGNORECASE)))
    return _Compiled(name_re, id_re, tuple(sorted(needles)), tuple(date_res))


@lru_cache(maxsize=1024)
def _uid_pattern(uid: str) -> re.Pattern[str]:
    # Whole UIDs only: "1.2.3" is not found inside "1.2.3.4" nor inside "11.2.3".
    return re.compile(f"(?<![\\d.]){re.escape(uid)}(?!\\.?\\d)")


class Scrubber:
    """Removes one record's identifiers from free text.

    ``uids`` are the record's original UIDs; ``remap`` gives each one's new UID (without it
    they are kept, as under Retain UIDs). UIDs are matched by substring first and compiled
    only when present, so a per-instance UID never costs a pattern compilation.
    """

    __slots__ = ("_compiled", "_remap", "_uids")

    def __init__(
        self,
        names: Iterable[str],
        ids: Iterable[str],
        dates: Iterable[str],
        uids: Iterable[str] = (),
        remap: Callable[[str], str] | None = None,
    ) -> None:
        self._compiled = _compile(
            tuple(sorted({n for n in names if n})),
            tuple(sorted({i for i in ids if i and i.strip()})),
            tuple(sorted({d for d in dates if d})),
        )
        # Longest first: a series UID that extends its study UID is replaced as a whole.
        self._uids = tuple(sorted({u for u in uids if u}, key=len, reverse=True))
        self._remap = remap

    def _uids_in(self, text: str) -> list[str]:
        if self._remap is None or "." not in text:
            return []
        return [u for u in self._uids if u in text]

    def clean(self, text: str, max_len: int | None = None) -> str:
        """``text`` without the record's identifiers; tidy spacing; may return "".

        When writing new UIDs would make the text longer than ``max_len`` (the VR's limit),
        the original UIDs are removed instead.
        """
        if not text:
            return text
        total = 0
        remap = self._remap
        for uid in self._uids_in(text):
            assert remap is not None
            # A UID is digits and dots, so it is a literal replacement template.
            text, count = _uid_pattern(uid).subn(remap(uid), text)
            total += count
        if max_len is not None and len(text) > max_len and total:
            for uid in self._uids:
                text = text.replace(remap(uid), "") if remap is not None else text
        for pattern in self._compiled.passes(text):
            text, count = pattern.subn("", text)
            total += count
        if not total:
            return text
        text = _TIDY_PUNCT.sub(r"\1", _TIDY_SPACES.sub(" ", text))
        return text.strip(_TIDY_EDGES)

    def contains(self, text: str) -> bool:
        if any(_uid_pattern(u).search(text) for u in self._uids_in(text)):
            return True
        return any(p.search(text) is not None for p in self._compiled.passes(text))
