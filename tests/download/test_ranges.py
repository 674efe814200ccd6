"""Which bytes a Range header asks for (RFC 9110 §14)."""

from __future__ import annotations

import pytest

from services.download.ranges import ByteRange, Unsatisfiable, requested_range


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("bytes=0-99", (0, 100)),
        ("bytes=100-", (100, 1000)),
        ("bytes=990-2000", (990, 1000)),
        ("bytes=-10", (990, 1000)),
        ("bytes=-5000", (0, 1000)),
        (" bytes = 5 - 9 ", (5, 10)),
    ],
)
def test_one_range(header: str, expected: tuple[int, int]) -> None:
    r = requested_range(header, 1000)
    assert r is not None and (r.start, r.end) == expected
    assert r.content_range == f"bytes {expected[0]}-{expected[1] - 1}/1000"


@pytest.mark.parametrize(
    "header", [None, "", "bytes=0-1,5-9", "items=0-1", "bytes=-", "bytes=9-3", "bytes=a-b"]
)
def test_what_is_not_one_byte_range_gets_the_whole(header: str | None) -> None:
    assert requested_range(header, 1000) is None


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_a_range_beyond_the_end_is_unsatisfiable(header: str) -> None:
    with pytest.raises(Unsatisfiable) as e:
        requested_range(header, 1000)
    assert e.value.content_range == "bytes */1000"


def test_if_range_with_another_tag_sends_the_whole() -> None:
    assert requested_range("bytes=5-", 10, if_range='"old"', etag='"new"') is None
    assert requested_range("bytes=5-", 10, if_range='"new"', etag='"new"') == ByteRange(5, 10, 10)
