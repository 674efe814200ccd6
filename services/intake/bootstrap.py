"""Wires the intake service: its typed dependencies, tables, migrations, routes and
consumers."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter

from services.common.events import (
    InstanceDeidentified,
    InstanceHeld,
    LicenceUpdated,
    SeriesPublished,
)
from services.common.messaging import UnitOfWork
from services.common.service import Consumer, ServiceContext, ServiceSpec
from services.intake import consumers as on
from services.intake.models import metadata

#: per-instance stage events are independent (the newest event time wins)
PER_INSTANCE_CONCURRENCY = 16


@dataclass
class Intake:
    """What intake's use cases and routes work with."""

    ctx: ServiceContext
    #: things started with the service (the DICOM listener) and stopped with it
    running: list[Any] = field(default_factory=list)

    @property
    def source(self) -> str:
        return self.ctx.source

    def uow(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """A unit of work: state changes and the events emitted commit together."""
        return self.ctx.messaging.transaction()


def build(ctx: ServiceContext) -> Intake:
    return Intake(ctx)


async def on_start(intake: Intake) -> None:
    if not intake.ctx.settings.secret.get_secret_value():
        # Instance ids and quarantine keys are keyed hashes of PatientID and UIDs: without
        # a secret they would be guessable from the PHI they stand for.
        raise RuntimeError("IMARC_SECRET is not set; intake needs it to name instances")


def consumers(intake: Intake) -> Sequence[Consumer]:
    return (
        Consumer(
            queue="intake.on_licence_updated",
            patterns=(LicenceUpdated.TYPE,),
            handler=on.on_licence_updated,
        ),
        Consumer(
            "intake.on_instance_held",
            (InstanceHeld.TYPE,),
            handler=on.on_instance_held,
            concurrency=PER_INSTANCE_CONCURRENCY,
        ),
        Consumer(
            "intake.on_instance_deidentified",
            (InstanceDeidentified.TYPE,),
            handler=on.on_instance_deidentified,
            concurrency=PER_INSTANCE_CONCURRENCY,
        ),
        Consumer(
            "intake.on_series_published", (SeriesPublished.TYPE,), handler=on.on_series_published
        ),
    )


def _upload_router(intake: Intake) -> APIRouter:
    from services.intake.api import router

    return router(intake.ctx)


def spec() -> ServiceSpec[Intake]:
    # the routes name ``Intake`` (routes/deps.py), so they are imported once it exists
    from services.intake.routes import submissions

    return ServiceSpec(
        name="intake",
        metadata=metadata,
        migrations=Path(__file__).with_name("migrations"),
        build=build,
        routers=(submissions.router,),
        router=_upload_router,
        consumers=consumers,
        on_start=on_start,
    )
