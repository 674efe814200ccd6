"""qc's use cases: the curation index kept from intake's and deid's events, a curator's
review, a submitter's approval, a manager's settings, publish and withdraw, and the tag
inventories built from the de-identified headers."""

from services.qc.service.index import instance_deidentified, instance_held, instance_received
from services.qc.service.public_check import series_indexed
from services.qc.service.publishing import publish, withdraw
from services.qc.service.review import approve, configure, review, review_many

__all__ = [
    "approve",
    "configure",
    "instance_deidentified",
    "instance_held",
    "instance_received",
    "publish",
    "review",
    "review_many",
    "series_indexed",
    "withdraw",
]
