"""The inputs and results that cross the Temporal boundary for the shops' syncs.

Plain pydantic models (the OMS's data converter), free of I/O, so the sync workflow can
import them inside its sandbox. Times are ISO 8601 strings in UTC.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class SyncInput(BaseModel):
    """One run of a shop's sync: from its cursor (a scheduled run) or a backfill window."""

    shop: str
    since: str | None = None  # a backfill: [since, until]; the cursor is left alone
    until: str | None = None
    max_windows: int = Field(default=96, ge=1, le=10_000)  # two days of 30-minute windows
    retry_initial_s: float = 1.0  # backoff for rate limits and a platform that is down
    retry_max_s: float = 60.0


class WindowInput(BaseModel):
    shop: str
    since: str | None = None
    until: str | None = None
    retry_held: bool = False  # ask the platform again for held receivers (a run's first window)


class WindowResult(BaseModel):
    """One window read, or why none was (`state`: the shop's state after it)."""

    shop: str
    state: str
    start: str | None = None
    end: str | None = None
    seen: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: int = 0
    held: int = 0
    skipped: int = 0
    changed: int = 0
    written_back: int = 0  # shipments told to the platform (at a run's start)
    write_back_refused: int = 0
    caught_up: bool = True
    error: str | None = None
    orders: list[str] = Field(default_factory=list)  # order ids handed to intake (<= 1000)
    problems: list[str] = Field(default_factory=list)  # rejected orders, one line each (<= 50)


class SyncResult(BaseModel):
    shop: str
    state: str
    windows: list[WindowResult] = Field(default_factory=list)

    @property
    def imported(self) -> int:
        return sum(w.imported for w in self.windows)


class DecryptHeldInput(BaseModel):
    """`resume` of an order held `pii_unavailable`: ask its platform again (`decrypt_held`)."""

    order_id: str


class DecryptHeldResult(BaseModel):
    """The receiver, decrypted (as the `platform_address` signal carries it), or why not."""

    receiver: dict[str, str] | None = None
    reason: str | None = None
