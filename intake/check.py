"""The `check` stage's rules (SPEC §3.1), all together, as pure functions.

Every rule takes the order document (and the reference data it needs) and returns `Finding`s;
nothing here does I/O or logs, so the workflow's activity can call `check_order` and tests can
call each rule directly. Validation uses real data: phone numbers through `phonenumbers`
(default region CN), Chinese addresses through today's division list, money as `Decimal` to
the cent."""

from __future__ import annotations

from collections.abc import Mapping

from intake.address_check import check_address
from intake.buyer import check_buyer_name, check_phone
from intake.fraud import check_fraud
from intake.items import check_items, check_payment
from models.documents import OrderDocument
from models.settings import Policy
from models.types import CatalogEntry, Finding, FraudContext

# =================================================================== all together


def check_order(
    order: OrderDocument,
    *,
    catalog: Mapping[str, CatalogEntry],
    policy: Policy,
    fraud: FraudContext,
) -> list[Finding]:
    """Every finding for one order, buyer rules first, then items, money and fraud."""
    return [
        *check_buyer_name(order),
        *check_phone(order),
        *check_address(order),
        *check_items(order, catalog=catalog, policy=policy),
        *check_payment(order, catalog=catalog, policy=policy),
        *check_fraud(order, catalog=catalog, policy=policy, fraud=fraud),
    ]

