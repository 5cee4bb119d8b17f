"""Shops in the database: sealed credentials, what may be shown, states, the PII log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from models.db import SessionFactory, transaction
from platforms.secrets import SealedValueError, open_sealed, seal
from platforms.shops import (
    ShopError,
    add_shop,
    credentials,
    list_shops,
    parse_carrier_ids,
    pii_log,
    read_shop_in,
    set_state,
    set_token,
)
from platforms.tables import PiiAccess
from runtime.codec import key_ring
from tests.harness import codec_keys

RING = key_ring(codec_keys.settings())
SECRET = "s3cr3t-app-secret-0123456789"
TOKEN = "6100a1b2c3d4e5f60718293a4b5c6d7e8f"


def spec(**kw: object) -> dict[str, object]:
    return {
        "name": "tb1",
        "platform": "taobao",
        "app_key": "12345678",
        "app_secret": SECRET,
        "session": TOKEN,
        "carrier_ids": "SF=44,zto=115",
    } | kw


def test_a_shop_keeps_its_secret_and_token_sealed(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        shop = add_shop(s, RING, read_shop_in(spec()))
        assert shop.state == "syncing"
    with transaction(factory) as s:
        raw = s.execute(sa.text("SELECT * FROM shops")).mappings().one()
        stored = " ".join(str(v) for v in raw.values())
        assert SECRET not in stored and TOKEN not in stored
        creds = credentials(s, RING, "tb1")
        assert (creds.app_secret, creds.session) == (SECRET, TOKEN)
        assert SECRET not in repr(creds)
        shown = list_shops(s)
    assert SECRET not in str(shown) and TOKEN not in str(shown)
    assert shown[0]["carrier_ids"] == {"SF": 44, "ZTO": 115}
    assert shown[0]["api_url"] == "https://eco.taobao.com/router/rest"
    synced = datetime.fromisoformat(shown[0]["synced_through"])
    assert abs(synced - (datetime.now(UTC) - timedelta(hours=1))) < timedelta(minutes=1)


def test_a_sealed_value_opens_only_for_its_shop_and_field() -> None:
    sealed = seal(RING, TOKEN, shop="tb1", field="session")
    assert open_sealed(RING, sealed, shop="tb1", field="session") == TOKEN
    for shop, field in (("tb2", "session"), ("tb1", "app_secret")):
        with pytest.raises(SealedValueError, match="does not open"):
            open_sealed(RING, sealed, shop=shop, field=field)
    with pytest.raises(SealedValueError, match="not a sealed value"):
        open_sealed(RING, TOKEN, shop="tb1", field="session")


def test_bad_fields_are_named() -> None:
    with pytest.raises(ShopError) as caught:
        read_shop_in(
            spec(
                name="Bad Name",
                platform="ebay",
                app_secret="",
                poll_every="soon",
                api_url="ftp://x",
                since="2026-11-26T10:00:00",
                carrier_ids="SF",
            )
        )
    fields = {f for f, _ in caught.value.errors}
    assert fields == {
        "name",
        "platform",
        "app_secret",
        "poll_every",
        "api_url",
        "since",
        "carrier_ids",
    }
    with pytest.raises(ShopError, match="no connector yet"):
        read_shop_in(spec(platform="jd"))
    with pytest.raises(ShopError, match="secret_key"):
        read_shop_in(spec(secret_key="x"))  # an unknown field is refused, not ignored
    with pytest.raises(ShopError, match="JSON object"):
        read_shop_in(["tb1"])
    with pytest.raises(ValueError, match="number"):
        parse_carrier_ids("SF=forty")


def test_states_tokens_and_a_taken_name(factory: SessionFactory) -> None:
    with transaction(factory) as s:
        add_shop(s, RING, read_shop_in(spec(session=None)))
        add_shop(s, RING, read_shop_in(spec(name="pdd1", platform="pdd")))
    with transaction(factory) as s, pytest.raises(ShopError) as caught:
        add_shop(s, RING, read_shop_in(spec()))
    assert caught.value.status == 409
    with transaction(factory) as s:
        shops = {x["name"]: x for x in list_shops(s)}
        assert shops["tb1"]["state"] == "token_expired" and not shops["tb1"]["has_session"]
        assert shops["pdd1"]["api_url"] == "https://gw-api.pinduoduo.com/api/router"
        set_state(s, "pdd1", "failing", "taobao ...: code 25 Invalid signature")
        renewed = set_token(s, RING, "tb1", "new-token")
        assert renewed.token_version == 1 and renewed.state == "syncing"
        with pytest.raises(ShopError, match="no shop named"):
            set_token(s, RING, "nope", "x")
        with pytest.raises(ShopError, match="session"):
            set_token(s, RING, "tb1", "  ")
    with transaction(factory) as s:
        assert credentials(s, RING, "tb1").session == "new-token"
        shops = {x["name"]: x for x in list_shops(s)}
        assert shops["pdd1"]["last_error"] == "taobao ...: code 25 Invalid signature"


def test_the_pii_log_lists_each_decryption_newest_first(factory: SessionFactory) -> None:
    at = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
    with transaction(factory) as s:
        for i, order in enumerate(["taobao-1", "taobao-2", "taobao-1"]):
            s.add(
                PiiAccess(
                    at=at + timedelta(minutes=i),
                    order_id=order,
                    shop="tb1",
                    platform="taobao",
                    fields=["name", "phone", "address"],
                    scene="1001",
                )
            )
    with transaction(factory) as s:
        rows = pii_log(s)
        assert [r["order_id"] for r in rows] == ["taobao-1", "taobao-2", "taobao-1"]
        assert rows[0]["at"] == (at + timedelta(minutes=2)).isoformat()
        only = pii_log(s, order_id="taobao-1")
        assert len(only) == 2 and all(r["fields"] == ["name", "phone", "address"] for r in only)


def test_the_desk_gets_a_top_client_per_shop_from_its_stored_credentials(
    factory: SessionFactory,
) -> None:
    from platforms.errors import PlatformError
    from platforms.shops import top_clients
    from platforms.standin import StandinGateway, StandinShop
    from platforms.top import top_time

    shop = StandinShop("taobao", app_key="12345678", app_secret=SECRET, session=TOKEN)
    with StandinGateway(shop) as gateway:
        with transaction(factory) as s:
            add_shop(s, RING, read_shop_in(spec(api_url=gateway.url)))
            add_shop(s, RING, read_shop_in(spec(name="pdd1", platform="pdd")))
        clients = top_clients(factory, RING)
        window = {
            "start_modified": top_time(datetime.now(UTC) - timedelta(hours=1)),
            "end_modified": top_time(datetime.now(UTC)),
        }
        assert clients("tb1").call("taobao.trades.sold.increment.get", window)["total_results"] == 0
        assert clients("tb1") is clients("tb1")
        for name in ("nope", "pdd1"):
            with pytest.raises(PlatformError, match="no Taobao shop"):
                clients(name)
        shop.renew_session("renewed")
        with transaction(factory) as s:
            set_token(s, RING, "tb1", "renewed")
        assert clients("tb1").session == "renewed"
        assert clients("tb1").call("taobao.trades.sold.increment.get", window)["total_results"] == 0
