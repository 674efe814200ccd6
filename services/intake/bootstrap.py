"""How the intake service plugs into a runtime."""

from __future__ import annotations

from pathlib import Path

from services.common.events import LicenceUpdated
from services.common.service import Consumer, ServiceContext, ServiceSpec
from services.intake.api import router
from services.intake.handlers import on_licence_updated
from services.intake.models import metadata


async def _check(ctx: ServiceContext) -> None:
    if not ctx.settings.secret.get_secret_value():
        # Instance ids and quarantine keys are keyed hashes of PatientID and UIDs: without
        # a secret they would be guessable from the PHI they stand for.
        raise RuntimeError("IMARC_SECRET is not set; intake needs it to name instances")


def consumers(ctx: ServiceContext) -> list[Consumer]:
    return [
        Consumer(
            queue="intake.on_licence_updated",
            patterns=(LicenceUpdated.TYPE,),
            handler=on_licence_updated,
        )
    ]


def spec() -> ServiceSpec:
    return ServiceSpec(
        name="intake",
        metadata=metadata,
        migrations=Path(__file__).with_name("migrations"),
        router=router,
        consumers=consumers,
        on_start=_check,
    )
