"""Times as the merchant reads them: in `OMS_TIMEZONE` (default Asia/Shanghai), zone named.

The database and the API keep aware UTC / ISO 8601 with an offset; only what a person reads
(the console, the report, `status` and `list`) is turned into the merchant's wall clock here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
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
