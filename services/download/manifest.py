"""Reading an NBIA Data Retriever manifest (``.tcia``); services.common.manifest writes
them. Pure: no I/O."""

from __future__ import annotations

import re

_UID = re.compile(r"[0-9.]{1,64}")


def parse_manifest(text: str) -> list[str]:
    """The series UIDs of a manifest: with NBIA's header (the lines after
    ``ListOfSeriesToDownload=``) or without one (blank lines, ``#`` comments and
    ``key=value`` lines skipped), each UID once, in order."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("ListOfSeriesToDownload"):
            lines = lines[i + 1 :]
            break
    out: dict[str, None] = {}
    for line in lines:
        uid = line.strip()
        if not uid or uid.startswith("#") or "=" in uid:
            continue
        if not _UID.fullmatch(uid):
            raise ValueError(f"{uid[:80]!r} in the manifest is not a SeriesInstanceUID")
        out[uid] = None
    return list(out)
