from billing_core.services.create_customer import create_customer


def test_customer_round_trip(ctx):
    customer = create_customer(
        ctx, email="ada@example.com", name="Ada", currency="EUR", timezone="Europe/Berlin"
    )
    assert customer.id > 0
    assert customer.currency == "EUR"
