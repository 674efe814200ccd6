"""DICOM to submit and ways to look at what intake recorded."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from sqlalchemy import select

from services.common.events import Event
from services.intake.models import outbox
from tests.harness import (
    Platform,
    admin_headers,
    auth_header,
    make_settings,
    mint,
    runtime_app,
    serving,
)

SUBMIT = "/api/intake/collections/{}/instances"


def sample(name: str) -> bytes:
    path = get_testdata_file(name)
    assert path is not None, name
    with open(path, "rb") as f:
        return f.read()


def ct() -> bytes:
    return sample("CT_small.dcm")


def mr() -> bytes:
    return sample("MR_small.dcm")


def encode(ds: Dataset) -> bytes:
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def ct_dataset() -> Dataset:
    return pydicom.dcmread(io.BytesIO(ct()))


def without(keyword: str) -> bytes:
    """CT_small without one attribute."""
    ds = ct_dataset()
    delattr(ds, keyword)
    return encode(ds)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zipped(entries: dict[str, bytes], *, dirs: tuple[str, ...] = ()) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for d in dirs:
            zf.writestr(zipfile.ZipInfo(d), b"")
        for name, data in entries.items():
            zf.writestr(name, data)
    return out.getvalue()


def submitter(collection: str = "Demo-CT", **claims: Any) -> dict[str, str]:
    return auth_header(mint("site-user", coll={collection: ["submitter"]}, **claims))


async def events(p: Platform, kind: str | None = None) -> list[Event]:
    """Events intake staged in its outbox, oldest first."""
    db = p.runtime.contexts["intake"].db
    async with db.session() as s:
        bodies = (await s.execute(select(outbox.c.body).order_by(outbox.c.seq))).scalars().all()
    found = [Event.model_validate(b) for b in bodies]
    return [e for e in found if kind is None or e.type == kind]


@contextmanager
def served_pipeline(data_dir: Path, collections: Mapping[str, bool]) -> Iterator[str]:
    """Intake, de-id and qc served on a real socket, with these collections (name →
    require_id_map); yields the base URL."""
    settings = make_settings(data_dir)
    with serving(runtime_app(settings, ["intake", "deid", "qc"])[1]) as url:
        for name, id_map in collections.items():
            r = httpx.post(
                f"{url}/api/intake/collections",
                json={"name": name, "licence": "CC-BY-4.0", "require_id_map": id_map},
                headers=admin_headers(),
            )
            assert r.status_code == 201, r.text
        yield url


def related(parts: list[bytes], boundary: str = "b0undary") -> tuple[bytes, str]:
    """A STOW-RS body of these PS3.10 files, and its Content-Type."""
    body = b"".join(
        b"\r\n--" + boundary.encode() + b"\r\nContent-Type: application/dicom\r\n\r\n" + p
        for p in parts
    )
    body += b"\r\n--" + boundary.encode() + b"--"
    return body, f'multipart/related; type="application/dicom"; boundary="{boundary}"'
