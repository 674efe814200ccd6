"""A rendered frame over HTTP, the same for every service that shows images to reviewers:
the query that asks for one (frame, format, window) and the response that carries it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import Depends, Query
from fastapi.responses import Response

from services.common.imaging.render import Format, Rendered

#: the OpenAPI description of a route answering with a rendered frame
IMAGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}, "image/webp": {}}}
}


@dataclass(frozen=True)
class FrameQuery:
    frame: int
    format: Format
    #: (center, width), or None for the header's own window
    window: tuple[float, float] | None


def _frame_query(
    frame: Annotated[int, Query(ge=0, le=100_000)] = 0,
    format: Literal["png", "webp"] = "png",
    center: float | None = None,
    width: Annotated[float | None, Query(gt=0)] = None,
) -> FrameQuery:
    window = (center, width) if center is not None and width is not None else None
    return FrameQuery(frame, format, window)


#: a route's parameters ``frame``, ``format``, ``center`` and ``width``
FrameParams = Annotated[FrameQuery, Depends(_frame_query)]


def image_response(out: Rendered, cache_control: str) -> Response:
    """The frame, with why it is a placeholder (if it is one) in ``X-Imarc-Placeholder``."""
    headers = {"Cache-Control": cache_control}
    if out.placeholder:
        headers["X-Imarc-Placeholder"] = out.placeholder[:200]
    return Response(out.data, media_type=out.media_type, headers=headers)
