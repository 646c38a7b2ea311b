"""The base of every view, pages and free JSON (see :mod:`kinitro.protocol.views`)."""

from __future__ import annotations

from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict, JsonValue

T = TypeVar("T")

Json = dict[str, JsonValue]
"""A JSON object whose shape the view does not fix."""


class View(BaseModel):
    """Base of every public view: unknown keys are dropped, not refused."""

    model_config = ConfigDict(extra="ignore")


class Page(View, Generic[T]):
    """One page of a list: ``items``, the ``total`` count and the page's window."""

    items: list[T]
    total: int
    limit: int
    offset: int
