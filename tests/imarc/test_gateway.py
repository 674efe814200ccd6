"""The gateway routes each public path to the service that answers it."""

from __future__ import annotations

import pytest

from services.common.contracts import service_for_path


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("/nbia-api/services/v4/getSeries", "catalog"),
        ("/nbia-api/services/v4/getCollectionValues", "catalog"),
        ("/nbia-api/services/v1/getContentsByName", "catalog"),
        ("/nbia-api/services/v4/getImage", "download"),
        ("/nbia-api/services/v4/getSingleImage", "download"),
        ("/nbia-api/services/v4/getImageWithMD5Hash", "download"),
        ("/nbia-api/oauth/token", "auth"),
        ("/nbia-api/logout", "auth"),
        ("/api/intake/collections", "intake"),
        ("/api/deid/collections/X/profile", "deid"),
        ("/api/qc/collections/X/status", "qc"),
        ("/api/auth/.well-known/jwks.json", "auth"),
        ("/api/nope/x", None),
        ("/etc/passwd", None),
    ],
)
def test_routes(path: str, service: str | None) -> None:
    assert service_for_path(path) == service
