"""Every error the API answers is JSON of one shape::

    {"error": {"code": "invalid_input", "message": "...", "field": "events[3].customer_id",
               "expected": "a customer id (an integer > 0)", "got": "abc"}}

``code`` is machine-readable; ``field`` names the offending input (a body path such as
``items[0].price_id``, a query or path parameter, or a header such as ``Idempotency-Key``);
``expected`` and ``got`` say what would have been accepted and what arrived.

=========================================  ======  =====================================
error                                      status  code
=========================================  ======  =====================================
no or unknown api key                      401     ``unauthenticated``
the key's role may not call the route      403     ``forbidden``
the request does not match its schema      422     ``invalid_input``
a use case refuses the input               400     ``invalid_input``, ``unknown_currency``,
                                                   ``currency_mismatch``
a referenced entity does not exist         404     ``not_found``
the entity's state does not allow it       409     ``invalid_transition``
a key or id reused for another request     409     ``idempotency_conflict``
a finalized invoice would change           409     ``invoice_immutable``
a concurrent write got there first         409     ``conflict`` (retry)
no such route / method                     404/405 ``not_found`` / ``method_not_allowed``
a body over 16 MiB                         413     ``body_too_large``
the database stayed locked, or deadlocked  503     ``busy`` (retry)
a bug                                      500     ``internal_error``
=========================================  ======  =====================================
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Sequence
from typing import Any

import psycopg
import psycopg.errors
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from billing_core.errors import (
    IdempotencyConflict,
    InvalidInput,
    InvalidTransition,
    InvoiceImmutable,
    NotFound,
    RecoupError,
)

log = logging.getLogger("billing_core.api")

MAX_GOT_LENGTH = 200


class ErrorDetail(BaseModel):
    code: str = Field(description="Machine-readable error code, such as `invalid_input` or `not_found`.")
    message: str = Field(description="What went wrong, for people.")
    field: str | None = Field(
        default=None, description="The offending input: a body path, a parameter or a header."
    )
    expected: str | None = Field(default=None, description="What would have been accepted.")
    got: Any = Field(default=None, description="What arrived (long values are cut short).")


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    """An error answered as is (authentication, authorization, malformed requests)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        expected: str | None = None,
        got: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.expected = expected
        self.got = got
        self.headers = headers


def _described(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


#: the error responses every route documents
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: _described("No api key, or one that is unknown or revoked."),
    403: _described("The api key's role may not call this route."),
    422: _described("The request does not match its schema; `field` names the culprit."),
}
#: and those routes with input or references add
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _described("The input is refused by the use case; `field`, `expected` and `got` say why."),
    404: _described("A referenced entity does not exist."),
    409: _described("The entity's state does not allow it, or a key was reused for another request."),
}
READ_RESPONSES: dict[int | str, dict[str, Any]] = {404: _described("No such entity.")}


def _clip(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > MAX_GOT_LENGTH:
            return value[:MAX_GOT_LENGTH] + "…"
        return value
    if value is None or isinstance(value, (bool, int, float)):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
            return str(value)
        return value
    return _clip(repr(value))


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    expected: str | None = None,
    got: Any = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {
        "error": {
            "code": code,
            "message": _clip(message) if len(message) > 4 * MAX_GOT_LENGTH else message,
            "field": field,
            "expected": expected,
            "got": _clip(got),
        }
    }
    # ensure_ascii: whatever arrived (an unpaired surrogate, say) can be echoed back safely
    return Response(
        json.dumps(body, ensure_ascii=True, default=str),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def status_of(error: RecoupError) -> int:
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, (InvalidTransition, IdempotencyConflict, InvoiceImmutable)):
        return 409
    if isinstance(error, InvalidInput):
        return 400
    return 500


def recoup_error_response(error: RecoupError) -> Response:
    """The answer to an error a use case raised on purpose."""
    status = status_of(error)
    if status == 500:
        log.error("unexpected billing error", exc_info=error)
        return error_response(500, "internal_error", "an internal error occurred; it has been logged")
    if isinstance(error, InvalidInput):
        return error_response(
            status, error.code, str(error), field=error.field, expected=error.expected, got=error.got
        )
    return error_response(status, error.code, str(error))


def _recoup_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, RecoupError)
    return recoup_error_response(error)


def field_path(location: Sequence[Any]) -> str:
    """``("body", "events", 3, "customer_id")`` as ``events[3].customer_id``."""
    parts = list(location)
    source = parts.pop(0) if parts and parts[0] in ("body", "query", "path", "header", "cookie") else None
    if source == "header" and parts:
        return "-".join(word.capitalize() for word in str(parts[0]).split("-"))
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or (source or "body")


_PREFIXES = ("Input should be ", "Value error, ", "Assertion failed, ")


def _validation_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    problems = error.errors()
    first: dict[str, Any] = (
        dict(problems[0]) if problems else {"loc": ("body",), "msg": "invalid request", "type": "invalid"}
    )
    kind = first.get("type", "")
    message = str(first.get("msg", "invalid input"))
    expected = message
    for prefix in _PREFIXES:
        if expected.startswith(prefix):
            expected = expected[len(prefix) :]
    got = first.get("input")
    if kind == "missing":
        expected, got = "a value (this field is required)", None
    elif kind == "extra_forbidden":
        expected = "no such field (see the schema for the accepted ones)"
    elif kind == "json_invalid":
        expected, got = "a JSON body", first.get("ctx", {}).get("error")
    field = "body" if kind == "json_invalid" else field_path(first.get("loc", ("body",)))
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return error_response(
        422, "invalid_input", f"{field}: {message}{more}", field=field, expected=expected, got=got
    )


def _api_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, ApiError)
    return error_response(
        error.status,
        error.code,
        error.message,
        field=error.field,
        expected=error.expected,
        got=error.got,
        headers=error.headers,
    )


def _http_error(_request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    codes = {
        401: "unauthenticated",
        403: "forbidden",
        404: "not_found",
        405: "method_not_allowed",
        413: "body_too_large",
        415: "unsupported_media_type",
    }
    code = codes.get(error.status_code, "http_error")
    headers = dict(error.headers) if error.headers else None
    return error_response(error.status_code, code, str(error.detail), headers=headers)


def _integrity_error(_request: Request, error: Exception) -> Response:
    # a unique key taken by a concurrent request between our check and our write
    log.info("write refused by a database constraint: %s", error)
    return error_response(409, "conflict", "a concurrent request changed the same entity; retry the request")


def _busy(request: Request, error: Exception) -> Response:
    # SQLite waited its whole busy timeout for the write lock; PostgreSQL broke a deadlock
    if isinstance(error, sqlite3.OperationalError) and "locked" not in str(error):
        return _unexpected(request, error)
    log.warning("database busy: %s", error)
    return error_response(
        503, "busy", "the database is busy with other writes; retry the request", headers={"Retry-After": "1"}
    )


def _unexpected(_request: Request, error: Exception) -> Response:
    log.error("unexpected error", exc_info=error)
    return error_response(500, "internal_error", "an internal error occurred; it has been logged")


def install(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RecoupError, _recoup_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    # the use cases' set-based writes reach the driver directly: its own errors, not SQLAlchemy's
    for integrity_error in (IntegrityError, sqlite3.IntegrityError, psycopg.IntegrityError):
        app.add_exception_handler(integrity_error, _integrity_error)
    for busy in (sqlite3.OperationalError, psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable):
        app.add_exception_handler(busy, _busy)
    app.add_exception_handler(Exception, _unexpected)
