"""Day shifts for DA and DT values (PS3.5 6.2), keeping precision.

A whole-day shift keeps every interval between a patient's dates and leaves every TM as it
was, so DA/TM pairs stay consistent even around midnight (leak case 5). A DT's UTC offset
(``&ZZXX``) says where the patient was; it is dropped with Timezone Offset From UTC
(0008,0201) whenever dates are shifted, so that every time left is local time, like TM.
"""

from __future__ import annotations

import datetime as dt
import re

_DA_RE = re.compile(r"^(\d{4})(?:[.\-/]?(\d{2})(?:[.\-/]?(\d{2}))?)?$")
_DT_RE = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2}(?:\d{2}(?:\d{2}(?:\.\d{1,6})?)?)?)?([+-]\d{4})?$"
)

DUMMY_DA = "19000101"
DUMMY_DT = "19000101000000"
DUMMY_TM = "000000"


def _shift_parts(year: int, month: int | None, day: int | None, days: int) -> str:
    # Partial values shift from the middle of their period and keep their precision.
    base = dt.date(year, month or 7, day or (15 if month else 1))
    shifted = base + dt.timedelta(days=days)
    if shifted.year < 1 or shifted.year > 9999:  # pragma: no cover - absurd input
        raise ValueError("shifted date out of range")
    if month is None:
        return f"{shifted.year:04d}"
    if day is None:
        return f"{shifted.year:04d}{shifted.month:02d}"
    return shifted.strftime("%Y%m%d")


def shift_da(value: str, days: int) -> str | None:
    """Shift one DA value (``YYYYMMDD``, ACR-NEMA ``YYYY.MM.DD``, or partial ``YYYY[MM]``).

    Returns None when the value is not a date (the caller then removes it).
    """
    text = value.strip().rstrip("\x00").strip()
    if not text:
        return ""
    match = _DA_RE.match(text)
    if match is None:
        return None
    try:
        year = int(match.group(1))
        month = int(match.group(2)) if match.group(2) else None
        day = int(match.group(3)) if match.group(3) else None
        return _shift_parts(year, month, day, days)
    except ValueError:
        return None


def shift_dt(value: str, days: int, keep_zone: bool = True) -> str | None:
    """Shift one DT value ``YYYY[MM[DD[HH[MM[SS[.F]]]]]][&ZZXX]``; the time is kept, and the
    UTC offset too unless ``keep_zone`` is false."""
    text = value.strip().rstrip("\x00").strip()
    if not text:
        return ""
    match = _DT_RE.match(text)
    if match is None:
        return None
    year_s, month_s, day_s, time_s, zone_s = match.groups()
    try:
        head = _shift_parts(
            int(year_s),
            int(month_s) if month_s else None,
            int(day_s) if day_s else None,
            days,
        )
    except ValueError:
        return None
    return head + (time_s or "") + ((zone_s or "") if keep_zone else "")


def shift_multi(value: str, days: int, vr: str, keep_zone: bool = True) -> str | None:
    """Shift every value of a multi-valued DA or DT string; None if any is not a date."""
    out: list[str] = []
    for part in value.split("\\"):
        shifted = shift_da(part, days) if vr == "DA" else shift_dt(part, days, keep_zone)
        if shifted is None:
            return None
        out.append(shifted)
    return "\\".join(out)


def parse_da(value: str) -> dt.date | None:
    """The date of a full DA value, or None."""
    match = _DA_RE.match(value.strip())
    if match is None or not match.group(3):
        return None
    try:
        return dt.date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None
