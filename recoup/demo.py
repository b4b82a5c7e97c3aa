"""``recoup demo``: the whole story on embedded defaults (SQLite, DuckDB, local files).

Part one, the billing core, in ``<demo dir>/billing``:

1. a synthetic book of business (five currencies, flat, per-seat, tiered and package prices,
   discounts, taxes, credit balances, trials and usage);
2. one customer's story told through the use cases: subscribe, use, upgrade mid-cycle, get a
   credit note, pay;
3. monthly billing runs over the whole book, each invoicing and collecting in bulk, then the last
   run again to show it is idempotent;
4. dunning, day by day for three weeks: retries, reminders, suspensions;
5. the notifications those runs asked for, rendered in each customer's language into a Maildir;
6. the REST API, called in process: an idempotent signup, a batch of usage, a refused request;
7. a report in one reporting currency through effective-dated FX rates.

Part two, the world, in ``<demo dir>/world``, told with the same commands a user runs:

8. ``recoup simulate run``: customers with hidden traits sign up, use, pay, fail, dispute, churn
   and commit fraud for a year, with the ground truth kept apart;
9. ``recoup simulate report``: plots of what the world produced;
10. ``recoup lake export``: the billing database as partitioned parquet;
11. ``recoup features build | apply | materialize``: point-in-time feature tables registered in
    Feast, a training set from ``get_historical_features`` and the same values online;
12. ``recoup simulate policy-eval``: two dunning policies tried on the same world;
13. ``recoup audit verify`` on both databases.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from billing_core.clock import FrozenClock
from billing_core.context import BillingContext
from billing_core.db.engine import create_engine
from billing_core.db.migrate import upgrade
from billing_core.money import Money
from billing_core.payments import SimulatedGateway

START = datetime(2026, 2, 1, tzinfo=UTC)
DUNNING_DAYS = 21


def _month(n: int) -> datetime:
    """Midnight UTC on the first of the n-th month after START."""
    year, month = divmod(START.month - 1 + n, 12)
    return START.replace(year=START.year + year, month=month + 1)


FX_TO_USD = {"EUR": "1.087", "GBP": "1.262", "JPY": "0.00665", "KWD": "3.25"}


def run_demo(
    demo_dir: Path,
    *,
    subscriptions: int,
    months: int,
    seed: int,
    console: Console,
    err: Console,
    world_customers: int = 10_000,
    world_months: int = 12,
    policy_customers: int = 3_000,
) -> dict[str, object]:
    """Run both parts in a fresh ``demo_dir``; returns what the tests check."""
    if demo_dir.exists():
        shutil.rmtree(demo_dir)
    demo_dir.mkdir(parents=True)
    started = time.perf_counter()
    console.print(Panel.fit(f"Recoup demo, in {demo_dir}", style="bold"))
    billing = _billing_part(
        demo_dir / "billing", subscriptions=subscriptions, months=months, seed=seed, console=console
    )
    world = _world_part(
        demo_dir / "world",
        customers=world_customers,
        months=world_months,
        policy_customers=policy_customers,
        seed=seed,
        console=console,
    )
    console.rule()
    console.print(
        f"The demo took {time.perf_counter() - started:.0f} s. What it left in {demo_dir}:\n"
        f"  billing/recoup.db   the billing core's database (RECOUP_DATABASE_URL=sqlite:///{demo_dir / 'billing' / 'recoup.db'})\n"
        f"  billing/mail        the emails, one file each (any mail client opens a Maildir)\n"
        f"  world/recoup.db     the simulated world; world/truth its ground truth\n"
        f"  world/report        the simulator's plots\n"
        f"  world/lake          the lake; world/features the feature tables, the Feast registry and online store\n"
        f"Run any command on the world with RECOUP_DATA_DIR={demo_dir / 'world'}, e.g. `recoup features status`."
    )
    return billing | world


# -- part one: the billing core ------------------------------------------------------------------


def _billing_part(
    folder: Path, *, subscriptions: int, months: int, seed: int, console: Console
) -> dict[str, object]:
    from recoup import cli

    folder.mkdir(parents=True)
    url = f"sqlite:///{(folder / 'recoup.db').resolve()}"
    engine = create_engine(url)
    upgrade(engine)
    clock = FrozenClock(START - timedelta(days=40))
    ctx = BillingContext(engine, clock=clock, gateway=SimulatedGateway(seed))
    console.print(Panel.fit("Part one: the billing core, a fresh database at " + str(folder / "recoup.db")))

    console.rule("1. A book of business")
    started = time.perf_counter()
    book = cli._build_book(ctx, subscriptions, START, seed)
    console.print(
        f"{book.customers:,} customers and {book.subscriptions:,} subscriptions in USD, EUR, GBP, JPY and KWD, "
        f"{book.usage_events:,} usage events, built in {time.perf_counter() - started:.1f} s"
    )

    console.rule("2. One customer's story")
    story = _story(ctx, clock, book.catalog.plans["EUR"], console)

    console.rule("3. Monthly billing runs")
    runs = []
    for month in range(months + 1):
        as_of = _month(month)
        clock.set(as_of)
        result = cli._run_billing(ctx, as_of)
        runs.append(result)
        console.print(
            f"{as_of.date()}: {result.invoices:,} invoices in {result.seconds:.1f} s "
            f"({result.invoices / max(result.seconds, 1e-9):,.0f}/s); payments {result.payments.succeeded:,} "
            f"succeeded, {result.payments.failed:,} declined"
        )
    again = cli._run_billing(ctx, _month(months))
    console.print(
        f"the {_month(months).date()} run again: [bold]{again.invoices}[/bold] new invoices "
        "(every period is invoiced exactly once)"
    )
    cli._print_billing(runs[-1])

    console.rule("4. Dunning, day by day")
    dunning = _dunning(ctx, clock, _month(months), console)

    console.rule("5. Notifications")
    mail = _notifications(ctx, folder, console)

    console.rule("6. The REST API")
    api = _api(ctx, console)

    console.rule("7. Revenue in one reporting currency")
    from billing_core.reporting import invoice_summary
    from billing_core.services.record_fx_rate import record_fx_rate

    for code, rate in FX_TO_USD.items():
        record_fx_rate(ctx, base=code, quote="USD", rate=rate, effective_at=START - timedelta(days=60))
    with ctx.read() as conn:
        summary = invoice_summary(conn, reporting_currency="USD", at=clock.now())
    cli._print_summary(summary, "USD", clock.now())

    from billing_core.audit import verify

    with ctx.read() as conn:
        report = verify(conn)
    console.print(
        f"[green]audit chain intact[/green]: {report.events:,} events, head {report.head_hash[:16]}..."
    )
    engine.dispose()
    return {
        "story": story,
        "invoices": sum(r.invoices for r in runs),
        "rerun_invoices": again.invoices,
        "audit_events": report.events,
        "dunning_actions": dunning,
        "emails": mail,
        "api": api,
    }


def _dunning(ctx: BillingContext, clock: FrozenClock, start: datetime, console: Console) -> int:
    """The engine every morning for three weeks after the last billing run."""
    from billing_core.services.run_dunning import run_dunning

    actions: Counter[str] = Counter()
    recovered: Counter[str] = Counter()
    suspended = 0
    for day in range(1, DUNNING_DAYS + 1):
        as_of = start + timedelta(days=day, hours=9)
        clock.set(as_of)
        result = run_dunning(ctx, as_of=as_of)
        actions.update(result.tally.actions)
        recovered.update(result.tally.recovered_minor)
        suspended += result.tally.subscriptions_suspended
        if day in (1, 3, 7, 14, 21):
            console.print(
                f"day {day:>2} ({as_of.date()}): {result.opened:,} processes opened, {result.actions:,} actions"
                f" in {result.seconds:.2f} s"
            )
    table = Table(title=f"Dunning over {DUNNING_DAYS} days (the static policy)")
    table.add_column("action: outcome")
    table.add_column("count", justify="right")
    for key, count in sorted(actions.items()):
        action, outcome = key.split("/")
        table.add_row(f"{action.replace('_', ' ')}: {outcome.replace('_', ' ')}", f"{count:,}")
    for code, amount in sorted(recovered.items()):
        table.add_row(f"[green]recovered {code}[/green]", str(Money.of(amount, code)))
    table.add_row("subscriptions suspended", f"{suspended:,}")
    console.print(table)
    return sum(actions.values())


def _notifications(ctx: BillingContext, folder: Path, console: Console) -> int:
    """Emails in the customer's language into a Maildir; texts and call tasks recorded."""
    import email
    import email.policy
    import mailbox

    from billing_core.notifications import dispatch_with_settings
    from recoup.settings import Settings

    settings = Settings(data_dir=folder, email_backend="maildir", maildir=folder / "mail")
    result = dispatch_with_settings(ctx, settings)
    console.print(
        f"{result.events:,} outbox events read: {result.sent:,} messages sent, {result.call_tasks:,} call tasks"
        f" opened, {result.failed:,} failed, in {result.seconds:.1f} s"
    )

    def parse(file: Any) -> Any:
        return email.message_from_binary_file(file, policy=email.policy.default)

    box = mailbox.Maildir(folder / "mail", factory=parse, create=False)
    languages: dict[str, str] = {}
    count = 0
    for message in box:
        count += 1
        language = str(message["Content-Language"])
        languages.setdefault(language, str(message["Subject"]))
    table = Table(title=f"{count:,} emails in {folder / 'mail'}: a subject per language")
    table.add_column("language")
    table.add_column("subject")
    for language, subject in sorted(languages.items()):
        table.add_row(language, subject)
    console.print(table)
    return count


