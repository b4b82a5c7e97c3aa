"""What every route module shares: parameters, role sets, reading and answering."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

from fastapi import Path, Query
from pydantic import AfterValidator, BaseModel
from sqlalchemy import Connection
from starlette.responses import Response

from billing_core.api.auth import Caller
from billing_core.api.errors import COMMON_RESPONSES, READ_RESPONSES, WRITE_RESPONSES
from billing_core.api.idempotency import json_response
from billing_core.api.keys import Role
from billing_core.api.models import MAX_ID, Page, storable
from billing_core.errors import InvalidInput
from billing_core.queries import MAX_PAGE
from billing_core.queries import Page as RowPage

T = TypeVar("T")
P = TypeVar("P", bound=Page[Any])

# who may call what (admin may call everything; see docs/api.md)
READERS = (Role.SERVICE, Role.FINANCE, Role.ANALYST)
BILLING = (Role.SERVICE,)
FINANCE = (Role.FINANCE,)
BILLING_AND_FINANCE = (Role.SERVICE, Role.FINANCE)
CATALOG = (Role.FINANCE,)
ADMIN: tuple[Role, ...] = ()

Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description=f"Items per page, 1 to {MAX_PAGE}.")]
StartingAfter = Annotated[
    int | None,
    Query(ge=1, le=MAX_ID, description="The id of the last item of the previous page."),
]
QueryText = Annotated[str | None, Query(min_length=1, max_length=320), AfterValidator(storable)]
QueryCurrency = Annotated[str | None, Query(pattern="^[A-Z]{3}$")]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


PathId = Annotated[int, Path(ge=1, le=MAX_ID, description="An id, as returned when it was created.")]


def responses(*, write: bool = False) -> dict[int | str, dict[str, Any]]:
    return {**COMMON_RESPONSES, **(WRITE_RESPONSES if write else READ_RESPONSES)}


@contextmanager
def renamed(fields: dict[str, str]) -> Iterator[None]:
    """Errors of a use case whose argument names differ from the body's, named as in the body."""
    try:
        yield
    except InvalidInput as error:
        for old, new in fields.items():
            if error.field == old or error.field.startswith((old + ".", old + "[")):
                error.field = new + error.field[len(old) :]
                error.args = (f"{error.field}: expected {error.expected}, got {error.got!r}",)
        raise


def read(caller: Caller, fn: Callable[[Connection], T]) -> T:
    with caller.ctx.read() as conn:
        return fn(conn)


def answer(model: BaseModel) -> Response:
    return json_response(model, 200)


def page(list_model: type[P], item: type[BaseModel], rows: RowPage) -> Response:
    data = [item.model_validate(row) for row in rows.data]
    return json_response(list_model(data=data, has_more=rows.has_more), 200)
