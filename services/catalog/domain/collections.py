"""A collection as the catalog knows it: its licence, access rule and DOI."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class CollectionInfo:
    """A collection as the catalog knows it (from collection.updated or a publication)."""

    id: int
    name: str
    licence_id: str = ""
    licence_name: str = ""
    licence_url: str = ""
    access: str = "public"
    description: str = ""
    doi: str = ""

    @property
    def doi_url(self) -> str | None:
        """The DOI as a resolvable URL, as NBIA's DataDescriptionURI gives it."""
        doi = self.doi.strip()
        if not doi:
            return None
        if doi.startswith(("http://", "https://")):
            return doi
        return "https://doi.org/" + re.sub(
            r"^(doi:|https?://(dx\.)?doi\.org/)", "", doi, flags=re.I
        )