def _api(ctx: BillingContext, console: Console) -> dict[str, Any]:
    """The API in process: what a client sees, retries and errors included."""
    from billing_core.api.app import create_app
    from billing_core.api.inprocess import asgi_client
    from billing_core.services.create_api_key import create_api_key

    service = create_api_key(ctx, name="demo signup service", role="service").key
    analyst = create_api_key(ctx, name="demo analyst", role="analyst").key
    with ctx.read() as conn:
        metric = conn.exec_driver_sql("SELECT code FROM billable_metrics ORDER BY code LIMIT 1").scalar_one()
    signup = {
        "email": "grace@example.com",
        "name": "Grace Hopper",
        "currency": "USD",
        "timezone": "America/New_York",
        "country": "US",
        "signup_channel": "organic",
        "signup_ip": "198.51.100.23",
        "signup_ip_country": "US",
        "signup_device_id": "dev-3a91",
    }
    with asgi_client(create_app(ctx)) as client:
        as_service = {"Authorization": f"Bearer {service}", "Idempotency-Key": "demo-signup-grace"}
        first = client.post("/v1/customers", json=signup, headers=as_service)
        retry = client.post("/v1/customers", json=signup, headers=as_service)
        customer = first.json()["id"]
        console.print(
            f"POST /v1/customers -> {first.status_code}, customer {customer}; the same request retried with its"
            f" Idempotency-Key -> {retry.status_code}, customer {retry.json()['id']} (the first answer, nothing new)"
        )
        now = ctx.clock.now()
        events = [
            {
                "event_id": f"grace-{i}",
                "customer_id": customer,
                "metric_code": metric,
                "occurred_at": (now - timedelta(minutes=i)).isoformat(),
                "value": 1 + i % 3,
            }
            for i in range(100)
        ]
        batch = client.post(
            "/v1/usage_events/batch",
            json={"events": events + events[:10]},
            headers={"Authorization": f"Bearer {service}", "Idempotency-Key": "demo-usage-1"},
        )
        console.print(
            f"POST /v1/usage_events/batch with 110 events, 10 of them repeated -> {batch.status_code}: {batch.json()}"
        )
        bad = client.post(
            "/v1/usage_events",
            json=events[0] | {"event_id": "grace-bad", "value": -5},
            headers={"Authorization": f"Bearer {service}", "Idempotency-Key": "demo-usage-bad"},
        )
        console.print(f"a negative quantity -> {bad.status_code}: {bad.json()['error']}")
        forbidden = client.post(
            "/v1/customers",
            json=signup,
            headers={"Authorization": f"Bearer {analyst}", "Idempotency-Key": "x"},
        )
        console.print(
            f"an analyst key may only read -> {forbidden.status_code}: {forbidden.json()['error']['code']}"
        )
        listed = client.get(
            "/v1/invoices", params={"limit": 3}, headers={"Authorization": f"Bearer {analyst}"}
        )
        console.print(
            "GET /v1/invoices?limit=3 -> "
            + ", ".join(f"{i['number']} {i['status']}" for i in listed.json()["data"])
            + "; the OpenAPI document is at /openapi.json when `recoup api` serves it"
        )
    return {"customer": customer, "retry_same": retry.json()["id"] == customer, "batch": batch.status_code}


