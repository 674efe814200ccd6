"""Wires the intake service: its typed dependencies, tables, migrations, routes and
consumers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.common.db import Database
from services.common.events import (
    InstanceDeidentified,
    InstanceHeld,
    LicenceUpdated,
    SeriesPublished,
)
from services.common.messaging import UnitOfWork
from services.common.service import Consumer, ServiceContext, ServiceSpec
from services.common.settings import Settings
from services.common.store import ObjectStore
from services.intake import consumers as on
from services.intake.models import metadata

log = logging.getLogger("imarc.intake")

#: per-instance stage events are independent (the newest event time wins)
PER_INSTANCE_CONCURRENCY = 16


@dataclass
class Intake:
    """What intake's use cases and routes work with."""

    ctx: ServiceContext
    #: things started with the service (the DICOM listener) and stopped with it
    running: list[Any] = field(default_factory=list)
    #: where the DICOM listener listens (0: not running)
    dicom_port: int = 0

    @property
    def source(self) -> str:
        return self.ctx.source

    @property
    def db(self) -> Database:
        return self.ctx.db

    @property
    def store(self) -> ObjectStore:
        return self.ctx.store

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    def uow(self) -> AbstractAsyncContextManager[UnitOfWork]:
        """A unit of work: state changes and the events emitted commit together."""
        return self.ctx.messaging.transaction()


def build(ctx: ServiceContext) -> Intake:
    return Intake(ctx)


async def on_start(intake: Intake) -> None:
    settings = intake.ctx.settings
    if not settings.secret.get_secret_value():
        # Instance ids and quarantine keys are keyed hashes of PatientID and UIDs: without
        # a secret they would be guessable from the PHI they stand for.
        raise RuntimeError("IMARC_SECRET is not set; intake needs it to name instances")
    if settings.dicom_enabled and settings.site_role == "primary":
        from services.intake.scp import StoreScp

        scp = StoreScp(intake.ctx, asyncio.get_running_loop())
        try:
            intake.dicom_port = scp.start(settings.host, settings.dicom_port)
        except OSError as e:
            log.error(
                "the DICOM listener cannot listen on port %d (%s); set IMARC_DICOM_PORT to a "
                "free port", settings.dicom_port, e,
            )  # fmt: skip
            return
        intake.running.append(scp)


async def on_stop(intake: Intake) -> None:
    for running in intake.running:
        await asyncio.to_thread(running.stop)
    intake.running.clear()


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


def spec() -> ServiceSpec[Intake]:
    # the routes name ``Intake`` (api/deps.py), so they are imported once it exists
    from services.intake.api import collections, instances, quarantine, sites, stow, submissions

    return ServiceSpec(
        name="intake",
        metadata=metadata,
        migrations=Path(__file__).with_name("migrations"),
        build=build,
        routers=(
            collections.router,
            instances.router,
            submissions.router,
            quarantine.router,
            sites.router,
            stow.router,
        ),
        consumers=consumers,
        on_start=on_start,
        on_stop=on_stop,
    )
