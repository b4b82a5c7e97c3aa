"""Real-time counters pushed to the online store from the billing core's outbox.

Two features must be fresher than the last materialization: failed attempts per customer in the
last 24 hours (``customer_realtime:failed_attempts_24h``) and attempts per card BIN in the last
hour (``bin_realtime:bin_attempts_last_hour``). Every payment the billing core answers appends a
``payment.succeeded`` or ``payment.failed`` event to its outbox in the same transaction;
:class:`OutboxPusher` is one more consumer of that outbox, with its own position in
``consumer_offsets`` (consumer ``features``):

1. it reads the events after its position, in ``seq`` order, a page at a time, keeping only the
   payment events (and the time of the page's last event, whatever its type);
2. it keeps each window's events in memory, in time order, and the count per key; the page's
   latest event time is the stream's clock (event time, not the wall clock): events at or before
   ``clock - window`` leave their window;
3. for every key whose count changed (a new event, or one leaving the window) it pushes the new
   count, stamped with the clock, to the feature views' push sources (``store.push``, online);
4. then it moves its position to the page's last event.

A crash between 3 and 4 pushes the same counts again: they are absolute values, not increments,
so pushing twice changes nothing. On start it rebuilds the windows from the outbox before its
position (reading back until the events are older than the longest window), so a restart
continues with the same counts. The BIN of a payment comes from the billing database's
``payment_methods`` (cached by id).

The values equal what the batch tables (``customer_realtime``, ``bin_realtime``) hold at the same
instant: ``tests/features/test_push.py`` checks it.
"""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy import Engine

CONSUMER = "features"
PAYMENT_EVENTS = ("payment.succeeded", "payment.failed")
CUSTOMER_WINDOW = timedelta(hours=24)
BIN_WINDOW = timedelta(hours=1)

#: (push source, key column, feature column)
CUSTOMER_PUSH = ("customer_realtime_push", "customer_id", "failed_attempts_24h")
BIN_PUSH = ("bin_realtime_push", "card_bin", "bin_attempts_last_hour")

Push = Callable[[str, "pd.DataFrame"], None]


class Window:
    """Events in ``(clock - length, clock]``, counted per key."""

    def __init__(self, length: timedelta) -> None:
        self.length = length
        self.heap: list[tuple[datetime, int, Any]] = []
        self.counts: Counter[Any] = Counter()
        self._n = 0

    def add(self, at: datetime, key: Any) -> None:
        self._n += 1
        heapq.heappush(self.heap, (at, self._n, key))
        self.counts[key] += 1

    def advance(self, clock: datetime) -> set[Any]:
        """Drop events at or before ``clock - length``; the keys whose count fell."""
        edge = clock - self.length
        fallen = set()
        while self.heap and self.heap[0][0] <= edge:
            _, _, key = heapq.heappop(self.heap)
            self.counts[key] -= 1
            if self.counts[key] == 0:
                del self.counts[key]
            fallen.add(key)
        return fallen


@dataclass
class PushResult:
    events: int = 0
    payment_events: int = 0
    pushed: dict[str, int] = field(default_factory=lambda: {CUSTOMER_PUSH[0]: 0, BIN_PUSH[0]: 0})
    position: int = 0
    clock: datetime | None = None
    pages: int = 0


def _instant(value: Any) -> datetime:
    from billing_core.db.types import parse_instant_column

    return parse_instant_column(value)


