"""Code run in child processes by the concurrency tests (importable under the spawn start method)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def billing_run(url: str, as_of_iso: str, barrier: Any, chunk_size: int, results: Any) -> None:
    from billing_core.clock import FrozenClock
    from billing_core.context import BillingContext
    from billing_core.db.engine import create_engine
    from billing_core.payments import SimulatedGateway
    from billing_core.services.billing_run import run_billing

    as_of = datetime.fromisoformat(as_of_iso)
    engine = create_engine(url)
    ctx = BillingContext(engine, clock=FrozenClock(as_of), gateway=SimulatedGateway(7))
    barrier.wait(timeout=60)
    result = run_billing(ctx, as_of=as_of, chunk_size=chunk_size)
    results.put((result.invoices, result.chunks_replanned))
    engine.dispose()
