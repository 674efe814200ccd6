"""Pure rules of the public catalog; nothing here does I/O.

* :mod:`.indexing` — what a published series contributes to the index;
* :mod:`.nbia` — how NBIA's search API names and orders it (columns, values, dates);
* :mod:`.formats` — NBIA's output formats; :mod:`.dicom_tags` — the getDicomTags layout;
* :mod:`.collections` — a collection's licence, access rule and DOI.

Headers arrive in the DICOM JSON model (PS3.18 F.2), read with services.common.dicom_json.
"""

from __future__ import annotations

from services.catalog.domain.nbia import SERIES_COLS

__all__ = ["SERIES_COLS"]
