"""Record order histories on the dev server, for `tests/histories/` (run by hand, not a test).

    python -m tests.record_histories PREFIX [PATH ...]

Runs each path of an order (below) on a fresh dev server with search attributes
registered, a real worker and a fresh SQLite database, the way the operator and the
warehouse would drive it, and writes each finished history as
`tests/histories/PREFIX-<path>.json`. Record a set before a change of the workflow's
commands; `tests/workflows/test_replay_histories.py` replays every file there on today's code.

The run seals its payloads with the session's codec key, made for it and gone after it;
the files are written decoded (sample data, no real buyer), so that any later run,
under any key ring, replays them: the codec passes payloads that were never encrypted
through as they are.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from models.documents import OrderDocument
from models.search import SEARCH_ATTRIBUTES
from tests.conftest import binary
from tests.harness.codec_keys import converter
from tests.harness.documents import HOT, fast_policy, make_order
from tests.harness.flow import Flow, running_flow
from tests.harness.payload_walk import decode_all
from tests.harness.reference import load_sample

HERE = Path(__file__).resolve().parent / "histories"
SHIRT = "TSHIRT-RED-M"


async def clean(flow: Flow) -> str:
    oid = flow.oid("clean")
    load_sample(flow.factory)
    await flow.start(make_order(oid, [(SHIRT, 2)]))
    await flow.stage(oid, "released")
    await flow.ship_all(oid)
    return oid


async def buyer(flow: Flow) -> str:
    oid = flow.oid("buyer")
    load_sample(flow.factory)
    order = make_order(oid, [(SHIRT, 1)])
    order = order.model_copy(update={"address": order.address.model_copy(update={"detail": "文三路"})})
    await flow.start(order)
    await flow.stage(oid, "awaiting_buyer")
    await flow.signal(oid, "buyer_confirmed", {"detail": "文三路100号3幢501室", "note": "旺旺确认", "parcel_locker": True})
    await flow.stage(oid, "released")
    await flow.ship_all(oid)
    return oid


async def payment(flow: Flow) -> str:
    oid = flow.oid("payment")
    load_sample(flow.factory)
    order = make_order(oid, [(SHIRT, 1)], payment="pending")
    await flow.start(order)
    await flow.stage(oid, "awaiting_payment")
    await flow.signal(oid, "payment_received", {"amount": str(order.total), "transaction_id": "TX-PAY-1"})
    await flow.stage(oid, "released")
    await flow.ship_all(oid)
    return oid


async def backorder(flow: Flow) -> str:
    oid = flow.oid("backorder")
    load_sample(flow.factory, {(HOT, "HZ"): 0, (HOT, "SH"): 0})
    await flow.start(make_order(oid, [(HOT, 2)], shortage_policy="wait"))
    await flow.stage(oid, "backordered")
    await flow.restock(HOT, "HZ", 2)
    await flow.stage(oid, "released")
    await flow.ship_all(oid)
    return oid


async def approval(flow: Flow) -> str:
    oid = flow.oid("approval")
    load_sample(flow.factory, {(HOT, "HZ"): 200})
    await flow.start(make_order(oid, [(HOT, 150)]))  # over the approval threshold
    await flow.stage(oid, "awaiting_approval")
    await flow.signal(oid, "approve", {"note": "called the buyer"})
    await flow.stage(oid, "released")
    await flow.ship_all(oid)
    return oid


async def split(flow: Flow) -> str:
    oid = flow.oid("split")
    load_sample(flow.factory, {(HOT, "HZ"): 2, (HOT, "SH"): 3})
    await flow.start(make_order(oid, [(HOT, 5)]))
    await flow.until(oid, lambda s: s.stage == "released" and len(s.shipments) == 2, "released twice")
    await flow.ship_all(oid)
    return oid


async def cancel(flow: Flow) -> str:
    oid = flow.oid("cancel")
    load_sample(flow.factory)
    await flow.start(make_order(oid, [(SHIRT, 2)]))
    await flow.stage(oid, "released")
    await flow.signal(oid, "picked", {"shipment": 1})
    await flow.stage(oid, "picking")
    await flow.signal(oid, "cancel", {"reason": "buyer changed their mind"})
    return oid


async def cancel_waiting(flow: Flow) -> str:
    oid = flow.oid("cancel-waiting")
    load_sample(flow.factory, {(HOT, "HZ"): 1, (HOT, "SH"): 0})
    await flow.start(make_order(oid, [(HOT, 3)], shortage_policy="wait"))
    await flow.stage(oid, "backordered")
    await flow.signal(oid, "cancel", {"reason": "buyer gave up waiting"})
    return oid


async def ship_by(flow: Flow) -> str:
    """A platform order not shipped in time: `ship_by_soon`, then `ship_by_late` (issue 19)."""
    oid = flow.oid("ship-by")
    load_sample(flow.factory)
    policy = fast_policy()
    policy.ship_by.warn = timedelta(seconds=2)
    raw = make_order(oid, [(SHIRT, 1)]).model_dump(mode="json")
    deadline = datetime.now(UTC) + timedelta(seconds=4)
    await flow.start(OrderDocument.model_validate(raw | {"ship_by": deadline.isoformat()}), policy)
    await flow.until(oid, lambda s: "ship_by_late" in s.flags, "ship_by_late", 20)
    await flow.ship_all(oid)
    return oid


async def platform_refund(flow: Flow) -> str:
    """A refund asked for on the platform stops the order before it ships; withdrawn, it
    goes on (issue 19)."""
    oid = flow.oid("platform-refund")
    load_sample(flow.factory)
    await flow.start(make_order(oid, [(SHIRT, 1)]))
    await flow.stage(oid, "released")
    await flow.signal(oid, "platform_refund", {"status": "requested", "platform": "taobao"})
    await flow.until(oid, lambda s: "refund_requested" in s.flags, "stopped for the refund")
    shipped = {"shipment": 1, "carrier": "SF", "tracking_no": "SF1"}
    assert "refund" in str(await flow.refusal(oid, "shipped", shipped))
    await flow.handle(oid).signal("shipped", shipped)  # recorded as rejected, changes nothing
    await flow.signal(oid, "platform_refund", {"status": "closed", "platform": "taobao"})
    await flow.until(oid, lambda s: "refund_requested" not in s.flags, "going on")
    await flow.ship_all(oid)
    return oid


async def refund_hold(flow: Flow) -> str:
    """A refund asked for on the platform after the release holds the order and withdraws its
    pick list (拦截); closed, the order is released again and ships (issue 19)."""
    oid = flow.oid("refund-hold")
    load_sample(flow.factory)
    await flow.start(make_order(oid, [(SHIRT, 2)]))
    await flow.stage(oid, "released")
    await flow.signal(oid, "picked", {"shipment": 1})
    await flow.stage(oid, "picking")
    await flow.signal(oid, "platform_refund", {"status": "requested", "platform": "taobao"})
    await flow.until(oid, lambda s: s.stage == "on_hold", "held for the refund")
    await flow.handle(oid).signal("platform_refund", {"status": "requested", "platform": "taobao"})
    await flow.signal(oid, "platform_refund", {"status": "closed", "platform": "taobao"})
    await flow.until(oid, lambda s: s.stage == "released" and len(s.shipments) == 2, "released again")
    await flow.ship_all(oid)
    return oid


async def platform_address(flow: Flow) -> str:
    """The buyer changes the address on the platform after the release: checked again, the
    warehouse gets an amended pick list; the same address again is refused (issue 19)."""
    oid = flow.oid("platform-address")
    load_sample(flow.factory)
    await flow.start(make_order(oid, [(SHIRT, 2)]))
    await flow.stage(oid, "released")
    new = {"platform": "taobao", "name": "李四", "phone": "13987654321", "province": "浙江省",
           "city": "杭州市", "district": "西湖区", "detail": "文三路88号2幢302室"}
    await flow.signal(oid, "platform_address", new)
    await flow.persisted(oid, lambda st: "pick_list_amended" in str(st["events"]))
    await flow.handle(oid).signal("platform_address", new)
    await flow.ship_all(oid)
    return oid


async def pii_hold(flow: Flow) -> str:
    """A shop's order whose receiver the platform would not decrypt: held at intake; the sync
    decrypts it later and sends the receiver; checked, released and shipped (issue 19)."""
    from models.documents import workflow_id_for
    from models.payloads import OrderInput
    from workflows.order import OrderWorkflow

    oid = flow.oid("pii-hold")
    load_sample(flow.factory)
    doc = make_order(oid, [(SHIRT, 1)])
    bare = doc.model_copy(update={
        "buyer": doc.buyer.model_copy(update={"name": None, "phone": None}),
        "address": doc.address.model_copy(update={"detail": None}),
    })
    await flow.client.start_workflow(
        OrderWorkflow.run,
        OrderInput(order=bare, policy=fast_policy(), submitted_at=datetime.now(UTC),
                   pii_unavailable="该订单已关闭，无法解密"),
        id=workflow_id_for(oid), task_queue=flow.task_queue,
    )
    await flow.until(oid, lambda s: s.stage == "on_hold", "held for its receiver")
    await flow.signal(oid, "platform_address", {
        "platform": "pdd", "name": "张三", "phone": "13812345678", "province": "浙江省",
        "city": "杭州市", "district": "西湖区", "detail": "文三路100号3幢501室"})
    await flow.stage(oid, "released")
    await flow.ship_all(oid)
    return oid


async def readdress(flow: Flow) -> str:
    """On the shipping desk: released, its label printed, then the buyer changes the address on
    the platform: checked again, the pick list amended, the printed number voided and a new
    one issued (`stages.desk.readdress`); shipped (issue 19 x 20)."""
    from shipping.desk import labels_for
    from tests.harness.desk import seed_desk

    oid = flow.oid("readdress")
    load_sample(flow.factory)
    seed_desk(flow.factory)
    await flow.start(make_order(oid, [(SHIRT, 1)]))
    await flow.stage(oid, "released")
    await flow.persisted(oid, lambda st: any(e["type"] == "parcel" for e in st["events"]))
    labels_for(flow.factory, [oid])
    await flow.signal(oid, "platform_address", {
        "platform": "taobao", "name": "李四", "phone": "13987654321", "province": "浙江省",
        "city": "杭州市", "district": "西湖区", "detail": "文三路88号2幢302室"})
    await flow.persisted(oid, lambda st: "parcel_readdressed" in str(st["events"]))
    await flow.ship_all(oid)
    return oid


PATHS: dict[str, Callable[[Flow], Awaitable[str]]] = {
    "clean": clean,
    "buyer": buyer,
    "payment": payment,
    "backorder-restock": backorder,
    "approval": approval,
    "split": split,
    "cancel-released": cancel,
    "cancel-backordered": cancel_waiting,
    "ship-by": ship_by,
    "platform-refund": platform_refund,
    "refund-hold": refund_hold,
    "platform-address": platform_address,
    "pii-hold": pii_hold,
    "readdress": readdress,
}


async def record(prefix: str, names: list[str]) -> None:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        data_converter=converter(),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
    )
    try:
        for name in names:
            with tempfile.TemporaryDirectory() as tmp:
                async with running_flow(env.client, f"sqlite:///{tmp}/oms.db") as flow:
                    oid = await PATHS[name](flow)
                    outcome = await flow.finish(oid)
                    history = await flow.handle(oid).fetch_history()
            codec = converter().payload_codec
            assert codec is not None
            for event in history.events:
                await decode_all(event, codec)
            path = HERE / f"{prefix}-{name}.json"
            path.write_text(history.to_json(), encoding="utf-8")
            print(f"{path.name}: {outcome.stage}, {len(history.events)} events")  # noqa: T201
    finally:
        await env.shutdown()


if __name__ == "__main__":
    prefix, *wanted = sys.argv[1:]
    asyncio.run(record(prefix, wanted or list(PATHS)))