# -- part two: the world, through the command line ---------------------------------------------------


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _recoup(console: Console, *args: str) -> None:
    """Run ``recoup ARGS`` in this process, as a user would type it; stop the demo if it fails."""
    import typer.main

    from recoup.cli import app

    console.print(f"[bold cyan]$ recoup {' '.join(args)}[/bold cyan]")
    code = typer.main.get_command(app).main(list(args), prog_name="recoup", standalone_mode=False)
    if isinstance(code, int) and code != 0:
        raise RuntimeError(f"`recoup {' '.join(args)}` failed with exit code {code}")


def _world_part(
    folder: Path, *, customers: int, months: int, policy_customers: int, seed: int, console: Console
) -> dict[str, object]:
    folder.mkdir(parents=True)
    console.print(Panel.fit(f"Part two: a simulated world in {folder}, through the command line"))
    env = {
        "RECOUP_DATA_DIR": str(folder),
        "RECOUP_DATABASE_URL": f"sqlite:///{(folder / 'recoup.db').resolve()}",
        "RECOUP_LAKE_DIR": str(folder / "lake"),
        "RECOUP_FEATURES_DIR": str(folder / "features"),
        "RECOUP_FEAST_ONLINE": "",
        "RECOUP_FEAST_REGISTRY": "",
    }
    console.print(f"[dim]RECOUP_DATA_DIR={folder}[/dim]")
    with _environment(env):
        console.rule(f"8. {customers:,} customers over {months} months")
        _recoup(
            console,
            "simulate",
            "run",
            "--customers",
            str(customers),
            "--months",
            str(months),
            "--seed",
            str(seed),
        )

        console.rule("9. What the world produced")
        _recoup(console, "simulate", "report", "--out", str(folder / "report"))

        console.rule("10. The lake")
        _recoup(console, "lake", "export")

        console.rule("11. The feature store")
        _recoup(console, "features", "build")
        _recoup(console, "features", "apply")
        _recoup(console, "features", "materialize")
        features = _training_and_serving(folder, console)

        console.rule("12. Two dunning policies on the same world")
        _recoup(
            console, "simulate", "policy-eval", "--customers", str(policy_customers), "--months", str(months),
            "--seed", str(seed), "--policy", "static", "--policy", "static-aggressive",
        )  # fmt: skip

        console.rule("13. The audit log")
        _recoup(console, "audit", "verify")
    return {"world": features}


