"""One settings object for the whole system (SPEC §6).

`Settings` is read once in each entry point's ``main()`` from the environment
(``OMS_*``, nested with ``__`` such as ``OMS_PICK__REMIND_AFTER=PT2H``) and an
optional ``oms.toml``. The business part, `Policy`, is handed to every order
workflow in its input: a running order keeps the policy it started under, which
keeps the workflow deterministic and makes its behaviour explainable later.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from models.enums import Channel, ConfirmationMode, ShortagePolicy, TimeoutAction


class ConfirmationPolicy(BaseModel):
    mode: ConfirmationMode = ConfirmationMode.COD
    channel: Channel = Channel.IM
    remind_every: timedelta = timedelta(hours=4)
    max_reminders: int = 2
    timeout: timedelta = timedelta(hours=24)
    timeout_action: TimeoutAction = TimeoutAction.CANCEL
    max_rounds: int = 5


class PaymentPolicy(BaseModel):
    unpaid_window: timedelta = timedelta(hours=24)


class ShortageSettings(BaseModel):
    default: ShortagePolicy = ShortagePolicy.WAIT
    backorder_deadline: timedelta = timedelta(days=7)
    transfer_deadline: timedelta = timedelta(days=3)
    timeout_action: TimeoutAction = TimeoutAction.CANCEL
    split_allowed: bool = True
    partial_remainder: Literal["backorder", "refund"] = "backorder"
    warehouse_rule: Literal["same_province_first", "priority"] = "same_province_first"


class ApprovalPolicy(BaseModel):
    threshold: Decimal = Decimal("5000.00")
    escalate_after: timedelta = timedelta(hours=4)


class FraudPolicy(BaseModel):
    window: timedelta = timedelta(hours=24)
    max_orders_per_phone: int = 5
    max_orders_per_address: int = 5
    blocked_phones: list[str] = Field(default_factory=list)
    blocked_addresses: list[str] = Field(default_factory=list)
    high_value: Decimal = Decimal("10000.00")
    max_qty_per_line: int = 50
    qty_factor_over_usual: int = 10


class Coupon(BaseModel):
    code: str
    kind: Literal["percent", "fixed", "threshold", "free_shipping"]
    value: Decimal = Decimal("0")
    threshold: Decimal = Decimal("0")
    stackable: bool = False


class PricingPolicy(BaseModel):
    price_tolerance: Decimal = Decimal("0.00")
    coupons: list[Coupon] = Field(
        default_factory=lambda: [
            Coupon(code="SAVE10", kind="percent", value=Decimal("10")),
            Coupon(code="MINUS20", kind="fixed", value=Decimal("20"), threshold=Decimal("100")),
            Coupon(code="FULL200", kind="threshold", value=Decimal("20"), threshold=Decimal("200")),
            Coupon(code="FREESHIP", kind="free_shipping", stackable=True),
        ]
    )
    free_shipping_over: Decimal | None = Decimal("99.00")
    base_shipping_fee: Decimal = Decimal("10.00")
    remote_provinces: list[str] = Field(
        default_factory=lambda: ["新疆维吾尔自治区", "西藏自治区", "青海省", "内蒙古自治区"]
    )
    remote_shipping_fee: Decimal = Decimal("25.00")
    per_kg_over_first: Decimal = Decimal("2.00")


class PickPolicy(BaseModel):
    remind_after: timedelta = timedelta(hours=4)
    escalate_after: timedelta = timedelta(hours=12)
    carriers: list[str] = Field(
        default_factory=lambda: ["SF", "ZTO", "YTO", "STO", "YUNDA", "JD", "EMS", "DEMO"]
    )
    complete_on: Literal["shipped", "delivered"] = "shipped"


class ShipByPolicy(BaseModel):
    # an order not shipped this long before its platform's ship-by time is flagged
    # `ship_by_soon` (OMS_POLICY__SHIP_BY__WARN); `ship_by_late` once it is past (issue 19)
    warn: timedelta = timedelta(hours=6)
class ShippingPolicy(BaseModel):
    """The shipping desk (SPEC §3.10): where a parcel counts as shipped, the label size."""

    # Whether each release gets its parcel, carrier and waybill (off: the warehouse's own WMS
    # does labels and reports `shipped` itself).
    desk: bool = True
    ship_on: Literal["print", "verify", "weigh"] = "weigh"
    label_size: Literal["76x130", "100x180"] = "76x130"


class MergePolicy(BaseModel):
    """Merged parcels (合单): orders to one receiver released within `window` share one."""

    enabled: bool = True
    window: timedelta = timedelta(minutes=30)


class WeighPolicy(BaseModel):
    """The weigh at the packing desk: expected = catalog weights + packaging, ± tolerance."""

    tolerance: Decimal = Field(default=Decimal("0.10"), ge=0, le=1)
    min_tolerance_g: int = Field(default=50, ge=0)
    packaging_g: int = Field(default=0, ge=0)


class Policy(BaseModel):
    """What an order workflow needs to know of the merchant's rules."""

    confirmation: ConfirmationPolicy = Field(default_factory=ConfirmationPolicy)
    payment: PaymentPolicy = Field(default_factory=PaymentPolicy)
    shortage: ShortageSettings = Field(default_factory=ShortageSettings)
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)
    fraud: FraudPolicy = Field(default_factory=FraudPolicy)
    pricing: PricingPolicy = Field(default_factory=PricingPolicy)
    pick: PickPolicy = Field(default_factory=PickPolicy)
    ship_by: ShipByPolicy = Field(default_factory=ShipByPolicy)
    # Whether the workflow upserts the custom search attributes of SPEC §5.5.
    # On by default; off only for a namespace where they are not registered.
    search_attributes: bool = True
    # Whether outbound events are pushed to a webhook (set from webhook_url).
    webhook_enabled: bool = False
    # The shipping desk (issue 20): shipping.ship_on / label_size, merge.*, weigh.*.
    shipping: ShippingPolicy = Field(default_factory=ShippingPolicy)
    merge: MergePolicy = Field(default_factory=MergePolicy)
    weigh: WeighPolicy = Field(default_factory=WeighPolicy)


