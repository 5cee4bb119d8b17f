"""Bad input at submit: one clear message per bad field, and nothing hostile gets past unnoticed."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commands.context import CliError
from commands.intake import read_orders
from intake.check import check_order
from models.documents import OrderDocument, check_document, parse_order
from models.settings import Policy
from models.types import CatalogEntry, FraudContext

GOOD: dict[str, Any] = {
    "order_id": "TB20261126-0001",
    "platform": "taobao",
    "created_at": "2026-11-26T10:00:00+08:00",
    "buyer": {"name": "张三", "phone": "13812345678", "id": "buyer-1"},
    "address": {
        "country": "CN",
        "province": "浙江省",
        "city": "杭州市",
        "district": "西湖区",
        "detail": "文三路100号3幢501室",
        "postal_code": "310000",
    },
    "lines": [{"sku": "TSHIRT-RED-M", "qty": 2, "unit_price": "59.00"}],
    "coupon_code": None,
    "discount": "0.00",
    "shipping_fee": "10.00",
    "total": "128.00",
    "payment": {
        "status": "paid",
        "method": "alipay",
        "amount": "128.00",
        "transaction_id": "2026112622001",
    },
    "remarks": "请放快递柜",
    "shortage_policy": None,
}

CATALOG = {
    sku: CatalogEntry(sku=sku, name=name, price=Decimal(price), weight_g=300, usual_qty=2)
    for sku, name, price in [
        ("TSHIRT-RED-M", "红色T恤 M码", "59.00"),
        ("MUG-WHITE", "白色马克杯", "35.00"),
        ("PHONE-X1", "X1 手机", "6999.00"),
    ]
}


def with_change(path: str, value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    """GOOD with one field (dotted path, list indexes as numbers) replaced or removed."""
    doc = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    target: Any = doc
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if delete:
        del target[last]
    elif isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return doc


def test_the_good_order_is_accepted():
    doc, messages = parse_order(GOOD)
    assert messages == []
    assert doc is not None and doc.order_id == "TB20261126-0001"
    assert doc.total == Decimal("128.00")


@pytest.mark.parametrize("raw", [[], [GOOD], "TB-1", 42, None, True])
def test_a_document_that_is_not_an_object_is_refused(raw):
    doc, messages = parse_order(raw)
    assert doc is None
    assert len(messages) == 1
    assert messages[0].startswith("(document): must be a JSON object, not ")


BAD_FIELDS = [
    # (path, value or DELETE, field path in the message, words of the message)
    ("order_id", "DELETE", "order_id", "Field required"),
    ("lines", "DELETE", "lines", "Field required"),
    ("lines", [], "lines", "at least 1 item"),
    ("lines", "TSHIRT-RED-M x2", "lines", "valid list"),
    ("lines.0", "TSHIRT-RED-M", "lines.0", "valid dictionary"),
    ("lines.0.qty", 0, "lines.0.qty", "greater than 0"),
    ("lines.0.qty", -1, "lines.0.qty", "greater than 0"),
    ("lines.0.qty", 1.5, "lines.0.qty", "valid integer"),
    ("lines.0.qty", "2", "lines.0.qty", "valid integer"),
    ("lines.0.qty", True, "lines.0.qty", "valid integer"),
    ("lines.0.qty", None, "lines.0.qty", "valid integer"),
    ("lines.0.qty", 10**9, "lines.0.qty", "less than or equal to 100000"),
    ("lines.0.sku", "", "lines.0.sku", "at least 1 character"),
    ("lines.0.sku", "S" * 65, "lines.0.sku", "at most 64 characters"),
    ("total", "12.345", "total", "more than 2 decimal places"),
    ("total", "abc", "total", "valid decimal"),
    ("total", "-1", "total", "must not be negative"),
    ("total", "NaN", "total", "finite"),
    ("total", "Infinity", "total", "finite"),
    ("total", "1e9", "total", "implausibly large"),
    ("discount", "0.001", "discount", "more than 2 decimal places"),
    ("lines.0.unit_price", "5 9", "lines.0.unit_price", "valid decimal"),
    ("payment.amount", "-0.01", "payment.amount", "must not be negative"),
    ("payment.status", "maybe", "payment.status", "'paid', 'pending' or 'cod'"),
    ("shortage_policy", "later", "shortage_policy", "'partial', 'cancel', 'wait' or 'transfer'"),
    ("created_at", "2026-11-26T10:00:00", "created_at", "must carry a timezone offset"),
    ("created_at", "yesterday", "created_at", "valid datetime"),
    ("buyer.name", "张\x00三", "buyer.name", "control character (U+0000)"),
    ("address.detail", "文三路\u202e100号", "address.detail", "control character (U+202E)"),
    ("remarks", "请放\x1b[31m快递柜", "remarks", "control character (U+001B)"),
    ("lines.0.sku", "TSHIRT\u200b-RED-M", "lines.0.sku", "control character (U+200B)"),
    ("remarks", "快" * 501, "remarks", "at most 500 characters"),
    ("buyer.name", "n" * 101, "buyer.name", "at most 100 characters"),
    ("address.detail", "d" * 201, "address.detail", "at most 200 characters"),
    ("address.country", "CHN", "address.country", "at most 2 characters"),
    ("order_id", "A" * 65, "order_id", "at most 64 characters"),
    ("order_id", "", "order_id", "1-64 characters of letters, digits"),
    ("order_id", "TB 2026/1", "order_id", "1-64 characters of letters, digits"),
    ("order_id", "-TB1", "order_id", "starting with a letter or digit"),
    ("order_id", "订单1", "order_id", "1-64 characters of letters, digits"),
    ("order_id", "1'; DROP TABLE orders;--", "order_id", "1-64 characters of letters, digits"),
    ("order_id", 20261126, "order_id", "valid string"),
    ("buyer", "张三", "buyer", "valid dictionary"),
    ("payment", None, "payment", "valid dictionary"),
]


@pytest.mark.parametrize(("path", "value", "field", "words"), BAD_FIELDS)
def test_each_bad_field_gets_one_clear_message_naming_it(path, value, field, words):
    raw = with_change(path, delete=True) if value == "DELETE" else with_change(path, value)
    doc, messages = parse_order(raw)
    assert doc is None
    assert len(messages) == 1, messages
    assert messages[0].startswith(f"{field}: "), messages
    assert words in messages[0], messages
    assert "items after validation" not in messages[0]
    assert "Value error" not in messages[0]


def test_several_bad_fields_get_one_message_each():
    raw = with_change("lines.0.qty", 0)
    raw["total"] = "abc"
    raw["buyer"]["name"] = "\x07"
    doc, messages = parse_order(raw)
    assert doc is None
    assert sorted(m.split(":", 1)[0] for m in messages) == ["buyer.name", "lines.0.qty", "total"]


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("order_id", "  TB-1  ", "TB-1"),
        ("remarks", "<script>alert('x')</script>", "<script>alert('x')</script>"),
        ("buyer.name", "Robert'); DROP TABLE orders;--", "Robert'); DROP TABLE orders;--"),
        ("remarks", "👨‍👩‍👧 放门口 🙏", "👨‍👩‍👧 放门口 🙏"),
        ("total", 128, Decimal("128")),
        ("total", "1E+2", Decimal("100")),
        ("created_at", "2026-11-26T02:00:00Z", datetime(2026, 11, 26, 2, tzinfo=UTC)),
    ],
)
def test_hostile_but_well_formed_values_are_kept_as_data(path, value, expected):
    doc, messages = parse_order(with_change(path, value))
    assert messages == []
    got: Any = doc
    for part in path.split("."):
        got = getattr(got, part)
    assert got == expected


def test_unknown_fields_are_kept_and_ignored():
    raw = {
        **GOOD,
        "x_platform_flags": {"vip": True},
        "lines": [{**GOOD["lines"][0], "gift_wrap": 1}],
    }
    doc, messages = parse_order(raw)
    assert messages == []
    assert doc.model_extra == {"x_platform_flags": {"vip": True}}
    assert doc.model_dump(mode="json")["lines"][0]["gift_wrap"] == 1


# ------------------------------------------------------------ hypothesis


HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(
        [
            "'; DROP TABLE orders; --",
            "1 OR 1=1",
            "<img src=x onerror=alert(1)>",
            "</script><script>fetch('//evil')</script>",
            "{{7*7}}${jndi:ldap://x}",
            "😀👍🏽🇨🇳",
            "\u202eRLO",
            "\x00\x01\x7f",
            "\ud800",
            "\u2028line\u2029",
            "　全角空格　",
            "１２３",
            "",
            " ",
        ]
    ),
    st.text(min_size=1000, max_size=1000).map(lambda s: s * 20),
)
MONEYISH = st.one_of(
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.decimals(min_value=-10, max_value=10**9, places=3).map(str),
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=-(10**12), max_value=10**12),
    HOSTILE_TEXT,
    st.none(),
)
JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | HOSTILE_TEXT,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
QTYISH = st.one_of(
    st.integers(min_value=-5, max_value=200_000),
    st.floats(allow_nan=True),
    st.booleans(),
    st.sampled_from(["2", "1.5", "-1", "", "二"]),
    st.none(),
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A field's value: usually plausible, sometimes anything at all."""
    return st.one_of(strategy, strategy, JSONISH)


