"""Patients and their studies, as NBIA lists them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.ext.asyncio import AsyncConnection

from services.catalog.api.nbia import nbia_get
from services.catalog.domain.nbia import PATIENT_COLS, PATIENT_ID_COLS, STUDY_COLS
from services.catalog.queries import nbia as queries
from services.catalog.queries.access import Visible
from services.catalog.queries.nbia import Row

router = APIRouter()
SINCE_REQUIRED = ("Collection", "fromDate")


@nbia_get(router, "getPatient", "Collection", "PatientId", columns=PATIENT_COLS)
async def patients(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
    return await queries.patients_(conn, vis, a)


@nbia_get(
    router, "getPatientByCollectionAndModality", "Collection", "Modality", columns=PATIENT_ID_COLS
)
async def patients_by_modality(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
    return await queries.patient_ids_by_modality(conn, vis, a)


@nbia_get(
    router, "NewPatientsInCollection", "Collection", "fromDate",
    columns=PATIENT_COLS, required=SINCE_REQUIRED, dates=("fromDate",),
)  # fmt: skip
async def new_patients(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
    """Patients with a series released on or after ``fromDate``."""
    return await queries.patients_(conn, vis, a, released_since=a["fromDate"])


@nbia_get(
    router, "getPatientStudy", "Collection", "PatientID", "StudyInstanceUID", columns=STUDY_COLS
)
async def studies(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
    return await queries.studies_(conn, vis, a)


@nbia_get(
    router, "NewStudiesInPatientCollection", "Collection", "PatientID", "fromDate",
    columns=STUDY_COLS, required=SINCE_REQUIRED, dates=("fromDate",),
)  # fmt: skip
async def new_studies(conn: AsyncConnection, vis: Visible, a: dict[str, Any]) -> list[Row]:
    """Studies with a series released on or after ``fromDate``."""
    return await queries.studies_(conn, vis, a, released_since=a["fromDate"])
