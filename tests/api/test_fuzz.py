"""The OpenAPI schema, fuzzed: valid and invalid requests to every operation never make a 500.

Schemathesis generates requests from the published schema (and requests that break it), calls
the app in process as an admin, and every answer must be a success or a 4xx in the API's error
shape. The number of examples per operation is bounded so that the whole run stays short.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode

from billing_core.api.keys import Role
from billing_core.context import BillingContext

EXAMPLES_PER_OPERATION = 12


@pytest.fixture
def seeded(app: FastAPI, ctx: BillingContext, keys: dict[Role, str]) -> dict[Role, str]:
    """A few rows with small ids, so that generated ids sometimes find something."""
    from billing_core.api.inprocess import asgi_client
    from tests.api.conftest import Api

    with asgi_client(app) as client:
        api = Api(client, keys)
        product = api.ok("POST", "/v1/products", {"name": "Plan"})["id"]
        api.ok("POST", "/v1/billable_metrics", {"code": "api_calls", "name": "API", "aggregation": "sum"})
        price = api.ok(
            "POST",
            "/v1/prices",
            {
                "product_id": product,
                "currency": "USD",
                "model": "flat",
                "interval": "month",
                "unit_amount_minor": 10_00,
            },
        )["id"]
        customer = api.ok(
            "POST", "/v1/customers", {"email": "a@example.com", "name": "A", "currency": "USD"}
        )["id"]
        api.ok(
            "POST",
            f"/v1/customers/{customer}/payment_methods",
            {"brand": "visa", "bin": "424242", "last4": "4242", "exp_month": 12, "exp_year": 2030},
        )
        api.ok("POST", "/v1/subscriptions", {"customer_id": customer, "items": [{"price_id": price}]})
        api.ok(
            "POST",
            "/v1/disputes",
            {"customer_id": customer, "message": "?", "amount_minor": 1, "invoice_id": 1},
        )
        api.ok(
            "POST",
            "/v1/chargebacks",
            {"payment_id": 1, "network_reference": "N1", "amount_minor": 1, "reason_code": "10.4"},
        )
    return keys


def test_no_request_makes_the_api_fail(app: FastAPI, seeded: dict[Role, str]) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {seeded[Role.ADMIN]}"}
    failures: list[str] = []
    answers: dict[int, int] = {}
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in GenerationMode:
            _fuzz(operation, mode, headers, failures, answers)
    assert operations > 50
    # the run reached the use cases, not only the schema layer
    assert sum(n for status, n in answers.items() if status < 300) > 100
    assert sum(n for status, n in answers.items() if status in (400, 404, 409)) > 100
    assert failures == [], "\n".join(failures[:20])


def _fuzz(
    operation: Any,
    mode: GenerationMode,
    headers: dict[str, str],
    failures: list[str],
    answers: dict[int, int],
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case: Any) -> None:
        response = case.call(headers=headers)
        answers[response.status_code] = answers.get(response.status_code, 0) + 1
        problem = _problem(response)
        if problem:
            failures.append(f"{case.method} {case.formatted_path} ({mode}): {problem}")

    try:
        call()
    except Unsatisfiable:
        # nothing in the operation can be made invalid (no parameters, no body)
        assert mode is GenerationMode.NEGATIVE, operation.label


def _problem(response: Any) -> str | None:
    if response.status_code >= 500:
        return f"{response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        error = response.json().get("error")
        if not isinstance(error, dict) or set(error) != {"code", "message", "field", "expected", "got"}:
            return f"{response.status_code} with a body not in the error shape: {response.text[:300]}"
    return None
