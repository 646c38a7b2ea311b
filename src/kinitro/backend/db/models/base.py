"""The declarative base every backend table derives from: the naming convention of
constraints (so migrations name them the same way) and the column types behind the
annotations (``Json`` is JSONB, ``int`` BIGINT, ``datetime`` with a time zone)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, MetaData, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Json = dict[str, Any]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        datetime: DateTime(timezone=True),
        Json: JSONB,
        list[Any]: JSONB,
        int: BigInteger,
        str: Text,
    }


def now() -> Any:
    """A column the database fills with the time of the insert."""
    return mapped_column(server_default=func.now())