class OutboxPusher:
    """The outbox consumer that keeps the real-time counters fresh online."""

    def __init__(self, engine: Engine, push: Push, *, page_size: int = 10_000) -> None:
        self.engine = engine
        self.push = push
        self.page_size = page_size
        self.customers = Window(CUSTOMER_WINDOW)
        self.bins = Window(BIN_WINDOW)
        self.clock: datetime | None = None
        self.position: int | None = None
        self._bins: dict[int, str | None] = {}

    @classmethod
    def for_store(cls, engine: Engine, store: Any, *, page_size: int = 10_000) -> OutboxPusher:
        """A pusher that writes to a Feast store's online side."""
        from feast.data_source import PushMode

        def push(source: str, frame: pd.DataFrame) -> None:
            store.push(source, frame, to=PushMode.ONLINE)

        return cls(engine, push, page_size=page_size)

    # ------------------------------------------------------------------------ position

    def _bulk(self, conn: Any) -> Any:
        from billing_core.db.bulk import Bulk

        return Bulk(conn)

    def load_position(self) -> int:
        with self.engine.connect() as conn:
            rows = self._bulk(conn).query(
                "SELECT last_seq FROM consumer_offsets WHERE consumer = ?", (CONSUMER,)
            )
        return int(rows[0][0]) if rows else 0

    def _save_position(self, seq: int) -> None:
        with self.engine.begin() as conn:
            bulk = self._bulk(conn)
            bulk.execute(
                "INSERT INTO consumer_offsets (consumer, last_seq, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT (consumer) DO UPDATE SET last_seq = excluded.last_seq, updated_at = excluded.updated_at",
                (CONSUMER, seq, bulk.instant(datetime.now(UTC))),
            )

    def head(self) -> int:
        with self.engine.connect() as conn:
            rows = self._bulk(conn).query("SELECT last_seq FROM outbox_head WHERE id = 1")
        return int(rows[0][0]) if rows else 0

    def skip_to_head(self) -> int:
        """Start from the outbox's head (history is left to materialization); returns the position."""
        head = self.head()
        self._save_position(head)
        self.position = None
        return head

    # -------------------------------------------------------------------------- reading

    def _page(
        self, after: int, until: int
    ) -> tuple[list[tuple[int, datetime, str, dict[str, Any]]], datetime | None]:
        """Payment events with ``after < seq <= until``, and the time of the event ``until``."""
        types = ", ".join(f"'{t}'" for t in PAYMENT_EVENTS)
        with self.engine.connect() as conn:
            bulk = self._bulk(conn)
            rows = bulk.query(
                "SELECT seq, occurred_at, event_type, payload FROM outbox"
                f" WHERE seq > ? AND seq <= ? AND event_type IN ({types}) ORDER BY seq",
                (after, until),
            )
            last = bulk.query("SELECT occurred_at FROM outbox WHERE seq = ?", (until,))
        events = [(int(s), _instant(o), str(t), orjson.loads(p)) for s, o, t, p in rows]
        return events, (_instant(last[0][0]) if last else None)

    def _card_bins(self, ids: Iterable[int]) -> None:
        missing = sorted({i for i in ids if i not in self._bins})
        if not missing:
            return
        with self.engine.connect() as conn:
            bulk = self._bulk(conn)
            for start in range(0, len(missing), 500):
                chunk = missing[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                for pm_id, bin_ in bulk.query(
                    f"SELECT id, bin FROM payment_methods WHERE id IN ({marks})", chunk
                ):
                    self._bins[int(pm_id)] = str(bin_) if bin_ else None
        for i in missing:
            self._bins.setdefault(i, None)

    def _take(self, events: list[tuple[int, datetime, str, dict[str, Any]]]) -> tuple[set[Any], set[Any]]:
        """Add events to the windows; the keys they touched."""
        self._card_bins(int(p["payment_method_id"]) for _, _, _, p in events if p.get("payment_method_id"))
        customers, bins = set(), set()
        for _, at, kind, payload in events:
            if kind == "payment.failed" and payload.get("customer_id") is not None:
                key = int(payload["customer_id"])
                self.customers.add(at, key)
                customers.add(key)
            pm = payload.get("payment_method_id")
            bin_ = self._bins.get(int(pm)) if pm else None
            if bin_:
                self.bins.add(at, bin_)
                bins.add(bin_)
        return customers, bins

    def warm_up(self, position: int) -> None:
        """Rebuild the windows from the events before ``position``."""
        self.position = position
        if position == 0:
            return
        _, clock = self._page(position - 1, position)
        if clock is None:
            return
        self.clock = clock
        horizon = clock - max(CUSTOMER_WINDOW, BIN_WINDOW)
        collected: list[tuple[int, datetime, str, dict[str, Any]]] = []
        hi = position
        while hi > 0:
            lo = max(0, hi - self.page_size)
            events, _ = self._page(lo, hi)
            collected[:0] = events
            with self.engine.connect() as conn:
                first = self._bulk(conn).query("SELECT occurred_at FROM outbox WHERE seq = ?", (lo + 1,))
            if not first or _instant(first[0][0]) <= horizon:
                break
            hi = lo
        self._take([e for e in collected if e[1] > horizon])
        self.customers.advance(clock)
        self.bins.advance(clock)

    # -------------------------------------------------------------------------- running

    def run_once(self, *, max_pages: int | None = None) -> PushResult:
        """Consume every event up to the outbox's head (or ``max_pages`` pages), pushing as it goes."""
        if self.position is None:
            self.warm_up(self.load_position())
        assert self.position is not None
        result = PushResult(position=self.position, clock=self.clock)
        head = self.head()
        while self.position < head and (max_pages is None or result.pages < max_pages):
            until = min(head, self.position + self.page_size)
            events, last_time = self._page(self.position, until)
            customers, bins = self._take(events)
            times = [at for _, at, _, _ in events] + ([last_time] if last_time else [])
            if times:
                newest = max(times)
                self.clock = newest if self.clock is None else max(self.clock, newest)
            if self.clock is not None:
                customers |= self.customers.advance(self.clock)
                bins |= self.bins.advance(self.clock)
                result.pushed[CUSTOMER_PUSH[0]] += self._push(CUSTOMER_PUSH, customers, self.customers)
                result.pushed[BIN_PUSH[0]] += self._push(BIN_PUSH, bins, self.bins)
            self._save_position(until)
            self.position = until
            result.payment_events += len(events)
            result.pages += 1
        result.events = self.position - result.position
        result.position = self.position
        result.clock = self.clock
        return result

    def _push(self, target: tuple[str, str, str], keys: set[Any], window: Window) -> int:
        if not keys:
            return 0
        import pandas as pd

        source, key_column, feature = target
        ordered = sorted(keys)
        frame = pd.DataFrame(
            {
                key_column: ordered,
                "event_timestamp": pd.Series([self.clock] * len(ordered), dtype="datetime64[us, UTC]"),
                feature: pd.Series([window.counts.get(k, 0) for k in ordered], dtype="int32"),
            }
        )
        if key_column == "customer_id":
            frame[key_column] = frame[key_column].astype("int64")
        self.push(source, frame)
        return len(ordered)

    def follow(
        self,
        *,
        interval: float = 1.0,
        should_stop: Callable[[], bool] = lambda: False,
        on_result: Callable[[PushResult], None] | None = None,
    ) -> None:
        """Consume forever (until ``should_stop()``), polling every ``interval`` seconds when idle."""
        while not should_stop():
            result = self.run_once()
            if on_result and result.events:
                on_result(result)
            if result.events == 0:
                time.sleep(interval)
