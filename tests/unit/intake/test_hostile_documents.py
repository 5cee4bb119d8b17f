"""Hostile documents: each one is one rejection naming its field, at intake (the CLI's reader and
the HTTP body alike), and one that gets past intake (started before these rules, or by hand in
Temporal) is refused by `check_order` at its first attempt and holds the order: never a crash,
never an endless retry, never a failed workflow.

`HOSTILE` is the catalogue the storm drill (`tests/e2e/test_hostile_storm.py`) submits too.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy.exc
from pydantic import ValidationError
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.orders import OrderActivities
from commands.intake import answer_entries, body_documents, parse_document, read_orders, split_array
from models.db import make_engine, migrate, session_factory
from models.documents import OrderDocument, check_document
from models.errors import is_bad_data, no_retry_on_bad_data
from models.payloads import CheckOrderInput
from models.settings import Policy
from tests.harness.documents import order_doc
from tests.harness.shop import PATIENCE, running_shop

GOOD: dict[str, Any] = order_doc("good")


def good(order_id: str, **changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(GOOD)
    doc["order_id"] = order_id
    doc.update(changes)
    return doc


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def text(doc: Any) -> str:
    return json.dumps(doc)  # ASCII: a lone surrogate travels as its escape, as platforms send it


@dataclass(frozen=True)
class Hostile:
    """One kind of hostile document: its JSON text for an order id, the field its rejection
    must name (a prefix of the path) and words of the message."""

    kind: str
    make: Callable[[str], str]
    field: str
    words: str
    # as check_order would get it past intake (None: no OrderDocument can hold it)
    stored: Callable[[str], dict[str, Any]] | None = None
    named: bool = True  # the answer names the document by its order_id


def _with_text(key: str, value: str) -> Callable[[str], str]:
    return lambda oid: text(good(oid, **{key: value}))


HOSTILE: list[Hostile] = [
    Hostile("array nested 100,000 deep", lambda oid: "[" * 100_000 + "]" * 100_000,
            "(document)", "nested more than 32 levels deep", named=False),
    Hostile("object nested 50,000 deep", lambda oid: '{"a":' * 50_000 + "1" + "}" * 50_000,
            "a.a.a.a.a", "nested more than 32 levels deep", named=False),
    Hostile("unknown field nested 500 deep",
            lambda oid: text(good(oid, x_meta=nested(500))), "x_meta.a.a.a.a",
            "nested more than 32 levels deep", stored=lambda oid: good(oid, x_meta=nested(500))),
    Hostile("unknown field of 3,000,000 characters",
            lambda oid: text(good(oid, x_blob="z" * 3_000_000)), "x_blob",
            "longer than 4000 characters", stored=lambda oid: good(oid, x_blob="z" * 3_000_000)),
    Hostile("unknown field of 20 kB", lambda oid: text(good(oid, x_big=["y" * 1000] * 20)),
            "x_big", "unknown field larger than 16 kB"),
    Hostile("document over 256 kB",
            lambda oid: text(good(oid, lines=[{**GOOD["lines"][0], "attributes": {
                f"k{i}": "v" * 3000 for i in range(100)}}])),
            "(document)", "larger than 256 kB"),
    Hostile("lone surrogate in order_id", lambda oid: text(good(oid + "\ud800")),
            "order_id", "lone surrogate (U+D800", named=False),
    Hostile("lone surrogate in buyer.name",
            lambda oid: text(good(oid, buyer={**GOOD["buyer"], "name": "张\udfff"})),
            "buyer.name", "lone surrogate (U+DFFF"),
    Hostile("lone surrogate in an unknown field's name",
            lambda oid: text(good(oid, **{"x\ud801": 1})), "x\\ud801", "lone surrogate"),
    Hostile("created_at 0001-01-01", _with_text("created_at", "0001-01-01T00:00:00+08:00"),
            "created_at", "must lie between 2000-01-01",
            stored=lambda oid: good(oid, created_at="0001-01-01T00:00:00+08:00")),
    Hostile("created_at 9999-12-31", _with_text("created_at", "9999-12-31T23:59:59+00:00"),
            "created_at", "must lie between 2000-01-01",
            stored=lambda oid: good(oid, created_at="9999-12-31T23:59:59+00:00")),
    Hostile("created_at 1999-12-31", _with_text("created_at", "1999-12-31T23:59:59+00:00"),
            "created_at", "must lie between 2000-01-01"),
    Hostile("created_at three days ahead",
            _with_text("created_at", (datetime.now(UTC) + timedelta(days=3)).isoformat()),
            "created_at", "a day from now"),
    Hostile("a number", lambda oid: "42", "(document)", "must be a JSON object, not number",
            named=False),
    Hostile("null", lambda oid: "null", "(document)", "not null", named=False),
    Hostile("a string", lambda oid: json.dumps(oid), "(document)", "not string", named=False),
    Hostile("an empty array", lambda oid: "[]", "(document)", "not array", named=False),
    Hostile("qty as words", lambda oid: text(good(oid, lines=[{"sku": "TSHIRT-RED-M", "qty": "two"}])),
            "lines.0.qty", "valid integer"),
    Hostile("total not a number", _with_text("total", "abc"), "total", "valid decimal"),
    Hostile("no lines", lambda oid: text({k: v for k, v in good(oid).items() if k != "lines"}),
            "lines", "Field required"),
    Hostile("not JSON", lambda oid: f'{{"order_id": "{oid}" "lines": []}}', "(document)",
            "not valid JSON", named=False),
    Hostile("NaN", lambda oid: text(good(oid)).replace('"118.00"', "NaN", 1), "(document)",
            "NaN is not a JSON number", named=False),
    Hostile("a number of 5,000 digits", lambda oid: text(good(oid)).replace('"118.00"', "1" * 5000, 1),
            "(document)", "more than 4300 digits", named=False),
]


def check_answer(answer: Any, hostile: Hostile, oid: str) -> None:
    assert answer.result == "rejected", (hostile.kind, answer)
    fields = [f for f, _ in answer.errors]
    assert any(f.startswith(hostile.field) for f in fields), (hostile.kind, answer.errors)
    assert any(hostile.words in m for _, m in answer.errors), (hostile.kind, answer.errors)
    assert answer.order_id == (oid if hostile.named else None), (hostile.kind, answer.order_id)
    answer.line().encode("utf-8")  # printable: nothing that stdout could not encode


# ------------------------------------------------------------------- intake


def test_a_file_of_every_hostile_kind_answers_each_document_and_takes_the_good_ones(tmp_path):
    oids = [f"HOSTILE-{i}" for i in range(len(HOSTILE))]
    texts = [text(good("GOOD-1"))]
    texts += [h.make(oid) for h, oid in zip(HOSTILE, oids, strict=True)]
    texts += [text(good("GOOD-2")), text(good("GOOD-1"))]
    path = tmp_path / "hostile.json"
    path.write_text("[\n" + ",\n".join(texts) + "\n]", encoding="utf-8")

    answers = answer_entries(read_orders(path))

    assert len(answers) == len(texts)
    assert [a.line() for a in (answers[0], answers[-2], answers[-1])] == [
        "GOOD-1: None", "GOOD-2: None", "GOOD-1: duplicate"]  # None: valid, to be started
    for answer, hostile, oid in zip(answers[1:-2], HOSTILE, oids, strict=True):
        check_answer(answer, hostile, oid)
        assert answer.where.startswith("hostile.json[")


@pytest.mark.parametrize("hostile", HOSTILE, ids=[h.kind for h in HOSTILE])
def test_each_hostile_kind_is_one_rejection_as_a_json_line_and_in_an_http_body(tmp_path, hostile):
    oid = "HOSTILE-1"
    line = hostile.make(oid)
    path = tmp_path / "one.jsonl"
    path.write_text(f"{text(good('GOOD-1'))}\n{line}\n", encoding="utf-8")
    first, answer = answer_entries(read_orders(path))
    assert first.result is None and first.order_id == "GOOD-1"
    check_answer(answer, hostile, oid)
    body = f"[{text(good('GOOD-1'))}, {line}]".encode()
    first, answer = answer_entries(body_documents(body))
    assert first.result is None
    check_answer(answer, hostile, oid)


def test_bytes_that_are_not_utf8_reject_only_the_document_holding_them(tmp_path):
    path = tmp_path / "bytes.jsonl"
    utf8 = json.dumps(good("BYTES-1", remarks="请放快递柜"), ensure_ascii=False).encode()
    bad = utf8.replace("快递".encode(), b"\xff\xfe")
    path.write_bytes(text(good("GOOD-1")).encode() + b"\n" + bad + b"\n")
    first, answer = answer_entries(read_orders(path))
    assert first.result is None
    assert answer.result == "rejected" and answer.order_id == "BYTES-1"
    assert answer.errors[0][0] == "remarks" and "U+DCFF" in answer.errors[0][1]


def test_a_csv_cell_as_long_as_a_document_rejects_its_order_and_no_other(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,sku,qty,unit_price,remarks\n"
        f"CSV-1,TSHIRT-RED-M,1,59.00,{'x' * 200_000}\n"
        "CSV-2,TSHIRT-RED-M,1,59.00,ok\n"
        f"CSV-3,TSHIRT-RED-M,{'9' * 5000},59.00,ok\n",
        encoding="utf-8",
    )
    answers = {a.order_id: a for a in answer_entries(read_orders(path))}
    assert answers["CSV-1"].errors[0][0] == "remarks" and answers["CSV-1"].result == "rejected"
    assert answers["CSV-2"].result is None
    assert answers["CSV-3"].errors == [("lines.0.qty", "is longer than 4000 characters (5000)")]


def test_the_array_scanner_splits_elements_without_parsing_them():
    elements = split_array('[ {"a": "],\\"[{"}, [1, [2]], "x,y" ,3]')
    assert [e.strip() for e in elements] == ['{"a": "],\\"[{"}', "[1, [2]]", '"x,y"', "3"]
    assert split_array("[]") == [] and split_array("[ ]") == []
    assert [e.strip() for e in split_array("[1,]")] == ["1", ""]


def test_a_deep_value_is_cut_off_unparsed_and_the_rest_is_read():
    doc = parse_document(json.dumps({"keep": [1, 2], "deep": nested(40)}))
    assert doc["keep"] == [1, 2]
    inner = doc["deep"]
    for _ in range(31):
        inner = inner["a"]
    assert repr(inner) == "TooDeep()"
    assert check_document(doc).errors[0] == ("deep.a.a.a.a.…", "nested more than 32 levels deep")


def test_an_order_within_every_limit_is_taken_with_its_unknown_fields():
    raw = good("WITHIN-1", x_meta=nested(20), x_blob="z" * 4000,
               created_at=(datetime.now(UTC) + timedelta(hours=23)).isoformat())
    checked = check_document(raw)
    assert checked.errors == [] and checked.document is not None
    assert checked.document.model_extra["x_blob"] == "z" * 4000


# ------------------------------------------------------- check_order, directly


def test_check_order_refuses_stored_hostile_documents_at_once_with_their_field(tmp_path):
    url = f"sqlite:///{tmp_path / 'oms.db'}"
    migrate(url)
    engine = make_engine(url)
    acts = OrderActivities(session_factory(engine))
    try:
        for hostile in [h for h in HOSTILE if h.stored is not None]:
            oid = f"STORED-{HOSTILE.index(hostile)}"
            order = OrderDocument.model_validate(hostile.stored(oid))
            inp = CheckOrderInput(order=order, policy=Policy(), submitted_at=datetime.now(UTC))
            if hostile.field == "x_blob":  # too big for Temporal, not for the check itself
                assert acts.check_order(inp).findings is not None
                continue
            with pytest.raises(ApplicationError) as caught:
                acts.check_order(inp)
            err = caught.value
            assert err.non_retryable and err.type == "InvalidDocument", (hostile.kind, err)
            field = "created_at" if hostile.field == "created_at" else "(document)"
            assert err.message.startswith(f"{field}: "), (hostile.kind, err.message)
            if field == "created_at":  # still recorded (listed while on hold), at its submission
                acts.record_order(_record_input(order))
    finally:
        engine.dispose()


def _record_input(order: OrderDocument) -> Any:
    from models.payloads import RecordOrderInput

    return RecordOrderInput(order=order, submitted_at=datetime.now(UTC))


@pytest.mark.parametrize(
    ("error", "bad_data"),
    [
        (ValueError("x"), True),
        (OverflowError("date value out of range"), True),
        (TypeError("x"), True),
        (KeyError("sku"), True),
        (sqlalchemy.exc.DataError("INSERT", {}, Exception("value too long")), True),
        (sqlalchemy.exc.StatementError("bind", "INSERT", {}, TypeError("not a datetime")), True),
        (sqlalchemy.exc.OperationalError("SELECT", {}, Exception("database is locked")), False),
        (sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key")), False),
        (httpx.ConnectError("refused"), False),
        (RuntimeError("order X is not recorded yet"), False),
        (TimeoutError(), False),
    ],
)
def test_bad_data_is_told_from_what_a_retry_can_fix(error, bad_data):
    assert is_bad_data(error) is bad_data

    @no_retry_on_bad_data
    def step() -> None:
        raise error

    with pytest.raises(ApplicationError if bad_data else type(error)) as caught:
        step()
    if bad_data:
        assert caught.value.non_retryable and caught.value.type == type(error).__name__
        assert "INSERT" not in caught.value.message  # the driver's words, not the statement


def test_a_validation_error_is_worded_by_its_fields_without_the_values():
    @no_retry_on_bad_data
    def step() -> None:
        OrderDocument.model_validate(good("V-1", buyer={"phone": 13812345678}))

    with pytest.raises(ApplicationError) as caught:
        step()
    assert caught.value.type == "ValidationError" and caught.value.non_retryable
    assert caught.value.message.startswith("buyer.phone: ") and "13812345678" not in caught.value.message
    assert isinstance(caught.value.__cause__, ValidationError)


# ------------------------------------------------------------- the workflow


def counting_check(calls: list[str], fail_first: int = 0, error: Exception | None = None) -> Any:
    """The real check_order, counted; its first `fail_first` calls raise `error`."""

    def fakes(factory: Any) -> list[Any]:
        real = OrderActivities(factory)

        @activity.defn(name="check_order")
        def check_order(inp: CheckOrderInput) -> Any:
            calls.append(inp.order.order_id)
            if error is not None and calls.count(inp.order.order_id) <= fail_first:
                raise error
            return real.check_order(inp)

        return [check_order]

    return fakes


async def test_orders_past_intake_with_bad_dates_are_held_at_their_first_check(ts_env, sqlite_url):
    calls: list[str] = []
    async with running_shop(ts_env, sqlite_url, fakes=counting_check(calls)) as shop:
        docs = [order_doc("bad-early", created_at="0001-01-01T00:00:00+08:00"),
                order_doc("bad-late", created_at="9999-12-31T23:59:59+00:00")]
        handles = [await shop.start(doc) for doc in docs]
        for doc, handle in zip(docs, handles, strict=True):
            state = await shop.until(handle, lambda s: s.stage == "on_hold", "on hold")
            assert "step_failed" in state.flags and state.waiting_for == "operator"
            status = await shop.status_when(
                doc["order_id"], lambda s: s["stage"] == "on_hold", "on hold")
            failed = [e for e in status["events"] if e["type"] == "step_failed"]
            assert failed[0]["step"] == "check_order"
            assert failed[0]["error"].startswith("created_at: must lie between 2000-01-01")
        await asyncio.sleep(1.0)  # five times RETRY_DB's first interval: a retry would show
        assert sorted(calls) == sorted(d["order_id"] for d in docs), calls  # one attempt each
        for handle in handles:
            await handle.signal("cancel", {"reason": "bad data upstream"})
            assert (await asyncio.wait_for(handle.result(), PATIENCE)).stage == "cancelled"


async def test_a_database_error_keeps_being_retried_until_it_passes(ts_env, sqlite_url):
    calls: list[str] = []
    locked = sqlalchemy.exc.OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))
    async with running_shop(
        ts_env, sqlite_url, fakes=counting_check(calls, fail_first=2, error=locked)
    ) as shop:
        doc = order_doc("locked")
        handle = await shop.start(doc)
        state = await shop.until(handle, lambda s: s.stage == "released", "released")
        assert "step_failed" not in state.flags and len(calls) == 3
