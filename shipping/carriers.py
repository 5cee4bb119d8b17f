"""Carriers (SPEC §5.2) and the carrier choice at release (SPEC §3.10 item 1), pure.

`choose` takes the facts of one shipment (destination province, weight, COD, warehouse, the
buyer's request) and the loaded carriers, and answers the carrier with its reason, or none
with the reason of every refusal. No I/O: the activity reads the facts and the carriers
and hands them here, so the rules are tested directly.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

Code = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9_]{0,19}$")]
Yuan = Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=2)]


class Rate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provinces: list[str] | Literal["*"]
    first_kg: Yuan
    extra_kg: Yuan


class CainiaoWaybill(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["cainiao"]
    shop: str = Field(min_length=1, max_length=64)


class PoolWaybill(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["pool"]
    low_at: int = Field(default=20, ge=0)


class Carrier(BaseModel):
    """One carrier of the carriers file."""

    model_config = ConfigDict(extra="ignore")
    code: Code
    name: str = Field(min_length=1, max_length=100)
    cod: bool = False
    max_weight_g: int | None = Field(default=None, gt=0)
    warehouses: list[str] | None = None
    excluded_provinces: list[str] = Field(default_factory=list)
    rates: list[Rate] = Field(min_length=1)
    waybill: CainiaoWaybill | PoolWaybill = Field(discriminator="kind")
    rank: int = 0

    @field_validator("rates")
    @classmethod
    def _no_province_twice(cls, rates: list[Rate]) -> list[Rate]:
        seen: set[str] = set()
        for rate in rates:
            names = ["*"] if rate.provinces == "*" else rate.provinces
            twice = seen.intersection(names)
            if twice:
                raise ValueError(f"province {sorted(twice)[0]} has two rates")
            seen.update(names)
        return rates

    def rate_for(self, province: str) -> Rate | None:
        wildcard = None
        for rate in self.rates:
            if rate.provinces == "*":
                wildcard = rate
            elif province in rate.provinces:
                return rate
        return wildcard

    def cost(self, province: str, weight_g: int) -> Decimal | None:
        """First kg plus each further started kg, by the rate of the province."""
        rate = self.rate_for(province)
        if rate is None:
            return None
        kgs = max(1, math.ceil(weight_g / 1000))
        return rate.first_kg + rate.extra_kg * (kgs - 1)


def parse_carriers(items: Any) -> tuple[list[Carrier], list[str]]:
    """The carriers of a file, or one message per bad field (`[3].rates.0.first_kg: ...`)."""
    from pydantic import ValidationError

    if not isinstance(items, list):
        return [], ["expected a JSON array of carriers"]
    carriers: list[Carrier] = []
    errors: list[str] = []
    codes: set[str] = set()
    for i, item in enumerate(items):
        try:
            carrier = Carrier.model_validate({**item, "rank": i} if isinstance(item, dict) else item)
        except ValidationError as exc:
            for e in exc.errors():
                where = ".".join(str(p) for p in e["loc"])
                errors.append(f"[{i}].{where}: {e['msg']}")
            continue
        if carrier.code in codes:
            errors.append(f"[{i}].code: {carrier.code} appears twice")
        codes.add(carrier.code)
        carriers.append(carrier)
    return carriers, errors


# A buyer names a carrier in the remarks the way buyers do ("发顺丰", "要中通", "京东快递").
ALIASES: dict[str, str] = {
    "顺丰": "SF", "中通": "ZTO", "圆通": "YTO", "申通": "STO", "韵达": "YUNDA",
    "京东": "JD", "邮政": "POSTB", "EMS": "EMS", "极兔": "JTSD", "德邦": "DBL",
}


def requested_carrier(remarks: str | None, carriers: list[Carrier]) -> str | None:
    """The carrier a buyer asked for in the remarks, as a code, or None."""
    if not remarks:
        return None
    for carrier in carriers:
        if carrier.name and carrier.name in remarks:
            return carrier.code
    for word, code in ALIASES.items():
        if word in remarks:
            return code
    for token in re.findall(r"[A-Za-z]{2,6}", remarks):
        if any(c.code == token.upper() for c in carriers):
            return token.upper()
    return None


@dataclass(frozen=True)
class ShipmentFacts:
    province: str
    weight_g: int
    cod: bool
    warehouse: str
    requested: str | None = None


@dataclass
class Choice:
    carrier: str | None
    cost: Decimal | None
    reason: str
    refused: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"carrier": self.carrier, "cost": None if self.cost is None else str(self.cost),
                "reason": self.reason, "refused": dict(self.refused)}


def why_not(carrier: Carrier, facts: ShipmentFacts) -> str | None:
    """Why this carrier cannot take this shipment, or None when it can."""
    if carrier.warehouses is not None and facts.warehouse not in carrier.warehouses:
        return f"does not collect at warehouse {facts.warehouse}"
    if facts.province in carrier.excluded_provinces:
        return f"does not deliver to {facts.province}"
    if carrier.rate_for(facts.province) is None:
        return f"has no rate for {facts.province}"
    if carrier.max_weight_g is not None and facts.weight_g > carrier.max_weight_g:
        return f"takes at most {carrier.max_weight_g} g, the parcel weighs {facts.weight_g} g"
    if facts.cod and not carrier.cod:
        return "does not collect cash on delivery"
    return None


def choose(facts: ShipmentFacts, carriers: list[Carrier]) -> Choice:
    """The buyer's carrier when it can serve, else the cheapest (a tie: the earlier in the
    carriers file); None with every carrier's refusal when none can."""
    refused: dict[str, str] = {}
    able: list[tuple[Decimal, int, Carrier]] = []
    for carrier in sorted(carriers, key=lambda c: c.rank):
        problem = why_not(carrier, facts)
        if problem:
            refused[carrier.code] = problem
            continue
        cost = carrier.cost(facts.province, facts.weight_g)
        assert cost is not None  # why_not checked the rate
        able.append((cost, carrier.rank, carrier))
    if not able:
        return Choice(None, None, "no carrier serves this shipment: " + (
            "; ".join(f"{code} {why}" for code, why in refused.items()) or "no carriers loaded"
        ), refused)
    if facts.requested:
        for cost, _, carrier in able:
            if carrier.code == facts.requested:
                return Choice(carrier.code, cost, f"the buyer asked for {carrier.name}", refused)
    cost, _, best = min(able, key=lambda t: (t[0], t[1]))
    ties = [c.code for k, _, c in able if k == cost and c.code != best.code]
    reason = f"the cheapest: {best.name} at ¥{cost} for {facts.weight_g} g to {facts.province}"
    if ties:
        reason += f" (as cheap: {', '.join(ties)}; first in the carriers file wins)"
    if facts.requested:
        why = refused.get(facts.requested, "is not a loaded carrier")
        reason = f"the buyer asked for {facts.requested}, which {why}; {reason}"
    return Choice(best.code, cost, reason, refused)
