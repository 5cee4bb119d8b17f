"""The one refund computation: what an order owes back of what was paid, pro rata.

The share of a unit is its line's value (quantity × unit price) in the order's, applied to what
was paid, so discounts and fees are shared the same way; to the cent. Used for the whole
refund on cancel (the units that shipped are kept) and for a partial remainder (the units not
cancelled are kept), so a partial refund and a later cancel add up to the cent. Pure: the
workflow computes it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def order_value(lines: Iterable[Any], units: Callable[[Any], int] = lambda li: li.qty) -> Decimal:
    """The value of `units` of each line (default: every unit ordered) at its unit price."""
    return sum((Decimal(units(li)) * (li.unit_price or Decimal(0)) for li in lines), Decimal(0))


def refund_owed(lines: list[Any], *, paid: Decimal, kept: Callable[[Any], int]) -> Decimal:
    """What was paid, less the paid share of the units `kept` (all of it when nothing is kept)."""
    ordered = order_value(lines)
    kept_value = order_value(lines, kept)
    if kept_value == 0 or ordered == 0:
        return paid
    return max(paid - (paid * kept_value / ordered).quantize(CENT), ZERO)


def refund_for(lines: list[Any], *, paid: Decimal) -> Decimal:
    """What to refund on cancel: the paid amount less the value of what shipped."""
    return refund_owed(lines, paid=paid, kept=lambda li: li.shipped)
