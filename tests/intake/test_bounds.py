"""Bounded submissions (OWASP API4): compression bombs, element bombs and oversized files
are refused (413) or held with a reason naming the limit and its setting, nothing of them
is stored, and memory stays bounded while they are refused."""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.common.events import InstanceHeld
from services.intake.models import HeldInstance, ReceivedInstance
from tests.harness import Platform, admin_headers, platform
from tests.intake import bombs
from tests.intake.helpers import SUBMIT, ct, events, mr

URL = SUBMIT.format("Demo-CT")
MiB = bombs.MiB


def headers(ctype: str) -> dict[str, str]:
    return {**admin_headers(), "Content-Type": ctype}


async def started(tmp_path: Path, **overrides: Any) -> Any:
    cm = platform(tmp_path, services=["intake"], **overrides)
    p = await cm.__aenter__()
    r = await p.client.post(
        "/api/intake/collections",
        json={"name": "Demo-CT", "licence": "CC-BY-4.0"},
        headers=admin_headers(),
    )
    assert r.status_code == 201, r.text
    return cm, p


def stored(tmp_path: Path) -> list[Path]:
    """Every object written to the quarantine zone (metadata sidecars aside)."""
    return [f for f in tmp_path.rglob("quarantine/**/*") if f.is_file() and f.suffix != ".meta"]


async def recorded(p: Platform) -> tuple[list[ReceivedInstance], list[HeldInstance]]:
    from sqlalchemy import select

    async with p.runtime.contexts["intake"].db.session() as s:
        return list(await s.scalars(select(ReceivedInstance))), list(
            await s.scalars(select(HeldInstance))
        )


