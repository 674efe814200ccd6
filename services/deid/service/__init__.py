"""deid's use cases: the pipeline (de-identify or hold one received instance, release a
held one), profiles, pseudonyms, the ID map and holds."""

from services.deid.service.holds import Outcome
from services.deid.service.idmap import load_id_map
from services.deid.service.pipeline import CollectionNotKnown, process_received, release
from services.deid.service.profiles import collection_updated, update_profile
from services.deid.service.pseudonyms import resolve_pseudonym
from services.deid.service.scan import Scanned, rescan

__all__ = [
    "CollectionNotKnown",
    "Outcome",
    "Scanned",
    "collection_updated",
    "load_id_map",
    "process_received",
    "release",
    "rescan",
    "resolve_pseudonym",
    "update_profile",
]