HOSTILE_LINE = st.fixed_dictionaries(
    {"sku": maybe(st.sampled_from(list(CATALOG)) | HOSTILE_TEXT), "qty": QTYISH},
    optional={"unit_price": MONEYISH, "name": HOSTILE_TEXT, "attributes": JSONISH},
)
HOSTILE_ORDER = st.fixed_dictionaries(
    {
        "order_id": maybe(st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,70}\Z") | HOSTILE_TEXT),
        "lines": maybe(st.lists(HOSTILE_LINE, max_size=3)),
    },
    optional={
        "platform": maybe(HOSTILE_TEXT),
        "created_at": maybe(
            st.datetimes(timezones=st.none() | st.just(UTC)).map(datetime.isoformat) | HOSTILE_TEXT
        ),
        "buyer": maybe(
            st.fixed_dictionaries({}, optional={"name": HOSTILE_TEXT, "phone": HOSTILE_TEXT})
        ),
        "address": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    k: HOSTILE_TEXT for k in ("country", "province", "city", "district", "detail")
                },
            )
        ),
        "discount": MONEYISH,
        "shipping_fee": MONEYISH,
        "total": MONEYISH,
        "payment": maybe(
            st.fixed_dictionaries(
                {},
                optional={
                    "status": st.sampled_from(["paid", "pending", "cod", "PAID", ""]),
                    "amount": MONEYISH,
                },
            )
        ),
        "remarks": maybe(HOSTILE_TEXT),
        "shortage_policy": maybe(
            st.sampled_from(["wait", "cancel", "partial", "transfer", "later"])
        ),
        "x-unknown": JSONISH,
    },
)

