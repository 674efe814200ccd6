"""Tables the download service owns: its index of published series (from
``series.published``), its copy of collection access rules, and the download log."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import UTCDateTime
from services.common.messaging import messaging_tables

metadata = MetaData()

# SQLite only autoincrements an INTEGER PRIMARY KEY.
_SEQ = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = metadata


class Collection(Base):
    """Access rule and licence of a collection (from ``collection.updated``)."""

    __tablename__ = "collections"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    access: Mapped[str] = mapped_column(String(16))
    licence_id: Mapped[str] = mapped_column(String(64), default="")
    licence_name: Mapped[str] = mapped_column(Text, default="")
    licence_url: Mapped[str] = mapped_column(Text, default="")
    #: the whole announced record (citation, DOI, data usage policy for the downloads)
    record: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Series(Base):
    """A published series; ``withdrawn_at`` set means it is not served (a tombstone, so
    that a ``series.published`` delivered after its withdrawal cannot revive it)."""

    __tablename__ = "series"

    series_instance_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    collection: Mapped[str] = mapped_column(String(64), index=True)
    study_instance_uid: Mapped[str] = mapped_column(String(64), default="")
    patient_id: Mapped[str] = mapped_column(String(64), default="")
    #: searchable attributes of the series (from its published headers)
    modality: Mapped[str | None] = mapped_column(String(16), nullable=True)
    body_part: Mapped[str | None] = mapped_column(String(64), nullable=True)
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    withdrawn_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Instance(Base):
    """One published object of a series, with what getImage needs to name and check it."""

    __tablename__ = "instances"

    series_instance_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    instance_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    acquisition_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    #: CRC-32 recorded when the object was written; with it a zip entry's header is known
    crc32: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Basket(Base):
    """A list of series to download, kept under an id (no cap on its size)."""

    __tablename__ = "baskets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(128))
    series_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class BasketSeries(Base):
    __tablename__ = "basket_series"

    basket_id: Mapped[str] = mapped_column(
        String(32), ForeignKey("baskets.id", ondelete="CASCADE"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64))


class DownloadRecord(Base):
    """Who downloaded what, and how many bytes of DICOM they were sent."""

    __tablename__ = "downloads"

    id: Mapped[int] = mapped_column(_SEQ, primary_key=True, autoincrement=True)
    subject: Mapped[str] = mapped_column(String(128))
    collection: Mapped[str] = mapped_column(String(64), index=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64))
    sop_instance_uid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))
    bytes: Mapped[int] = mapped_column(BigInteger)
    complete: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


outbox, inbox = messaging_tables(metadata)
