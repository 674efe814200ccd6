"""Rules every service shares because they are part of the platform's public contract:
how a collection may be named, which roles a token can carry, and which service answers
which path (the gateway routes by it; metrics label by it). Pure: no I/O.
"""

from __future__ import annotations

import re

#: Collection names appear in URLs, object keys and manifests: a short, safe alphabet.
COLLECTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
COLLECTION_NAME_RULE = "a collection name is 1 to 64 letters, digits, '-' or '_' (e.g. Demo-CT)"

#: The roles a token may carry, broadest first.
ROLES = ("admin", "manager", "curator", "submitter", "user")

#: Services with their own HTTP API under ``/api/<service>/``.
SERVICES = ("intake", "deid", "qc", "catalog", "download", "auth")

#: The largest ``offset`` a list or search accepts: far past any real listing, and far below
#: the 64-bit integers the databases take (a larger one is a 422/400, never a 500).
MAX_OFFSET = 1_000_000_000

#: NBIA endpoints that return image bytes (served by download, not catalog).
DOWNLOAD_ENDPOINTS = frozenset({"getImage", "getImageWithMD5Hash", "getSingleImage"})


def collection_name_problem(name: str) -> str | None:
    """None when ``name`` is a valid collection name, else the rule it breaks."""
    return None if COLLECTION_NAME.fullmatch(name) else COLLECTION_NAME_RULE


def service_for_path(path: str) -> str | None:
    """The service that answers ``path``, or None when no service does.

    ``/nbia-api/oauth/...`` and ``/nbia-api/logout`` → auth; ``/nbia-api/services/...`` →
    download for image endpoints, else catalog; ``/api/<service>/...`` → that service;
    ``/api/feed`` (the mirror feed) → catalog;
    ``/curate/...`` (the curators' page) → qc; ``/dicomweb/collections/...`` (STOW-RS, a
    site storing into a collection) → intake; other ``/dicomweb/...`` → catalog for QIDO-RS
    searches, download for WADO-RS retrievals.
    """
    parts = path.strip("/").split("/")
    if parts[:2] in (["nbia-api", "oauth"], ["nbia-api", "logout"]):
        return "auth"
    if parts[:2] == ["nbia-api", "services"] and len(parts) >= 3:
        return "download" if parts[-1] in DOWNLOAD_ENDPOINTS else "catalog"
    if len(parts) >= 2 and parts[0] == "api" and parts[1] in SERVICES:
        return parts[1]
    if parts[:2] == ["api", "feed"]:  # the mirror feed, kept by the catalog
        return "catalog"
    if parts[0] == "curate":  # the curators' web page
        return "qc"
    if parts[:2] == ["dicomweb", "collections"]:  # STOW-RS into a collection's quarantine
        return "intake"
    if parts[0] == "dicomweb" and len(parts) >= 2:
        # QIDO-RS searches end with a resource (studies, series, instances) → catalog;
        # WADO-RS retrievals end with a UID, metadata, frames or bulk data → download
        return "catalog" if parts[-1] in ("studies", "series", "instances") else "download"
    return None
