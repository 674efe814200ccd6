"""What a download client needs to fetch series file by file: where each file goes,
its size and SHA-256 to check it, and the notices every copy carries."""

from __future__ import annotations

from fastapi import APIRouter

from services.common.security import CurrentPrincipal
from services.download import queries
from services.download.api.deps import DownloadDep
from services.download.domain import notices
from services.download.schemas import FileOut, FilesIn, FilesOut, SeriesFilesOut

router = APIRouter(prefix="/api/download", tags=["download"])


@router.post("/files", response_model=FilesOut)
async def files(body: FilesIn, download: DownloadDep, principal: CurrentPrincipal) -> FilesOut:
    """The files of the series the caller may download (fetch each with getSingleImage,
    which answers byte ranges), and the series that are not available to the caller."""
    found, missing = await queries.series_files(download.db, principal, body.series)
    return FilesOut(
        series=[
            SeriesFilesOut(
                series_instance_uid=s.series_instance_uid,
                collection=s.collection,
                patient_id=s.patient_id,
                study_instance_uid=s.study_instance_uid,
                files=[
                    FileOut(
                        name=n, sop_instance_uid=i.sop_instance_uid, size=i.size, sha256=i.sha256
                    )
                    for n, i in zip(s.names, s.images, strict=True)
                ],
            )
            for s in found
        ],
        unavailable=missing,
        notices={
            s.collection: {name: data.decode() for name, data in notices(s.terms)} for s in found
        },
    )
