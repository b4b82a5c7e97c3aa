"""The billing core's exceptions: one tree, each with a machine-readable code.

Every error a caller can cause is an :class:`InvalidInput` (or a subclass) and names the field,
what was expected and what arrived, so that an API can turn it into a 4xx answer without parsing
a message::

    RecoupError
    ├── InvalidInput            field, expected, got           (400/422)
    │   ├── UnknownCurrency
    │   ├── CurrencyMismatch
    │   ├── NotFound            a referenced entity does not exist (404)
    │   ├── InvalidTransition   the entity's state does not allow the action (409)
    │   └── IdempotencyConflict a key was reused with a different payload (409)
    ├── InvoiceImmutable        a finalized invoice was about to change (409)
    └── AuditChainBroken        the audit log's hash chain does not verify

A payment decline is not an exception: it is a value (:class:`billing_core.payments.ChargeResult`).
"""

from __future__ import annotations

from typing import Any


class RecoupError(Exception):
    """Base class of every error raised on purpose by the billing core."""

    code: str = "recoup_error"

    def __reduce__(self) -> tuple[Any, ...]:
        # subclasses take keyword-only or differently named arguments: rebuild without __init__,
        # so an error raised in a helper process reaches the parent intact
        return (_rebuild, (type(self), self.args, dict(self.__dict__)))


def _rebuild(cls: type[RecoupError], args: tuple[Any, ...], state: dict[str, Any]) -> RecoupError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class InvalidInput(RecoupError, ValueError):
    """Bad input: names the field, what was expected and what arrived."""

    code = "invalid_input"

    def __init__(self, field: str, expected: str, got: Any, *, hint: str | None = None) -> None:
        self.field = field
        self.expected = expected
        self.got = got
        self.hint = hint
        message = f"{field}: expected {expected}, got {got!r}"
        if hint:
            message = f"{message} ({hint})"
        super().__init__(message)

    def to_dict(self) -> dict[str, Any]:
        """The error as JSON-ready data (the API's error body)."""
        got = self.got if isinstance(self.got, (str, int, float, bool, type(None))) else repr(self.got)
        return {
            "code": self.code,
            "field": self.field,
            "expected": self.expected,
            "got": got,
            "message": str(self),
        }


class UnknownCurrency(InvalidInput):
    code = "unknown_currency"


class CurrencyMismatch(InvalidInput):
    code = "currency_mismatch"


class NotFound(InvalidInput, LookupError):
    """A referenced entity does not exist."""

    code = "not_found"

    def __init__(self, field: str, entity: str, got: Any) -> None:
        self.entity = entity
        super().__init__(field, f"an existing {entity}", got)


class InvalidTransition(InvalidInput):
    """The entity's current state does not allow the requested action."""

    code = "invalid_transition"

    def __init__(
        self, *, entity: str, entity_id: Any, state: str, action: str, allowed_from: list[str]
    ) -> None:
        self.entity = entity
        self.entity_id = entity_id
        self.state = state
        self.action = action
        expected = "one of " + ", ".join(sorted(allowed_from)) if allowed_from else "no state"
        super().__init__(
            f"{entity}.status",
            expected,
            state,
            hint=f"cannot {action} {entity} {entity_id} while it is {state}",
        )


class IdempotencyConflict(InvalidInput):
    """An idempotency key (or event id) was reused with a different payload."""

    code = "idempotency_conflict"


class InvoiceImmutable(RecoupError):
    """A finalized invoice is never edited: correct it with a void or a credit note."""

    code = "invoice_immutable"


class AuditChainBroken(RecoupError):
    """The audit log's hash chain does not verify at ``seq``."""

    code = "audit_chain_broken"

    def __init__(self, seq: int, reason: str) -> None:
        self.seq = seq
        self.reason = reason
        super().__init__(f"audit chain broken at seq {seq}: {reason}")