def _training_and_serving(folder: Path, console: Console) -> dict[str, object]:
    """A churn training set through Feast, and one customer's features online and offline."""
    import pandas as pd

    from features.config import FeatureStoreSettings
    from features.store import build_instant, open_repository
    from features.training import entity_rows, online_features, same_value, training_set

    settings = FeatureStoreSettings.from_env(folder, folder / "lake")
    store = open_repository(settings)
    started = time.perf_counter()
    rows = entity_rows("churn_v1", settings.lake_dir)
    frame = training_set(store, "churn_v1", rows)
    seconds = time.perf_counter() - started
    features = [c for c in frame.columns if c not in rows.columns]
    console.print(
        f"churn_v1 training set: {len(frame):,} customer-months x {len(features)} features through"
        f" get_historical_features in {seconds:.1f} s (each row as of its own instant, nothing later)"
    )
    at = build_instant(settings)
    assert at is not None
    customer = int(frame.sort_values("event_timestamp")["customer_id"].iloc[-1])
    offline = training_set(
        store, "churn_v1", pd.DataFrame({"customer_id": [customer], "event_timestamp": [at]})
    )
    online = online_features(store, "churn_v1", [{"customer_id": customer}], at=at)
    table = Table(title=f"Customer {customer} at {at.isoformat()}: offline (training) and online (serving)")
    table.add_column("feature")
    table.add_column("offline", justify="right")
    table.add_column("online", justify="right")
    compared = [name for name in features if name in online]
    same = sum(same_value(offline[name].iloc[0], online[name][0]) for name in compared)
    for name in compared[:12]:
        table.add_row(name, _show(offline[name].iloc[0]), _show(online[name][0]))
    console.print(table)
    console.print(f"{same} of {len(compared)} features agree between the offline and online stores")
    return {"training_rows": len(frame), "features": len(features), "agree": same, "compared": len(compared)}


