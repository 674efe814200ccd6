"""The public count check: the catalog's account of each series it indexed
(``series.indexed``), kept beside what qc published so that a manager sees whether the
public holds exactly what curation released (the seeds' intake-vs-public comparison)."""

from __future__ import annotations

from services.common.events import SeriesIndexed
from services.common.messaging import UnitOfWork
from services.qc.models import Series


async def series_indexed(uow: UnitOfWork, p: SeriesIndexed) -> None:
    """Record what the catalog indexed of a series; an account of an earlier publication
    than the one already recorded changes nothing."""
    series = await uow.session.get(Series, p.series_instance_uid, with_for_update=True)
    if series is None:
        return  # not published from here (a mirrored collection, say): nothing to compare
    if series.public_released_at is not None and series.public_released_at > p.released_at:
        return
    series.public_released_at = p.released_at
    series.public_instances = p.instances
    series.public_patient_id = p.patient_id
    series.public_study_instance_uid = p.study_instance_uid
