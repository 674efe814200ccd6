"""How the catalog plugs into a runtime: tables, migrations, routes and consumers."""

from __future__ import annotations

from pathlib import Path

from services.catalog import api, handlers
from services.catalog.models import metadata
from services.common.events import CollectionUpdated, SeriesPublished, SeriesWithdrawn
from services.common.service import Consumer, ServiceContext, ServiceSpec


def consumers(_: ServiceContext) -> list[Consumer]:
    return [
        Consumer(
            "catalog.on_series_published",
            (SeriesPublished.TYPE,),
            handler=handlers.on_series_published,
        ),
        Consumer(
            "catalog.on_series_withdrawn",
            (SeriesWithdrawn.TYPE,),
            handler=handlers.on_series_withdrawn,
        ),
        Consumer(
            "catalog.on_collection_updated",
            (CollectionUpdated.TYPE,),
            handler=handlers.on_collection_updated,
        ),
    ]


def spec() -> ServiceSpec:
    return ServiceSpec(
        name="catalog",
        metadata=metadata,
        migrations=Path(__file__).parent / "migrations",
        router=api.router,
        consumers=consumers,
    )
