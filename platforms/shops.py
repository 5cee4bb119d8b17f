"""Shops (SPEC §5.9): adding one, its state, its sealed credentials, the PII access log.

Plain functions over a database session (the CLI, the HTTP routes and the sync's
activities share them); the Temporal side (the sync's schedule) is `platforms.schedule`.
Nothing here returns a secret or a token: `public` is what may be shown, and
`credentials` (used only by the sync's activities) opens them for one call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlmodel import Session, col, select

from models.errors import OmsError
from platforms import pdd, top
from platforms.secrets import open_sealed, seal
from platforms.tables import PiiAccess, Shop, ShopOrder, utcnow

if TYPE_CHECKING:
    from runtime.codec import KeyRing

GATEWAYS = {"taobao": top.PRODUCTION_URL, "pdd": pdd.PRODUCTION_URL}
NOT_YET = ("jd", "douyin", "shopify")  # in §5.9's list; their connectors have their own issue
STATES = ("syncing", "paused", "token_expired", "failing")
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


class ShopError(OmsError):
    """A shop command refused: one message per bad field, or the reason."""

    def __init__(self, errors: list[tuple[str, str]], status: int = 422) -> None:
        self.errors = errors
        self.status = status
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))


def parse_carrier_ids(value: Any) -> dict[str, int]:
    """``SF=44,ZTO=115`` (or a JSON object) -> {"SF": 44, "ZTO": 115}."""
    if value is None or value == "":
        return {}
    pairs: list[tuple[str, Any]]
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, str):
        pairs = []
        for part in value.split(","):
            code, sep, number = part.partition("=")
            if not sep:
                raise ValueError(f"{part.strip()!r} is not CARRIER=ID (e.g. SF=44)")
            pairs.append((code, number))
    else:
        raise ValueError("must be CARRIER=ID pairs, e.g. SF=44,ZTO=115")
    out: dict[str, int] = {}
    for code, number in pairs:
        code = str(code).strip().upper()
        text = str(number).strip()
        if not re.fullmatch(r"[A-Z0-9_]{1,20}", code):
            raise ValueError(f"{code!r} is not a carrier code")
        if not text.isdigit() or len(text) > 9:
            raise ValueError(f"{code}: the platform's carrier id must be a number, not {text!r}")
        out[code] = int(text)
    return out


class ShopIn(BaseModel):
    """The fields of `shops add` / `POST /v1/shops`."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(max_length=40)
    platform: str
    app_key: str = Field(min_length=1, max_length=100)
    app_secret: str = Field(min_length=1, max_length=200)
    session: str | None = Field(default=None, max_length=2000)
    api_url: str | None = Field(default=None, max_length=500)
    poll_every: timedelta = timedelta(minutes=1)
    since: datetime | None = None
    ship_within: timedelta = timedelta(hours=48)
    carrier_ids: dict[str, int] = Field(default_factory=dict)
    merge: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(
                "1-40 lowercase letters, digits, '-' or '_', starting with one of the first two"
            )
        return value

    @field_validator("platform")
    @classmethod
    def _platform(cls, value: str) -> str:
        if value in NOT_YET:
            raise ValueError(f"{value}: no connector yet (taobao and pdd sync today)")
        if value not in GATEWAYS:
            raise ValueError("must be one of taobao, pdd, jd, douyin, shopify")
        return value

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("poll_every")
    @classmethod
    def _poll(cls, value: timedelta) -> timedelta:
        if not timedelta(seconds=1) <= value <= timedelta(days=1):
            raise ValueError("must lie between 1 second and 1 day")
        return value

    @field_validator("ship_within")
    @classmethod
    def _ship_within(cls, value: timedelta) -> timedelta:
        if not timedelta(minutes=1) <= value <= timedelta(days=60):
            raise ValueError("must lie between 1 minute and 60 days")
        return value

    @field_validator("since")
    @classmethod
    def _since(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must carry a timezone offset, e.g. 2026-11-26T10:00:00+08:00")
        return value

    @field_validator("carrier_ids", mode="before")
    @classmethod
    def _carriers(cls, value: Any) -> Any:
        return parse_carrier_ids(value)


class ShopSettings(BaseModel):
    """The fields of `shops set` / `PATCH /v1/shops/{name}`: a shop's settings after `add`,
    each judged as `add` judges it; what is left out stays as it is."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    api_url: str | None = Field(default=None, max_length=500)
    poll_every: timedelta | None = None
    ship_within: timedelta | None = None
    carrier_ids: dict[str, int] | None = None  # replaces the shop's map (`{}` clears it)
    merge: bool | None = None

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return ShopIn._url(value)

    @field_validator("poll_every")
    @classmethod
    def _poll(cls, value: timedelta | None) -> timedelta | None:
        return None if value is None else ShopIn._poll(value)

    @field_validator("ship_within")
    @classmethod
    def _ship_within(cls, value: timedelta | None) -> timedelta | None:
        return None if value is None else ShopIn._ship_within(value)

    @field_validator("carrier_ids", mode="before")
    @classmethod
    def _carriers(cls, value: Any) -> Any:
        return None if value is None else parse_carrier_ids(value)


def _validated(model: type[BaseModel], raw: Any, what: str) -> Any:
    if not isinstance(raw, dict):
        raise ShopError([("(body)", f"must be a JSON object of the `{what}` fields")])
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = []
        for e in exc.errors():
            where = ".".join(str(p) for p in e["loc"]) or "(body)"
            errors.append((where, e["msg"].removeprefix("Value error, ")))
        raise ShopError(errors) from None


def read_shop_in(raw: Any) -> ShopIn:
    return _validated(ShopIn, raw, "shops add")


def read_shop_settings(raw: Any) -> ShopSettings:
    settings = _validated(ShopSettings, raw, "shops set")
    if all(getattr(settings, field) is None for field in ShopSettings.model_fields):
        raise ShopError([("(body)", "name at least one of api_url, poll_every, ship_within, "
                                    "carrier_ids, merge")])
    return settings


def change_shop(session: Session, name: str, settings: ShopSettings) -> tuple[Shop, list[str]]:
    """The shop's settings changed (the row; its schedule is the caller's): the shop and the
    names of the settings that changed."""
    shop = get_shop(session, name)
    changed = []
    values = {
        "api_url": settings.api_url,
        "poll_every_s": None if settings.poll_every is None
        else int(settings.poll_every.total_seconds()),
        "ship_within_s": None if settings.ship_within is None
        else int(settings.ship_within.total_seconds()),
        "carrier_ids": settings.carrier_ids,
        "merge": settings.merge,
    }
    for column, value in values.items():
        if value is not None and getattr(shop, column) != value:
            setattr(shop, column, value)
            changed.append(column)
    session.add(shop)
    session.flush()
    return shop, changed


def add_shop(session: Session, ring: KeyRing, spec: ShopIn, *, now: datetime | None = None) -> Shop:
    """The new shop row (secrets sealed); ShopError 409 when the name is taken."""
    now = now or datetime.now(UTC)
    if session.get(Shop, spec.name) is not None:
        raise ShopError([("name", f"a shop named {spec.name!r} exists already")], status=409)
    shop = Shop(
        name=spec.name,
        platform=spec.platform,
        app_key=spec.app_key,
        app_secret_sealed=seal(ring, spec.app_secret, shop=spec.name, field="app_secret"),
        session_sealed=(
            seal(ring, spec.session, shop=spec.name, field="session") if spec.session else None
        ),
        api_url=spec.api_url or GATEWAYS[spec.platform],
        poll_every_s=int(spec.poll_every.total_seconds()),
        ship_within_s=int(spec.ship_within.total_seconds()),
        carrier_ids=spec.carrier_ids,
        merge=spec.merge,
        state="syncing" if spec.session else "token_expired",
        last_error=None if spec.session else "no session token yet: `oms shops token NAME`",
        synced_through=(spec.since or now - timedelta(hours=1)).astimezone(UTC),
        created_at=now,
    )
    session.add(shop)
    session.flush()
    return shop


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def public(shop: Shop) -> dict[str, Any]:
    """What `shops list --json` and `GET /v1/shops` show: never a secret or token."""
    synced = _aware(shop.synced_through)
    last_run = _aware(shop.last_run)
    return {
        "name": shop.name,
        "platform": shop.platform,
        "state": shop.state,
        "synced_through": synced.isoformat() if synced else None,
        "imported": shop.imported,
        "last_error": shop.last_error,
        "last_run": last_run.isoformat() if last_run else None,
        "api_url": shop.api_url,
        "app_key": shop.app_key,
        "poll_every_s": shop.poll_every_s,
        "ship_within_s": shop.ship_within_s,
        "carrier_ids": dict(shop.carrier_ids or {}),
        "merge": shop.merge,
        "has_session": shop.session_sealed is not None,
    }


def get_shop(session: Session, name: str) -> Shop:
    shop = session.get(Shop, name)
    if shop is None:
        raise ShopError([("name", f"no shop named {name!r}")], status=404)
    return shop


def list_shops(session: Session) -> list[dict[str, Any]]:
    return [public(s) for s in session.exec(select(Shop).order_by(col(Shop.name))).all()]


def set_state(session: Session, name: str, state: str, error: str | None = None) -> Shop:
    if state not in STATES:
        raise ValueError(f"state: {state!r} is not one of {', '.join(STATES)}")
    shop = get_shop(session, name)
    shop.state = state
    shop.last_error = error[:1000] if error else None
    session.add(shop)
    return shop


def set_token(session: Session, ring: KeyRing, name: str, token: str) -> Shop:
    """A renewed session token: sealed, the version bumped, the shop syncing again."""
    token = (token or "").strip()
    if not token or len(token) > 2000:
        raise ShopError([("session", "a session token of 1-2000 characters is required")])
    shop = get_shop(session, name)
    shop.session_sealed = seal(ring, token, shop=name, field="session")
    shop.token_version += 1
    if shop.state in ("token_expired", "failing"):
        shop.state, shop.last_error = "syncing", None
    session.add(shop)
    return shop


@dataclass(frozen=True)
class Credentials:
    """A shop's opened credentials, for one activity's calls; never logged or returned."""

    name: str
    platform: str
    api_url: str
    app_key: str
    app_secret: str
    session: str | None
    token_version: int

    def __repr__(self) -> str:
        return f"Credentials(name={self.name!r}, platform={self.platform!r})"


def credentials(session: Session, ring: KeyRing, name: str) -> Credentials:
    shop = get_shop(session, name)
    return Credentials(
        name=shop.name,
        platform=shop.platform,
        api_url=shop.api_url,
        app_key=shop.app_key,
        app_secret=open_sealed(ring, shop.app_secret_sealed, shop=name, field="app_secret"),
        session=(
            open_sealed(ring, shop.session_sealed, shop=name, field="session")
            if shop.session_sealed
            else None
        ),
        token_version=shop.token_version,
    )


def pii_log(
    session: Session, *, order_id: str | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """`oms pii-log`: each decryption, newest first."""
    query = select(PiiAccess)
    if order_id:
        query = query.where(PiiAccess.order_id == order_id)
    rows = session.exec(
        query.order_by(col(PiiAccess.at).desc(), col(PiiAccess.id).desc()).limit(limit)
    )
    return [
        {
            "at": _aware(r.at).isoformat() if r.at else None,
            "order_id": r.order_id,
            "platform": r.platform,
            "shop": r.shop,
            "fields": list(r.fields),
            "scene": r.scene,
            "outcome": r.outcome,
        }
        for r in rows.all()
    ]


def shop_orders(session: Session, name: str, *, outcome: str | None = None) -> list[ShopOrder]:
    query = select(ShopOrder).where(ShopOrder.shop == name)
    if outcome:
        query = query.where(ShopOrder.outcome == outcome)
    return list(
        session.exec(query.order_by(col(ShopOrder.first_seen), col(ShopOrder.order_id))).all()
    )


def touch_run(session: Session, name: str) -> None:
    shop = get_shop(session, name)
    shop.last_run = utcnow()
    session.add(shop)


def top_clients(factory: Any, ring: KeyRing) -> Any:
    """`shop name -> TopClient` from the shops' stored credentials (the shipping desk's Cainiao
    calls go out as the carrier's shop). The credentials are read at each call, so a renewed
    token is used at once; one client is kept per shop and token."""
    from models.db import transaction
    from platforms.errors import PlatformError
    from platforms.top import TopClient

    made: dict[tuple[str, int, str], TopClient] = {}

    def client(name: str) -> TopClient:
        with transaction(factory) as s:
            shop = s.get(Shop, name)
            creds = credentials(s, ring, name) if shop is not None else None
        if creds is None or creds.platform != "taobao":
            raise PlatformError(
                "taobao", "cainiao", msg=f"no Taobao shop named {name!r}: oms shops add {name} ..."
            )
        key = (name, creds.token_version, creds.app_key)
        if key not in made:
            made[key] = TopClient(
                api_url=creds.api_url,
                app_key=creds.app_key,
                app_secret=creds.app_secret,
                session=creds.session,
            )
        return made[key]

    return client
