"""The laid-out zip: readable by zipfile and Info-ZIP, ZIP64 when a limit is reached,
and every byte range equal to the same bytes of the whole archive."""

from __future__ import annotations

import io
import shutil
import subprocess
import zipfile
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.download.ziplayout import Entry, Layout

WHEN = datetime(2026, 3, 4, 5, 6, 8, tzinfo=UTC)


def render(layout: Layout[bytes], start: int, end: int) -> bytes:
    out = bytearray()
    for piece, lo, n in layout.slices(start, end):
        source = piece.data if piece.data is not None else piece.source
        assert source is not None
        out += source[lo : lo + n]
    return bytes(out)


def archive(blobs: list[bytes], zip64_at: int = 0xFFFFFFFF) -> Layout[bytes]:
    entries = [Entry[bytes].literal("LICENSE", b"licence text")]
    entries += [Entry(f"{i:08d}.dcm", len(b), zlib.crc32(b), source=b) for i, b in enumerate(blobs)]
    return Layout(entries, WHEN, zip64_at=zip64_at)


@pytest.mark.parametrize(
    "zip64_at", [0xFFFFFFFF, 64, 1], ids=["classic", "zip64-some", "zip64-all"]
)
def test_the_archive_reads_back(zip64_at: int, tmp_path: Path) -> None:
    blobs = [b"", b"x" * 10, bytes(range(256)) * 300, b"tail"]
    layout = archive(blobs, zip64_at)
    body = render(layout, 0, layout.size)
    assert len(body) == layout.size
    z = zipfile.ZipFile(io.BytesIO(body))
    assert z.testzip() is None
    assert z.namelist() == ["LICENSE", *(f"{i:08d}.dcm" for i in range(4))]
    assert [z.read(f"{i:08d}.dcm") for i in range(4)] == blobs
    assert all(i.compress_type == zipfile.ZIP_STORED for i in z.infolist())
    assert z.infolist()[1].date_time == (2026, 3, 4, 5, 6, 8)
    if shutil.which("unzip"):
        path = tmp_path / "a.zip"
        path.write_bytes(body)
        done = subprocess.run(["unzip", "-tq", str(path)], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 3000), min_size=0, max_size=6),
    cut=st.tuples(st.floats(0, 1), st.floats(0, 1)),
    zip64=st.booleans(),
)
def test_any_range_is_the_same_bytes_as_the_whole(
    sizes: list[int], cut: tuple[float, float], zip64: bool
) -> None:
    blobs = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    layout = archive(blobs, 100 if zip64 else 0xFFFFFFFF)
    whole = render(layout, 0, layout.size)
    a, b = sorted(int(c * layout.size) for c in cut)
    assert render(layout, a, b) == whole[a:b]
    # objects are never copied into the layout: only their spans are listed
    assert sum(p.length for p in layout.pieces if p.source is not None) == sum(sizes)
