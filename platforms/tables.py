"""The platforms' tables: shops, what each shop's sync knows per platform order, the PII log.

Same metadata as `models.tables` (imported beside it in migrations/env.py). Credentials are
stored sealed (`platforms.secrets`): no column holds a secret or token in plaintext, and
the masked receivers travel in the order documents, never here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlalchemy.types import DateTime
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(**kw: Any) -> Any:
    return Field(sa_column=Column(DateTime(timezone=True), **kw))


def _json(**kw: Any) -> Any:
    return Field(sa_column=Column(JSON, **kw))


class Shop(SQLModel, table=True):
    """One account on one platform, and its sync's cursor (`synced_through`).

    `state`: ``syncing``, ``paused``, ``token_expired`` or ``failing`` (with the platform's
    `last_error`). The cursor only moves forward, and only after every order of the window
    it closes has been handed to intake (SPEC §8.9).
    """

    __tablename__ = "shops"

    name: str = Field(primary_key=True, max_length=40)
    platform: str = Field(max_length=20)
    app_key: str = Field(max_length=100)
    app_secret_sealed: str = Field(max_length=400)
    session_sealed: str | None = Field(default=None, max_length=4000)
    token_version: int = 0  # bumped by `shops token`: what waited for a token goes on
    api_url: str = Field(max_length=500)
    poll_every_s: int = 60
    ship_within_s: int = 48 * 3600
    carrier_ids: dict[str, Any] = _json(nullable=False, default=dict)
    merge: bool = True
    state: str = Field(default="syncing", max_length=20)
    last_error: str | None = Field(default=None, max_length=1000)
    synced_through: datetime = _ts(nullable=False)
    imported: int = 0
    last_run: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts(nullable=False)


class ShopOrder(SQLModel, table=True):
    """What a shop's sync knows about one platform order.

    `outcome`: ``imported`` (handed to intake: started or duplicate), ``rejected`` (cannot
    be mapped or intake refused it; `reason`), ``pii_unavailable`` (the platform refused to
    decrypt the receiver; retried by each later run and by `resume`) or ``skipped``
    (closed, shipped or refunded before the OMS saw it). `view` is the platform's view at
    the last sync (`platforms.mapping.PlatformView`), to tell what changed since.
    """

    __tablename__ = "shop_orders"
    __table_args__ = (
        Index("ix_shop_orders_shop_outcome", "shop", "outcome"),
        Index("ix_shop_orders_platform_id", "shop", "platform_order_id"),
    )

    order_id: str = Field(primary_key=True, max_length=64)
    shop: str = Field(max_length=40)
    platform_order_id: str = Field(max_length=64)
    outcome: str = Field(max_length=20)
    reason: str | None = Field(default=None, max_length=1000)
    view: dict[str, Any] = _json(nullable=False, default=dict)
    changes: list[Any] = _json(nullable=False, default=list)
    # a held order (`pii_unavailable`): its mapped document (receiver still empty) and what
    # the platform's decryption needs, so each later run can ask again; cleared once imported
    pending: dict[str, Any] | None = _json(nullable=True)
    first_seen: datetime = _ts(nullable=False)
    last_seen: datetime = _ts(nullable=False)


class PiiAccess(SQLModel, table=True):
    """One decryption of a receiver through a platform's call (`oms pii-log`)."""

    __tablename__ = "pii_access_log"
    __table_args__ = (
        Index("ix_pii_access_order", "order_id", "at"),
        Index("ix_pii_access_at", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = _ts(nullable=False)
    order_id: str = Field(max_length=64)
    shop: str = Field(max_length=40)
    platform: str = Field(max_length=20)
    fields: list[Any] = _json(nullable=False, default=list)
    scene: str = Field(max_length=100)
    outcome: str = Field(default="decrypted", max_length=20)


class WriteBack(SQLModel, table=True):
    """One shipment's tracking told to its platform (SPEC §3.9, §8.11): once per shipped event.

    Keyed by the outbox event (`tracking_to_platform`) that the shipped shipment wrote in its
    own transaction, so a shipment is written back once, whatever retries. `status`:
    ``done`` (the platform took it, or had it already), ``refused`` (the platform refused,
    e.g. a refund; `reason` for a clerk) or ``waiting`` (a session to renew, a carrier id to
    set: tried again by each run).
    """

    __tablename__ = "write_backs"
    __table_args__ = (Index("ix_write_backs_shop_status", "shop", "status"),)

    event_id: str = Field(primary_key=True, max_length=160)
    order_id: str = Field(max_length=64)
    shop: str = Field(max_length=40)
    shipment_id: str = Field(max_length=80)
    carrier: str = Field(max_length=20)
    tracking_no: str = Field(max_length=60)
    status: str = Field(max_length=20)
    reason: str | None = Field(default=None, max_length=1000)
    tries: int = 0
    at: datetime = _ts(nullable=False)
