"""Hostile uploads to intake: truncations, bit flips, huge lengths, deep nesting, zip and
deflate bombs. Every answer is a 200 (accepted or held with a reason) or a 4xx naming what
is wrong; none is a 5xx, and nothing past a limit is stored."""

from __future__ import annotations

import random
import struct
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.bounds import Limits
from services.intake import domain
from tests.harness import admin_headers, platform
from tests.intake import bombs
from tests.intake.helpers import SUBMIT, ct, mr, sample, zipped

pytestmark = pytest.mark.fuzz

SEEDS = [ct(), mr(), sample("JPEG2000.dcm"), sample("rtplan.dcm"), sample("image_dfl.dcm")]
SMALL = Limits(file_bytes=4 * bombs.MiB, elements=20_000, depth=8)


def _huge_length(data: bytes, rng: random.Random) -> bytes:
    """A 32-bit length somewhere after the meta set to 0xFFFFFFF0 or 0xFFFFFFFF."""
    pos = rng.randrange(140, len(data) - 4)
    return data[:pos] + struct.pack("<L", rng.choice([0xFFFFFFF0, 0xFFFFFFFF])) + data[pos + 4 :]


def mutate(data: bytes, rng: random.Random) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:  # truncation
        return data[: rng.randrange(len(data))]
    if kind == 1:  # bit flips
        out = bytearray(data)
        for _ in range(rng.randrange(1, 20)):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        return bytes(out)
    if kind == 2:
        return _huge_length(data, rng)
    return data + bytes(rng.randrange(1, 64))  # trailing junk


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(seed=st.sampled_from(range(len(SEEDS))), salt=st.integers(0, 2**32))
def test_inspect_never_raises_on_damaged_files(seed: int, salt: int) -> None:
    data = mutate(SEEDS[seed], random.Random(salt))
    verdict = domain.inspect(data, SMALL)
    assert isinstance(verdict, domain.Accepted | domain.Held)


@settings(max_examples=30, deadline=None, database=None, derandomize=True)
@given(depth=st.integers(1, 400), defined=st.booleans())
def test_nesting_is_refused_past_the_cap_and_never_overflows_the_stack(
    depth: int, defined: bool
) -> None:
    verdict = domain.inspect(bombs.deep_sequences(depth, defined=defined), SMALL)
    if depth > SMALL.depth:
        assert verdict == domain.Held("limit", verdict.reason)
        assert "IMARC_INTAKE_MAX_SEQUENCE_DEPTH" in verdict.reason
    else:
        assert isinstance(verdict, domain.Accepted)


async def test_hostile_uploads_answer_without_5xx_and_store_nothing_past_a_limit(
    tmp_path: Path,
) -> None:
    rng = random.Random(9)
    damaged = [mutate(SEEDS[i % len(SEEDS)], rng) for i in range(40)]
    hostile = [
        ("zip bomb", "application/zip", bombs.zip_bomb(64 * bombs.MiB)),
        ("deflate bomb", "application/dicom", bombs.deflate_bomb(256 * bombs.MiB)),
        ("zeros", "application/dicom", bombs.dicm_zeros(8 * bombs.MiB)),
        ("deep", "application/dicom", bombs.deep_sequences(300)),
        ("many", "application/dicom", bombs.many_elements(30_000)),
        (
            "zip of damaged",
            "application/zip",
            zipped({f"{i}.dcm": d for i, d in enumerate(damaged)}),
        ),
        ("not a zip", "application/zip", ct()),
        ("truncated zip", "application/zip", zipped({"a.dcm": ct()})[:-30]),
        *[(f"damaged {i}", "application/dicom", d) for i, d in enumerate(damaged) if d],
    ]
    overrides = {"intake_max_file_bytes": 4 * bombs.MiB, "intake_max_elements": 20_000}
    async with platform(tmp_path, services=["intake"], **overrides) as p:
        r = await p.client.post(
            "/api/intake/collections",
            json={"name": "Demo-CT", "licence": "CC-BY-4.0"},
            headers=admin_headers(),
        )
        assert r.status_code == 201
        url = SUBMIT.format("Demo-CT")
        tracemalloc.start()
        try:
            for name, ctype, body in hostile:
                tracemalloc.reset_peak()
                r = await p.client.post(
                    url, content=body, headers={**admin_headers(), "Content-Type": ctype}
                )
                assert r.status_code in (200, 400, 413), (name, r.status_code, r.text)
                if r.status_code != 200:
                    assert r.json()["detail"], name
                peak = tracemalloc.get_traced_memory()[1]
                assert peak < 64 * bombs.MiB, (name, peak)  # generous: the caps are 4 MiB
        finally:
            tracemalloc.stop()
        limited = [
            f
            for f in tmp_path.rglob("quarantine/**/*")
            if f.is_file() and f.suffix != ".meta" and f.stat().st_size > 4 * bombs.MiB
        ]
        assert limited == []
