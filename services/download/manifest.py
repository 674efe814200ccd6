"""The NBIA Data Retriever manifest (``.tcia``) and what a download client is told about
each series. Pure: no I/O.

A manifest is exactly six header lines, then one SeriesInstanceUID per line (NBIA's
ManifestMaker, manifestVersion 3.0): tcia_utils' ``manifestToList`` drops the first six
lines, and the Java Data Retriever reads the lines after ``ListOfSeriesToDownload=``.
Extra header lines would be taken for UIDs, so the licence and citation travel with the
files (LICENSE and CITATION), not in the manifest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

MEDIA_TYPE = "application/x-nbia-manifest-file"
_UID = re.compile(r"[0-9.]{1,64}")


def manifest_lines(
    series: Iterable[str], *, server_url: str, basket_id: str, include_annotation: bool = True
) -> Iterator[str]:
    """The manifest, line by line (each ends with a newline)."""
    yield f"downloadServerUrl={server_url}\n"
    yield f"includeAnnotation={'true' if include_annotation else 'false'}\n"
    yield "noOfrRetry=4\n"  # sic: NBIA's spelling, which the readers expect
    yield f"databasketId=manifest-{basket_id}.tcia\n"
    yield "manifestVersion=3.0\n"
    yield "ListOfSeriesToDownload=\n"
    for uid in series:
        yield f"{uid}\n"


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
