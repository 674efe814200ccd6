"""Wires the download service: tables, migrations, routes and consumers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from services.common.events import CollectionUpdated, SeriesPublished, SeriesWithdrawn
from services.common.service import Consumer, ServiceContext, ServiceSpec
from services.download import api, handlers
from services.download.models import metadata


def consumers(ctx: ServiceContext) -> Sequence[Consumer]:
    return (
        Consumer(
            "download.on_collection_updated",
            (CollectionUpdated.TYPE,),
            handler=handlers.on_collection_updated,
        ),
        Consumer(
            "download.on_series_published",
            (SeriesPublished.TYPE,),
            handler=handlers.on_series_published,
        ),
        Consumer(
            "download.on_series_withdrawn",
            (SeriesWithdrawn.TYPE,),
            handler=handlers.on_series_withdrawn,
        ),
    )


def spec() -> ServiceSpec:
    return ServiceSpec(
        name="download",
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        router=api.router,
        consumers=consumers,
    )
