"""Use case: move a dispute through its lifecycle: review, categorize, resolve or withdraw."""

from __future__ import annotations

from billing_core.context import BillingContext
from billing_core.db import repository
from billing_core.disputes import (
    DISPUTE_LIFECYCLE,
    DisputeCategory,
    DisputeEvent,
    DisputeOutcome,
    DisputeStatus,
)
from billing_core.errors import InvalidInput
from billing_core.services.open_dispute import Dispute, get_dispute


def review_dispute(ctx: BillingContext, *, dispute_id: int, category: str | None = None) -> Dispute:
    """Take a dispute into review, optionally setting its category."""
    return _move(ctx, dispute_id, DisputeEvent.REVIEW, category=category)


def categorize_dispute(ctx: BillingContext, *, dispute_id: int, category: str) -> Dispute:
    """Set or correct a dispute's category (a person or the dispute classifier)."""
    cat = _category(category)
    with ctx.transaction() as tx:
        row = repository.get_dispute_row(tx.conn, dispute_id, lock=True)
        if DisputeStatus(row["status"]) in DISPUTE_LIFECYCLE.terminal:
            raise InvalidInput("dispute.status", "open or under_review", row["status"])
        tx.bulk.execute(
            "UPDATE disputes SET category = ?, updated_at = ? WHERE id = ?",
            (cat.value, tx.bulk.instant(tx.now), dispute_id),
        )
        tx.emit(
            "dispute.categorized",
            "dispute",
            dispute_id,
            dispute_id=dispute_id,
            category=cat.value,
            previous=row["category"],
        )
        return get_dispute(tx.conn, dispute_id)


def resolve_dispute(ctx: BillingContext, *, dispute_id: int, outcome: str, note: str = "") -> Dispute:
    try:
        result = DisputeOutcome(outcome)
    except ValueError as exc:
        raise InvalidInput("outcome", "one of " + ", ".join(DisputeOutcome), outcome) from exc
    return _move(ctx, dispute_id, DisputeEvent.RESOLVE, outcome=result, note=note)


def withdraw_dispute(ctx: BillingContext, *, dispute_id: int, note: str = "") -> Dispute:
    return _move(ctx, dispute_id, DisputeEvent.WITHDRAW, note=note)


def _category(category: str) -> DisputeCategory:
    try:
        return DisputeCategory(category)
    except ValueError as exc:
        raise InvalidInput("category", "one of " + ", ".join(DisputeCategory), category) from exc


def _move(
    ctx: BillingContext,
    dispute_id: int,
    event: DisputeEvent,
    *,
    category: str | None = None,
    outcome: DisputeOutcome | None = None,
    note: str = "",
) -> Dispute:
    cat = _category(category) if category is not None else None
    with ctx.transaction() as tx:
        row = repository.get_dispute_row(tx.conn, dispute_id, lock=True)
        target = DISPUTE_LIFECYCLE.next(DisputeStatus(row["status"]), event, entity_id=dispute_id)
        now = tx.bulk.instant(tx.now)
        tx.bulk.execute(
            "UPDATE disputes SET status = ?, category = COALESCE(?, category), outcome = COALESCE(?, outcome),"
            " resolution_note = CASE WHEN ? <> '' THEN ? ELSE resolution_note END, updated_at = ?,"
            " resolved_at = CASE WHEN ? IN ('resolved', 'withdrawn') THEN ? ELSE resolved_at END WHERE id = ?",
            (
                target.value,
                cat.value if cat else None,
                outcome.value if outcome else None,
                note,
                note,
                now,
                target.value,
                now,
                dispute_id,
            ),
        )
        tx.emit(
            f"dispute.{target.value}",
            "dispute",
            dispute_id,
            dispute_id=dispute_id,
            customer_id=row["customer_id"],
            amount_minor=row["amount_minor"],
            currency=row["currency"],
            **{"from": row["status"], "to": target.value},
            category=cat.value if cat else row["category"],
            outcome=outcome.value if outcome else None,
        )
        return get_dispute(tx.conn, dispute_id)
