"""deid's use cases: the pipeline (de-identify or hold one received instance, release a
held one), profiles, pseudonyms, the ID map and holds."""

from services.deid.service.holds import Outcome
from services.deid.service.idmap import load_id_map
from services.deid.service.pipeline import CollectionNotKnown, process_received, release
from services.deid.service.profiles import collection_updated, update_profile
from services.deid.service.pseudonyms import resolve_pseudonym
from services.deid.service.scan import latest_run, stalled, start_rescan

__all__ = [
    "CollectionNotKnown",
    "Outcome",
    "collection_updated",
    "latest_run",
    "load_id_map",
    "process_received",
    "release",
    "resolve_pseudonym",
    "stalled",
    "start_rescan",
    "update_profile",
]
