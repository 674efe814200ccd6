"""Wires deid into a runtime: tables, migrations, routes, consumers, keys."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

from services.common.events import CollectionUpdated, InstanceReceived
from services.common.service import Consumer, ServiceContext, ServiceSpec
from services.deid.api import router
from services.deid.engine import Keys
from services.deid.handlers import (
    COLLECTIONS_QUEUE,
    RECEIVED_QUEUE,
    on_collection_updated,
    on_instance_received,
)
from services.deid.models import metadata


def consumers(ctx: ServiceContext) -> Sequence[Consumer]:
    # Four deliveries per worker keep the pool busy while others wait on the database.
    workers = ctx.settings.cpu_workers()
    return (
        Consumer(
            RECEIVED_QUEUE,
            (InstanceReceived.TYPE,),
            raw=partial(on_instance_received, ctx=ctx),
            concurrency=workers * 4,
        ),
        Consumer(COLLECTIONS_QUEUE, (CollectionUpdated.TYPE,), handler=on_collection_updated),
    )


async def on_start(ctx: ServiceContext) -> None:
    # resolved once: the workers open the same store from its URL
    ctx.state["store_url"] = ctx.settings.resolved_store_url()
    secret = ctx.settings.secret.get_secret_value()
    try:
        ctx.state["keys"] = Keys(secret.encode(), ctx.settings.uid_root)
    except ValueError as e:
        raise RuntimeError(
            f"deid cannot start: {e}; set IMARC_SECRET (at least 16 characters, the same on "
            "every deid process) and IMARC_UID_ROOT"
        ) from e


def spec() -> ServiceSpec:
    return ServiceSpec(
        name="deid",
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        router=router,
        consumers=consumers,
        on_start=on_start,
        cpu_workers=True,
    )