# Text the shape check must accept: no control / format / surrogate characters, within limits.
CLEAN_CHARS = st.characters(exclude_categories=("Cc", "Cf", "Cs"))


def clean_text(max_size: int, min_size: int = 0) -> st.SearchStrategy[str]:
    text = st.text(CLEAN_CHARS, max_size=max_size) | st.sampled_from(
        [
            "'; DROP TABLE orders; --",
            "<b onmouseover=alert(1)>hi</b>",
            "😀👍🏽🇨🇳",
            "１２３",
            "\u2028",
        ]
    )
    return text.filter(lambda s: min_size <= len(s.strip()) <= max_size)


MONEY = st.one_of(
    st.decimals(min_value=0, max_value=Decimal("99999999.99"), places=2).map(str),
    st.decimals(min_value=0, max_value=Decimal("9999.9"), places=1),
    st.integers(min_value=0, max_value=99_999_999),
)
ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=8)), timezone(-timedelta(hours=9, minutes=30))]
)
WELL_FORMED_ORDER = st.fixed_dictionaries(
    {
        "order_id": st.from_regex(r"\A[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}\Z"),
        "lines": st.lists(
            st.fixed_dictionaries(
                {
                    "sku": st.sampled_from(list(CATALOG)) | clean_text(64, min_size=1),
                    "qty": st.integers(min_value=1, max_value=100_000),
                },
                optional={"unit_price": MONEY, "name": clean_text(200)},
            ),
            min_size=1,
            max_size=4,
        ),
    },
    optional={
        "platform": clean_text(40),
        "created_at": st.datetimes(timezones=ZONES).map(datetime.isoformat),
        "buyer": st.fixed_dictionaries(
            {}, optional={"name": clean_text(100), "phone": clean_text(40), "id": clean_text(100)}
        ),
        "address": st.fixed_dictionaries(
            {},
            optional={
                "country": st.sampled_from(["CN", "US", "HK", "", "ZZ"]),
                "province": st.sampled_from(["浙江省", "上海", "广东省"]) | clean_text(50),
                "city": st.sampled_from(["杭州市", "上海市", "广州市"]) | clean_text(50),
                "district": st.sampled_from(["西湖区", "浦东新区", "天河区"]) | clean_text(50),
                "detail": clean_text(200),
                "postal_code": clean_text(20),
            },
        ),
        "coupon_code": clean_text(40) | st.none(),
        "discount": MONEY,
        "shipping_fee": MONEY,
        "total": MONEY,
        "payment": st.fixed_dictionaries(
            {},
            optional={
                "status": st.sampled_from(["paid", "pending", "cod"]),
                "method": clean_text(40),
                "amount": MONEY,
                "transaction_id": clean_text(100),
            },
        ),
        "remarks": clean_text(500) | st.none(),
        "shortage_policy": st.sampled_from(["wait", "cancel", "partial", "transfer", None]),
        "x-unknown": JSONISH,
    },
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def field_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every field of an order (objects and list items included), unknown fields excepted."""
    if isinstance(value, dict):
        items = [(k, v) for k, v in value.items() if k != "x-unknown"]
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return []
    found = []
    for key, child in items:
        found.append((*prefix, key))
        found.extend(field_paths(child, (*prefix, key)))
    return found


@st.composite
def one_field_spoiled(draw: st.DrawFn) -> tuple[dict[str, Any], str, Any]:
    raw = draw(WELL_FORMED_ORDER)
    path = draw(st.sampled_from(field_paths(raw)))
    value = draw(st.one_of(QTYISH, MONEYISH, JSONISH))
    target: Any = raw
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return raw, ".".join(str(p) for p in path), value


def assert_round_trips(doc: OrderDocument) -> None:
    dumped = doc.model_dump(mode="json")
    again, messages = parse_order(json.loads(json.dumps(dumped)))
    assert messages == []
    assert again == doc
    assert again.model_dump(mode="json") == dumped


def assert_checks_run(doc: OrderDocument) -> None:
    findings = check_order(doc, catalog=CATALOG, policy=Policy(), fraud=FraudContext())
    assert all(f.field for f in findings)


@FAST
@given(raw=HOSTILE_ORDER)
def test_parse_order_never_raises_on_malformed_or_hostile_orders(raw):
    doc, messages = parse_order(raw)
    assert (doc is None) == bool(messages)
    if doc is None:
        for message in messages:
            path, _, text = message.partition(": ")
            assert path and text, message
            assert path == "(document)" or path.split(".")[0] in raw or text == "Field required"
    else:
        assert_round_trips(doc)
        assert_checks_run(doc)


@FAST
@given(case=one_field_spoiled())
def test_one_spoiled_field_is_the_only_one_named(case):
    raw, spoiled, value = case
    doc, messages = parse_order(raw)
    if doc is not None:  # the new value happened to be acceptable there
        assert_round_trips(doc)
        assert_checks_run(doc)
        return
    named = [m.partition(": ")[0] for m in messages]
    assert all(p == spoiled or p.startswith(spoiled + ".") for p in named), (spoiled, messages)
    if not isinstance(value, dict | list):
        assert len(messages) == 1, messages


@FAST
@given(raw=JSONISH)
def test_parse_order_never_raises_on_any_json_value(raw):
    doc, messages = parse_order(raw)
    assert doc is None and messages


@FAST
@given(raw=WELL_FORMED_ORDER)
def test_well_formed_orders_are_accepted_round_trip_and_check_without_error(raw):
    doc, messages = parse_order(raw)
    assert messages == [], messages
    assert_round_trips(doc)
    assert_checks_run(doc)


@FAST
@given(raw=st.one_of(HOSTILE_ORDER, JSONISH))
def test_the_intake_check_never_raises_and_every_answer_can_be_printed(raw):
    checked = check_document(raw)
    assert (checked.document is None) == bool(checked.errors)
    for message in checked.messages():
        field, _, text = message.partition(": ")
        assert field and text, message
        message.encode("utf-8")  # no lone surrogate reaches stdout or a JSON answer
    if checked.document is not None:
        assert_round_trips(checked.document)
        checked.document.model_dump_json().encode("utf-8")


@FAST
@given(raw=WELL_FORMED_ORDER)
def test_the_intake_check_takes_what_the_shape_check_takes_within_its_limits(raw):
    doc, _ = parse_order(raw)
    checked = check_document(raw)
    if checked.document is None:  # only by a limit of its own: the date window, a size, or
        # text that is not valid Unicode (a lone surrogate, which no JSON answer could carry)
        assert all(f == "created_at" or " than " in m or "lone surrogate" in m
                   for f, m in checked.errors), checked.errors
        assert len({f for f, _ in checked.errors}) == len(checked.errors)  # one message a field
    else:
        assert checked.document == doc


# ------------------------------------------------------------- the CLI reader


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def raws(entries: list[Any]) -> list[Any]:
    assert all(e.unreadable is None for e in entries), [e.unreadable for e in entries]
    return [e.raw for e in entries]


def test_read_orders_takes_a_json_array(tmp_path):
    second = {**GOOD, "order_id": "TB-2"}
    items = raws(read_orders(
        write(tmp_path, "orders.json", json.dumps([GOOD, second], ensure_ascii=False))
    ))
    assert [parse_order(i)[0].order_id for i in items] == ["TB20261126-0001", "TB-2"]


def test_read_orders_takes_json_lines_and_reports_the_one_broken_line(tmp_path):
    lines = [
        json.dumps(GOOD, ensure_ascii=False),
        '{"order_id": "TB-2", "lines": [',
        "",
        json.dumps(
            {**GOOD, "order_id": "TB-3", "remarks": "第一行\u2028第二行"}, ensure_ascii=False
        ),
    ]
    items = read_orders(write(tmp_path, "orders.jsonl", "\n".join(lines) + "\n"))
    assert [i.where for i in items] == ["orders.jsonl:1", "orders.jsonl:2", "orders.jsonl:4"]
    assert parse_order(items[0].raw)[0].order_id == "TB20261126-0001"
    assert items[1].unreadable.startswith("not valid JSON")
    assert parse_order(items[2].raw)[0].remarks == "第一行\u2028第二行"


def test_read_orders_reports_a_single_broken_line_instead_of_crashing(tmp_path):
    (item,) = read_orders(write(tmp_path, "one.jsonl", '{"order_id": "TB-1", '))
    assert item.unreadable.startswith("not valid JSON")
    assert item.check().messages() == [f"(document): {item.unreadable}"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("[{]", "closes nothing open"),
        ('[{"order_id": "A"}', "never ends"),
        ('[{"order_id": "A}]', "string that never ends"),
        ('[{"order_id": "A"}] trailing', "text after the array"),
    ],
)
def test_read_orders_refuses_a_file_whose_array_cannot_be_told_into_documents(tmp_path, text, words):
    with pytest.raises(CliError, match=words):
        read_orders(write(tmp_path, "bad.json", text))


def test_read_orders_groups_csv_rows_of_one_order_into_its_lines(tmp_path):
    csv_text = (
        "order_id,platform,created_at,buyer_name,buyer_phone,province,city,district,detail,"
        "sku,qty,unit_price,total,payment_status,payment_amount\n"
        "TB-9,taobao,2026-11-26T10:00:00+08:00,张三,13812345678,浙江省,杭州市,西湖区,文三路100号,"
        "TSHIRT-RED-M,2,59.00,153.00,paid,153.00\n"
        "TB-9,,,,,,,,,MUG-WHITE,1,35.00,,,\n"
    )
    (raw,) = raws(read_orders(write(tmp_path, "orders.csv", csv_text)))
    doc, messages = parse_order(raw)
    assert messages == []
    assert [(li.sku, li.qty, li.unit_price) for li in doc.lines] == [
        ("TSHIRT-RED-M", 2, Decimal("59.00")),
        ("MUG-WHITE", 1, Decimal("35.00")),
    ]
    assert doc.buyer.name == "张三" and doc.address.district == "西湖区"
    assert doc.payment.amount == Decimal("153.00")


def test_a_short_or_bad_csv_row_becomes_a_message_not_a_crash(tmp_path):
    csv_text = (
        "order_id,sku,qty,unit_price\nTB-1,MUG-WHITE\nTB-2,MUG-WHITE,²,1\nTB-3,MUG-WHITE,1.5,1\n"
    )
    items = raws(read_orders(write(tmp_path, "short.csv", csv_text)))
    outcomes = {i["order_id"]: parse_order(i)[1] for i in items}
    assert outcomes == {
        "TB-1": ["lines.0.qty: Input should be a valid integer"],
        "TB-2": ["lines.0.qty: Input should be a valid integer"],
        "TB-3": ["lines.0.qty: Input should be a valid integer"],
    }
