"""NBIA's value lists of the search form (modalities, body parts, manufacturers), each
alone or with the number of patients having it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog.api.nbia import nbia_get
from services.catalog.queries import nbia as queries
from services.catalog.queries.access import Visible
from services.catalog.queries.nbia import Row

router = APIRouter()
COUNT_COLS = ("Count", "Authorized")


@nbia_get(router, "getModalityValues", "Collection", "BodyPartExamined", columns=("Modality",))
async def modalities(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
    return await queries.distinct_values(conn, vis, a, "modality", "Modality")


@nbia_get(router, "getBodyPartValues", "Collection", "Modality", columns=("BodyPartExamined",))
async def body_parts(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
    return await queries.distinct_values(conn, vis, a, "body_part_examined", "BodyPartExamined")


@nbia_get(
    router, "getManufacturerValues", "Collection", "Modality", "BodyPartExamined",
    columns=("Manufacturer",),
)  # fmt: skip
async def manufacturers(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
    return await queries.distinct_values(conn, vis, a, "manufacturer", "Manufacturer")


# NBIA refuses a format parameter on this one endpoint
@nbia_get(
    router, "getModalityValuesAndCounts", "Collection", "BodyPartExamined",
    columns=("Modality", *COUNT_COLS), accepts_format=False,
)  # fmt: skip
async def modality_counts(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
    return await queries.value_counts(conn, vis, a, "modality", "Modality")


@nbia_get(
    router, "getBodyPartValuesAndCounts", "Collection", "Modality",
    columns=("BodyPart", *COUNT_COLS),
)  # fmt: skip
async def body_part_counts(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
    """Body parts upper-cased, so "chest" and "CHEST" count together."""
    return await queries.value_counts(conn, vis, a, "body_part_examined", "BodyPart", upper=True)


@nbia_get(
    router, "getManufacturerValuesAndCounts", "Collection", "Modality", "BodyPartExamined",
    columns=("Manufacturer", *COUNT_COLS),
)  # fmt: skip
async def manufacturer_counts(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
    return await queries.value_counts(conn, vis, a, "manufacturer", "Manufacturer")
