"""Times as the merchant reads them: in `OMS_TIMEZONE` (default Asia/Shanghai), zone named.

The database and the API keep aware UTC / ISO 8601 with an offset; only what a person reads
(the console, the report, `status` and `list`) is turned into the merchant's wall clock here.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

DEFAULT_ZONE = "Asia/Shanghai"


@lru_cache(maxsize=16)
def zone(name: str | None = None) -> ZoneInfo:
    return ZoneInfo(name or DEFAULT_ZONE)


def parse(value: str | datetime | None) -> datetime | None:
    """An aware datetime from an ISO string or datetime (naive values are UTC, as stored)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def local(value: str | datetime | None, tz: str | None = None, fmt: str = "%m-%d %H:%M:%S") -> str:
    """`value` on the merchant's clock ("—" when there is none; the raw text if unreadable)."""
    moment = parse(value)
    if moment is None:
        return "—" if not value else str(value)[:19]
    return moment.astimezone(zone(tz)).strftime(fmt)


def label(tz: str | None = None, at: datetime | None = None) -> str:
    """The zone as a page names it once: `Asia/Shanghai (UTC+08:00)`."""
    moment = (at or datetime.now(UTC)).astimezone(zone(tz))
    offset = moment.strftime("%z")
    return f"{zone(tz).key} (UTC{offset[:3]}:{offset[3:]})"


def span(seconds: float) -> str:
    """A duration as a clerk says it: 45s, 12m, 3h 20m, 2d 4h (the queue's ages and deadlines)."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def time_left(ship_by: str | datetime | None, now: datetime, warn: timedelta) -> dict[str, Any] | None:
    """The time left to a ship-by deadline, as the queue shows it (SPEC §3.9): `state` is
    `late` once it has passed, `soon` within `warn` of it (the `ship_by.warn` policy, as the
    workflow's `ship_by_soon` flag), else `ok`; `zh` and `en` say it. None without a deadline."""
    at = parse(ship_by)
    if at is None:
        return None
    left = (at - now).total_seconds()
    if left <= 0:
        return {"state": "late", "seconds": int(left),
                "zh": f"超时 {span(-left)}", "en": f"late by {span(-left)}"}
    state = "soon" if left <= warn.total_seconds() else "ok"
    return {"state": state, "seconds": int(left), "zh": f"剩 {span(left)}", "en": f"{span(left)} left"}