async def post_measured(p: Platform, body: bytes, ctype: str) -> tuple[Any, int]:
    """The response and the peak of memory Python allocated while it was made."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        r = await p.client.post(URL, content=body, headers=headers(ctype))
        return r, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
async def test_a_2_mb_zip_of_a_2_gib_member_is_refused_before_unpacking(tmp_path: Path) -> None:
    cm, p = await started(tmp_path)
    try:
        bomb = bombs.zip_bomb(2 * bombs.GiB)
        assert len(bomb) < 3 * MiB
        r, peak = await post_measured(p, bomb, "application/zip")
        assert r.status_code == 413
        assert r.json()["detail"] == (
            "the zip entry 'zeros.dcm' is larger than the 1073741824 bytes this site accepts "
            "for one file (IMARC_INTAKE_MAX_FILE_BYTES); send smaller files or ask the site "
            "to raise the limit"
        )
        # a member under the file limit that inflates a thousandfold is a bomb too
        r, peak2 = await post_measured(p, bombs.zip_bomb(512 * MiB), "application/zip")
        assert r.status_code == 413
        assert "(IMARC_INTAKE_MAX_INFLATE_RATIO)" in r.json()["detail"]
        assert "the zip entry 'zeros.dcm' inflates to more than 100 times" in r.json()["detail"]
        assert max(peak, peak2) < 64 * MiB  # the spooled body, never the member
        assert stored(tmp_path) == []
        assert await recorded(p) == ([], [])
        assert await events(p, InstanceHeld.TYPE) == []
    finally:
        await cm.__aexit__(None, None, None)


@pytest.mark.slow
async def test_a_1_mb_deflated_dataset_of_1_gib_is_held_and_not_stored(tmp_path: Path) -> None:
    cm, p = await started(tmp_path)
    try:
        bomb = bombs.deflate_bomb(bombs.GiB)
        assert len(bomb) < 2 * MiB
        files = [("file", ("bomb.dcm", bomb, "application/dicom")), ("file", ("ct.dcm", ct()))]
        tracemalloc.start()
        try:
            r = await p.client.post(URL, files=files, headers=admin_headers())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert r.status_code == 200, r.text
        body = r.json()
        assert [a["filename"] for a in body["accepted"]] == ["ct.dcm"]
        assert body["held"] == [
            {
                "filename": "bomb.dcm",
                "reason": "the deflated dataset inflates to more than 100 times its compressed "
                "size (IMARC_INTAKE_MAX_INFLATE_RATIO), the mark of a compression bomb; send "
                "the files uncompressed or compressed less",
            }
        ]
        assert peak < 128 * MiB  # inflating stopped a little past 16 MiB
        received, held = await recorded(p)
        assert len(received) == 1
        assert [(h.filename, h.key, h.size) for h in held] == [("bomb.dcm", None, 0)]
        assert len(stored(tmp_path)) == 1  # the CT only
    finally:
        await cm.__aexit__(None, None, None)


@pytest.mark.slow
async def test_200_mb_of_zeros_after_dicm_is_held_at_the_element_cap(tmp_path: Path) -> None:
    cm, p = await started(tmp_path)
    try:
        r = await p.client.post(
            URL, content=bombs.dicm_zeros(), headers=headers("application/dicom")
        )
        assert r.status_code == 200, r.text
        [held] = r.json()["held"]
        assert held["reason"].startswith(
            "the file holds more than 1000000 data elements (IMARC_INTAKE_MAX_ELEMENTS)"
        )
        assert stored(tmp_path) == []
        assert [h.key for h in (await recorded(p))[1]] == [None]
    finally:
        await cm.__aexit__(None, None, None)


async def test_deep_sequences_and_many_elements_are_held_naming_the_cap(tmp_path: Path) -> None:
    cm, p = await started(tmp_path, intake_max_elements=5000, intake_max_sequence_depth=8)
    try:
        files = [
            ("file", ("deep.dcm", bombs.deep_sequences(9))),
            ("file", ("deep-defined.dcm", bombs.deep_sequences(9, defined=True))),
            ("file", ("many.dcm", bombs.many_elements(5000))),
            ("file", ("eight.dcm", bombs.deep_sequences(8, defined=True))),
            ("file", ("mr.dcm", mr())),
        ]
        r = await p.client.post(URL, files=files, headers=admin_headers())
        assert r.status_code == 200, r.text
        body = r.json()
        assert [a["filename"] for a in body["accepted"]] == ["eight.dcm", "mr.dcm"]
        held = {h["filename"]: h["reason"] for h in body["held"]}
        deep = (
            "the file nests sequences more than 8 deep (IMARC_INTAKE_MAX_SEQUENCE_DEPTH); "
            "check the file, or ask the site to raise the limit"
        )
        assert held == {
            "deep.dcm": deep,
            "deep-defined.dcm": deep,
            "many.dcm": "the file holds more than 5000 data elements (IMARC_INTAKE_MAX_ELEMENTS); "
            "a real DICOM header has far fewer: check the file, or ask the site to raise the limit",
        }
        assert len(stored(tmp_path)) == 2  # the accepted files only
    finally:
        await cm.__aexit__(None, None, None)


async def test_a_file_over_the_file_limit_is_refused_while_it_streams(tmp_path: Path) -> None:
    cm, p = await started(tmp_path, intake_max_file_bytes=100_000)
    try:
        sent = 0

        async def chunks(count: int, part: bytes = b"") -> AsyncIterator[bytes]:
            nonlocal sent
            yield part
            for _ in range(count):
                sent += 1
                yield bytes(50_000)

        too_large = (
            "is larger than the 100000 bytes this site accepts for one file "
            "(IMARC_INTAKE_MAX_FILE_BYTES)"
        )
        # one file, no Content-Length: refused once the third chunk arrives, not at the end
        r = await p.client.post(URL, content=chunks(40), headers=headers("application/dicom"))
        assert r.status_code == 413
        assert r.json()["detail"].startswith(f"the file {too_large}")
        assert sent < 10
        # a multipart part: Starlette bounds only the parts that are not files
        sent = 0
        head = (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.dcm"\r\n'
            b"Content-Type: application/dicom\r\n\r\n"
        )
        r = await p.client.post(
            URL, content=chunks(40, head), headers=headers("multipart/form-data; boundary=b")
        )
        assert r.status_code == 413
        assert r.json()["detail"].startswith(f"the part 'big.dcm' {too_large}")
        assert sent < 10
        # a declared length over the limit is refused before any of it is read
        r = await p.client.post(URL, content=bytes(100_001), headers=headers("application/dicom"))
        assert r.status_code == 413
        assert stored(tmp_path) == []
        assert await recorded(p) == ([], [])
    finally:
        await cm.__aexit__(None, None, None)


async def test_an_offset_past_64_bits_is_a_422_in_the_schemas_shape(tmp_path: Path) -> None:
    cm, p = await started(tmp_path)
    try:
        held = "/api/intake/collections/Demo-CT/held"
        r = await p.client.get(held, params={"offset": 2**63}, headers=admin_headers())
        assert r.status_code == 422
        assert r.json() == {
            "detail": "invalid request: query.offset: "
            "Input should be less than or equal to 1000000000"
        }
        # the shape the OpenAPI gives every 422
        schema = (await p.client.get("/openapi.json")).json()
        get = schema["paths"]["/api/intake/collections/{name}/held"]["get"]
        ref = get["responses"]["422"]["content"]["application/json"]["schema"]["$ref"]
        error = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert error["properties"]["detail"]["type"] == "string"
        r = await p.client.get(held, params={"offset": 10**9}, headers=admin_headers())
        assert (r.status_code, r.json()) == (200, [])
    finally:
        await cm.__aexit__(None, None, None)
