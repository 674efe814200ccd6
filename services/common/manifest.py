"""The NBIA Data Retriever manifest (``.tcia``), written the one way every service that
hands out manifests writes it (catalog's simple-search manifests, download's baskets).
Pure: no I/O.

A manifest is exactly six header lines, then one SeriesInstanceUID per line (NBIA's
ManifestMaker, manifestVersion 3.0): tcia_utils' ``manifestToList`` drops the first six
lines, and the Java Data Retriever reads the lines after ``ListOfSeriesToDownload=``.
Extra header lines would be taken for UIDs, so the licence and citation travel with the
files (LICENSE and CITATION), not in the manifest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

MEDIA_TYPE = "application/x-nbia-manifest-file"


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
