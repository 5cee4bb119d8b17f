"""Plain JSON values of what the workflow records (decimals, dates, enums, models), so that
timeline entries and outbox payloads serialize the same everywhere. Pure: the workflow uses it."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

_PLAIN = frozenset({str, int, float, bool, type(None)})


def jsonable(value: Any) -> Any:
    """JSON-ready copy: Decimal as its string, datetime in ISO 8601 (payloads and timeline data).

    Also run inside the workflow sandbox (the timeline's new entries at every state write),
    where `isinstance` and every function-level import go through the sandbox's proxies:
    exact types are tested first, and `isinstance` only for their subclasses.
    """
    kind = type(value)
    if kind in _PLAIN:
        return value
    if kind is dict:
        return {str(k): jsonable(v) for k, v in value.items()}
    if kind is list or kind is tuple:
        return [jsonable(v) for v in value]
    if kind is Decimal:
        return str(value)
    if kind is datetime:
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value

