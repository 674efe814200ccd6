"""The access matrix, across all services: role × collection access × endpoint.

One embedded platform with every service and real tokens from the auth service.
Two published collections: ``Mx-Public`` (CC-BY-4.0, public) and ``Mx-Limited``
(TCIA-Restricted, limited). "submitter" and "manager" hold that role on the collection
of the column (each column has its own account); "curator" is a global curator;
"licensed" is a user who accepted the data usage policy and holds an approved
TCIA-Restricted licence. A third limited collection under the same licence, ``Mx-Other``,
has a manager ("other-manager") who approved TCIA-Restricted for itself and for a user
("other-licensed"): both approvals cover Mx-Other only, so both meet what a plain user meets.

Outcomes: ``ok`` (allowed, and it worked), ``401``/``403`` (refused), ``hidden`` (the
collection is not listed / NBIA's 400 "not found or not authorized", telling nothing).
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import pytest
import pytest_asyncio

from imarc.synth import SeriesSpec, ct_series
from tests.harness import Platform, platform

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

COLLECTIONS = {"public": "Mx-Public", "limited": "Mx-Limited"}
LICENCE = {"public": "CC-BY-4.0", "limited": "TCIA-Restricted"}
SITE = "site-1"
PERSONAS = (
    "anonymous",
    "user",
    "licensed",
    "submitter",
    "curator",
    "manager",
    "admin",
    "other-manager",
    "other-licensed",
)
#: limited, under the same licence as Mx-Limited, with a manager of its own
OTHER = "Mx-Other"

# endpoint → persona → (outcome on the public collection, on the limited one)
EXPECTED: dict[str, dict[str, tuple[str, str]]] = {
    "intake submit": {
        "anonymous": ("401", "401"),
        "user": ("403", "403"),
        "licensed": ("403", "403"),
        "submitter": ("ok", "ok"),
        "curator": ("403", "403"),
        "manager": ("ok", "ok"),
        "admin": ("ok", "ok"),
    },
    "qc status": {
        "anonymous": ("401", "401"),
        "user": ("403", "403"),
        "licensed": ("403", "403"),
        "submitter": ("ok", "ok"),
        "curator": ("ok", "ok"),
        "manager": ("ok", "ok"),
        "admin": ("ok", "ok"),
    },
    "qc publish": {
        "anonymous": ("401", "401"),
        "user": ("403", "403"),
        "licensed": ("403", "403"),
        "submitter": ("403", "403"),
        "curator": ("403", "403"),
        "manager": ("ok", "ok"),
        "admin": ("ok", "ok"),
    },
    "catalog getCollectionValues": {
        "anonymous": ("ok", "hidden"),
        "user": ("ok", "hidden"),
        "licensed": ("ok", "ok"),
        "submitter": ("ok", "hidden"),
        "curator": ("ok", "ok"),
        "manager": ("ok", "ok"),
        "admin": ("ok", "ok"),
    },
    "catalog getSeries": {
        "anonymous": ("ok", "hidden"),
        "user": ("ok", "hidden"),
        "licensed": ("ok", "ok"),
        "submitter": ("ok", "hidden"),
        "curator": ("ok", "ok"),
        "manager": ("ok", "ok"),
        "admin": ("ok", "ok"),
    },
    "download getImage": {
        "anonymous": ("ok", "hidden"),
        "user": ("ok", "hidden"),
        "licensed": ("ok", "ok"),
        "submitter": ("ok", "hidden"),
        "curator": ("ok", "ok"),
        "manager": ("ok", "ok"),
        "admin": ("ok", "ok"),
    },
    "auth admin (list users)": {
        p: ("401", "401") if p == "anonymous" else ("ok", "ok") if p == "admin" else ("403", "403")
        for p in PERSONAS
    },
    "auth admin (audit log)": {
        p: ("401", "401") if p == "anonymous" else ("ok", "ok") if p == "admin" else ("403", "403")
        for p in PERSONAS
    },
}

# A licence approved by the manager of another collection under it covers that collection
# only: these two meet what a plain user meets, everywhere.
for _want in EXPECTED.values():
    _want["other-manager"] = _want["other-licensed"] = _want["user"]


@dataclass
class World:
    p: Platform
    # (persona, access) → headers
    headers: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    series: dict[str, str] = field(default_factory=dict)  # access → a published series UID
    probe: dict[str, bytes] = field(default_factory=dict)  # access → a file to submit


async def _token(client: httpx.AsyncClient, username: str, password: str) -> dict[str, str]:
    r = await client.post(
        "/nbia-api/oauth/token",
        data={"grant_type": "password", "username": username, "password": password},
    )
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _synthetic(patient: str) -> bytes:
    spec = SeriesSpec(
        patient_id=patient,
        patient_name="MATRIX^PROBE",
        slices=1,
        rows=32,
        columns=32,
        series_key=f"probe-{patient}",
    )
    return next(iter(ct_series(spec)))


async def _until(p: Platform, check: Callable[[], Awaitable[bool]], what: str) -> None:
    await p.wait_until(check, timeout=90, what=what)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with platform(tmp_path_factory.mktemp("matrix")) as p:
        c = p.client
        admin = await _token(
            c, p.settings.admin_username, p.settings.admin_password.get_secret_value()
        )
        w = World(p)
        for access, name in COLLECTIONS.items():
            r = await c.post(
                "/api/intake/collections",
                headers=admin,
                json={
                    "name": name,
                    "licence": LICENCE[access],
                    "access": access,
                    "description": f"access matrix, {access}",
                },
            )
            assert r.status_code == 201, r.text
            # one file per collection: the same instance in two collections is another
            # question (see the report), not this test's
            seed = _synthetic(f"MX-{access}-seed")
            r = await c.post(
                f"/api/intake/collections/{name}/instances",
                params={"site": SITE},
                headers=admin,
                files=[("file", ("seed.dcm", seed, "application/dicom"))],
            )
            assert r.status_code == 200 and r.json()["accepted_count"] == 1, r.text
            w.probe[access] = _synthetic(f"MX-{access}")

        for access, name in COLLECTIONS.items():

            async def deidentified(name: str = name) -> bool:
                r = await c.get(f"/api/qc/collections/{name}/status", headers=admin)
                return r.status_code == 200 and r.json().get("awaiting_review", 0) >= 1

            await _until(p, deidentified, f"{name} to reach review")
            r = await c.post(
                f"/api/qc/collections/{name}/publish", headers=admin, json={"series": []}
            )
            assert r.status_code == 200, r.text
            w.series[access] = r.json()["published"][0]

            async def downloadable(access: str = access) -> bool:
                r = await c.get(
                    "/nbia-api/services/v4/getImage",
                    headers=admin,
                    params={"SeriesInstanceUID": w.series[access]},
                )
                return r.status_code == 200

            await _until(p, downloadable, f"{name} to be downloadable")

        # the people
        accounts = [
            "plain",
            "licensed",
            "curator",
            *(f"{r}-{a}" for r in ("submitter", "manager") for a in COLLECTIONS),
        ]
        for who in accounts:
            r = await c.post(
                "/api/auth/users", json={"username": who, "password": f"{who}-password-1"}
            )
            assert r.status_code == 201, r.text
        grants = [("curator", {"role": "curator"})]
        for access, name in COLLECTIONS.items():
            grants.append(
                (f"submitter-{access}", {"role": "submitter", "collection": name, "site": SITE})
            )
            grants.append((f"manager-{access}", {"role": "manager", "collection": name}))
        for who, body in grants:
            r = await c.post(f"/api/auth/users/{who}/roles", headers=admin, json=body)
            assert r.status_code == 201, r.text
        licensed = await _token(c, "licensed", "licensed-password-1")
        assert (await c.post("/api/auth/me/accept-policy", headers=licensed)).is_success
        assert (await c.post("/api/auth/me/licences/TCIA-Restricted", headers=licensed)).is_success
        r = await c.post("/api/auth/users/licensed/licences/TCIA-Restricted/approve", headers=admin)
        assert r.status_code == 200, r.text

        # the other limited collection, its manager, and the licence that manager approves
        r = await c.post(
            "/api/intake/collections",
            headers=admin,
            json={"name": OTHER, "licence": LICENCE["limited"], "access": "limited"},
        )
        assert r.status_code == 201, r.text
        for who in ("other-manager", "other-licensed"):
            r = await c.post(
                "/api/auth/users", json={"username": who, "password": f"{who}-password-1"}
            )
            assert r.status_code == 201, r.text
        r = await c.post(
            "/api/auth/users/other-manager/roles",
            headers=admin,
            json={"role": "manager", "collection": OTHER},
        )
        assert r.status_code == 201, r.text
        other_manager = await _token(c, "other-manager", "other-manager-password-1")

        async def approved(who: str) -> bool:
            # auth learns Mx-Other's licence from intake's collection.updated
            r = await c.post(
                f"/api/auth/users/{who}/licences/TCIA-Restricted/approve", headers=other_manager
            )
            return r.status_code == 200

        for who in ("other-manager", "other-licensed"):
            h = await _token(c, who, f"{who}-password-1")
            assert (await c.post("/api/auth/me/accept-policy", headers=h)).is_success
            await _until(p, lambda who=who: approved(who), f"{who}'s approval of {OTHER}")

        for access in COLLECTIONS:
            w.headers["anonymous", access] = {}
            w.headers["admin", access] = admin
            for persona, who in (
                ("user", "plain"),
                ("licensed", "licensed"),
                ("curator", "curator"),
                ("submitter", f"submitter-{access}"),
                ("manager", f"manager-{access}"),
                ("other-manager", "other-manager"),
                ("other-licensed", "other-licensed"),
            ):
                w.headers[persona, access] = await _token(c, who, f"{who}-password-1")
        yield w


async def observe(w: World, endpoint: str, persona: str, access: str) -> str:
    """What the persona meets at the endpoint, as one of the outcome words."""
    c, h, name = w.p.client, w.headers[persona, access], COLLECTIONS[access]
    if endpoint == "intake submit":
        r = await c.post(
            f"/api/intake/collections/{name}/instances",
            params={"site": SITE},
            headers=h,
            files=[("file", ("probe.dcm", w.probe[access], "application/dicom"))],
        )
        ok = r.status_code == 200 and r.json()["accepted_count"] == 1
    elif endpoint == "qc status":
        r = await c.get(f"/api/qc/collections/{name}/status", headers=h)
        ok = r.status_code == 200 and r.json().get("published", 0) >= 1
    elif endpoint == "qc publish":
        # A series that is not in curation: allowed callers learn that (404); the others
        # are refused before the question is asked.
        r = await c.post(
            f"/api/qc/collections/{name}/publish", headers=h, json={"series": ["2.25.1"]}
        )
        ok = r.status_code == 404 and "not in curation" in r.text
    elif endpoint == "catalog getCollectionValues":
        r = await c.get("/nbia-api/services/v4/getCollectionValues", headers=h)
        if r.status_code == 200:
            names = {x["Collection"] for x in r.json()} if r.content.strip() else set()
            return "ok" if name in names else "hidden"
        ok = False
    elif endpoint == "catalog getSeries":
        r = await c.get("/nbia-api/services/v4/getSeries", params={"Collection": name}, headers=h)
        if r.status_code == 200:
            rows = r.json() if r.content.strip() else []
            return "ok" if any(x["Collection"] == name for x in rows) else "hidden"
        ok = False
    elif endpoint == "download getImage":
        r = await c.get(
            "/nbia-api/services/v4/getImage",
            headers=h,
            params={"SeriesInstanceUID": w.series[access]},
        )
        if r.status_code == 400:
            return "hidden"
        ok = r.status_code == 200 and "LICENSE" in zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    elif endpoint.startswith("auth admin"):
        path = "/api/auth/users" if "users" in endpoint else "/api/auth/audit"
        r = await c.get(path, headers=h)
        ok = r.status_code == 200
    else:  # pragma: no cover
        raise AssertionError(endpoint)
    if ok:
        return "ok"
    if r.status_code in (401, 403):
        return str(r.status_code)
    return f"unexpected {r.status_code}: {r.text[:200]}"


CASES = [
    pytest.param(endpoint, persona, access, want[persona][i], id=f"{endpoint}|{persona}|{access}")
    for endpoint, want in EXPECTED.items()
    for persona in PERSONAS
    for i, access in enumerate(COLLECTIONS)
]


@pytest.mark.parametrize(("endpoint", "persona", "access", "expected"), CASES)
async def test_access_matrix(
    world: World, endpoint: str, persona: str, access: str, expected: str
) -> None:
    assert await observe(world, endpoint, persona, access) == expected