class Settings(BaseSettings):
    """Process settings: where things are, plus the business `Policy`."""

    model_config = SettingsConfigDict(
        env_prefix="OMS_",
        env_nested_delimiter="__",
        toml_file="oms.toml",
        extra="ignore",
    )

    home: Path = Path(".oms")
    database_url: str | None = None
    task_queue: str = "orders"
    temporal_address: str = Field(
        default="localhost:7233",
        validation_alias=AliasChoices("TEMPORAL_ADDRESS", "OMS_TEMPORAL_ADDRESS"),
    )
    temporal_namespace: str = Field(
        default="default",
        validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "OMS_TEMPORAL_NAMESPACE"),
    )
    webhook_url: str | None = None
    # Standard Webhooks secrets, `whsec_` + base64 of >= 24 random bytes, comma-separated,
    # newest first (OMS_WEBHOOK_SECRETS). No default: a URL without one stops the worker.
    webhook_secrets: SecretStr | None = None
    webhook_timeout: float = 10.0
    # Payload-codec keys, `id:base64key` pairs, newest first (OMS_CODEC_KEYS); unset: the
    # embedded default key file under `home` (runtime/codec.py). No key lives in code.
    codec_keys: SecretStr | None = None
    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: str = "INFO"
    policy: Policy = Field(default_factory=Policy)
    # The HTTP service (`oms serve`, service/): where it listens, the console's cookie secret
    # (no default: made and kept under `home` only in --dev and the demo), the Temporal UI
    # origins allowed to call its codec endpoints, and where the worker's SDK metrics go.
    http_address: str = "127.0.0.1:8080"
    session_secret: SecretStr | None = None
    session_cookie_secure: bool = False
    codec_cors_origins: list[str] | None = None
    sdk_metrics_address: str = "127.0.0.1:9464"
    # The worker's workflow cache (OMS_WORKFLOW_CACHE): at most this many open orders kept
    # in memory between their tasks (the SDK's `max_cached_workflows`). One that is evicted
    # is rebuilt from its history when it next wakes (a replay: CPU, never a lost step), so
    # waiting orders beyond it cost nothing in memory. 0 turns the cache off.
    workflow_cache: int = Field(default=1000, ge=0)
    # The embedded dev server's SQLite `synchronous` (OMS_DEV_SERVER_SYNCHRONOUS), in WAL
    # mode: `normal` survives a crash of the server process and loses at most the last
    # transactions on a power cut; `full` syncs every commit (slower; survives that too).
    dev_server_synchronous: Literal["normal", "full"] = "normal"
    # The merchant's time zone (OMS_TIMEZONE, an IANA name): times in the console, the report,
    # `status` and `list` are shown in it, with the zone named. The API keeps ISO 8601 + offset.
    timezone: str = "Asia/Shanghai"
    # The key of the search index's hashes of buyers' names and phones' last four digits
    # (OMS_SEARCH_KEY, reads/search.py). No default: unset, those are neither indexed nor
    # searchable. After setting or changing it: `oms search reindex`.
    search_key: SecretStr | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"OMS_TIMEZONE: unknown time zone {value!r} (an IANA name)") from exc
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.home / 'oms.db').resolve()}"

    def order_policy(self) -> Policy:
        """The policy snapshot handed to a new order workflow."""
        return self.policy.model_copy(update={"webhook_enabled": bool(self.webhook_url)})

    @property
    def http_host_port(self) -> tuple[str, int]:
        host, _, port = self.http_address.rpartition(":")
        return (host.strip("[]") or "127.0.0.1"), int(port or 8080)

    @property
    def temporal_host_port(self) -> tuple[str, int]:
        host, _, port = self.temporal_address.rpartition(":")
        return (host or "localhost"), int(port or 7233)


def kept_secret(path: Path) -> str:
    """A development secret kept in a file under OMS_HOME (made once, readable by its owner only):
    what `--dev` and the demo use where production sets a variable (no secret has a default in code)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        value = path.read_text(encoding="ascii").strip()
        if len(value) >= 32:
            return value
    except FileNotFoundError:
        pass
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(value + "\n")
    os.chmod(path, 0o600)
    return value
