"""One page of a query's results."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import peewee

from esl_callback.web.inputs import PageRequest


@dataclass(frozen=True)
class Page:
    items: list[Any]
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max((self.total + self.per_page - 1) // self.per_page, 1)

    def as_json(self, describe: Callable[[Any], Any] = lambda item: item) -> dict[str, Any]:
        return {
            "items": [describe(item) for item in self.items],
            "page": self.page,
            "per_page": self.per_page,
            "total": self.total,
            "pages": self.pages,
        }


def paginate(query: peewee.Select, wanted: PageRequest) -> Page:
    """The `wanted` page of `query` (which must be ordered), with the total count."""
    total = query.count()
    items = list(query.paginate(wanted.page, wanted.per_page))
    return Page(items, wanted.page, wanted.per_page, total)