def _show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if value != value else f"{value:,.3f}"
    return str(value)


def _story(
    ctx: BillingContext, clock: FrozenClock, plans: dict[str, int], console: Console
) -> dict[str, int]:
    """Ada, in Berlin, pays in euros: subscribe, upgrade mid-cycle, receive a credit note."""
    from sqlalchemy import select

    from billing_core.db import schema as t
    from billing_core.services.add_payment_method import add_payment_method
    from billing_core.services.change_plan import change_plan
    from billing_core.services.create_customer import create_customer
    from billing_core.services.create_subscription import create_subscription
    from billing_core.services.issue_credit_note import issue_credit_note

    clock.set(datetime(2026, 1, 10, 9, tzinfo=UTC))
    ada = create_customer(
        ctx,
        email="ada@example.de",
        name="Ada Lovelace",
        currency="EUR",
        timezone="Europe/Berlin",
        country="DE",
        language="de",
    )
    add_payment_method(
        ctx, customer_id=ada.id, brand="visa", bin="424242", last4="4242", exp_month=12, exp_year=2030
    )
    sub = create_subscription(ctx, customer_id=ada.id, items=[{"price_id": plans["pro"], "quantity": 1}])
    clock.set(datetime(2026, 1, 25, 15, tzinfo=UTC))
    change = change_plan(ctx, subscription_id=sub.id, items=[{"price_id": plans["business"], "quantity": 1}])
    table = Table(title="Ada's invoices")
    for name in ("number", "reason", "line", "amount", "total", "status"):
        table.add_column(name, justify="right" if name in ("amount", "total") else "left")
    with ctx.read() as conn:
        invoices = (
            conn.execute(
                select(t.invoices).where(t.invoices.c.customer_id == ada.id).order_by(t.invoices.c.id)
            )
            .mappings()
            .all()
        )
        for inv in invoices:
            lines = (
                conn.execute(
                    select(t.invoice_lines)
                    .where(t.invoice_lines.c.invoice_id == inv["id"])
                    .order_by(t.invoice_lines.c.position)
                )
                .mappings()
                .all()
            )
            for i, line in enumerate(lines):
                first = i == 0
                table.add_row(
                    inv["number"] if first else "",
                    inv["billing_reason"] if first else "",
                    line["description"],
                    str(Money.of(line["amount_minor"], inv["currency"])),
                    str(Money.of(inv["total_minor"], inv["currency"])) if first else "",
                    inv["status"] if first else "",
                )
    console.print(table)
    last = invoices[-1]
    note = issue_credit_note(
        ctx,
        invoice_id=invoices[0]["id"],
        amount_minor=5_00,
        reason="service_credit",
        outcome="customer_balance",
    )
    console.print(
        f"upgrade on 25 January (Berlin time): credit for the unused days of Pro and a charge for the rest of the "
        f"month on Business, invoice {last['number']} due {Money.of(change.amount_due_minor, 'EUR')}; a credit note "
        f"of {Money.of(5_00, 'EUR')} after an outage goes to Ada's balance and the February invoice consumes it."
    )
    return {
        "customer_id": ada.id,
        "subscription_id": sub.id,
        "invoices": len(invoices),
        "credit_note_id": note.id,
    }
