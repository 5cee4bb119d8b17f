"""`jsonable`: the timeline's and the payloads' JSON-ready copy, fast path and subclasses alike."""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import UTC, datetime
from decimal import Decimal
from enum import IntEnum, StrEnum

from models.jsonable import jsonable


class Kind(StrEnum):
    STAGE = "stage"


class Rank(IntEnum):
    ONE = 1


class Stamp(datetime):
    pass


def test_exact_types_and_their_subclasses_come_out_the_same_json():
    at = datetime(2026, 12, 2, 1, 2, 3, tzinfo=UTC)
    value = {
        "amount": Decimal("177.00"),
        "at": at,
        "stamp": Stamp(2026, 12, 2, tzinfo=UTC),
        "lines": [(1, "SKU"), [Decimal("0.5")]],
        "nested": OrderedDict(kind=Kind.STAGE, rank=Rank.ONE, ok=True, none=None, ratio=0.5),
        7: "seven",
    }
    out = jsonable(value)
    assert json.loads(json.dumps(out)) == {
        "amount": "177.00",
        "at": "2026-12-02T01:02:03+00:00",
        "stamp": "2026-12-02T00:00:00+00:00",
        "lines": [[1, "SKU"], ["0.5"]],
        "nested": {"kind": "stage", "rank": 1, "ok": True, "none": None, "ratio": 0.5},
        "7": "seven",
    }
    assert type(out["nested"]) is dict and type(out["lines"][0]) is list
    assert value["amount"] == Decimal("177.00")  # a copy: the input is left as it was
