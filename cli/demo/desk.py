"""The demo's shipping desk (issue 20): carriers and waybill pools loaded from sample/, every
parcel shipped under its e-waybill, two orders of one receiver merged into one parcel that a
packer packs through the HTTP API (`/scan`, `/weigh`, with a warehouse key made for the run),
and one labels PDF of the run's parcels under OMS_HOME, with the checks of all of it."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cli.demo.play import DemoFailure, say

if TYPE_CHECKING:
    from cli.demo.play import Demo, DemoOrder

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "sample"
POOL_DIR = SAMPLE_DIR / "waybills"  # one file a carrier: <CODE>.txt, a number a line
MERGE_PATH = "merge"
# A barcode the packer scans by mistake: an item that is in no merged parcel of the demo.
WRONG_ITEM = "MUG-WHITE"


@dataclass
class DeskRun:
    """What the desk did in this run, for the demo's checks."""

    merged: dict[str, Any] | None = None  # the merged parcel as the packer found it
    answers: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    labels: Path | None = None
    printed: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def desk_of(demo: Demo) -> DeskRun:
    if demo.desk is None:
        demo.desk = DeskRun()
    run: DeskRun = demo.desk
    return run


def attach(demo: Demo, service_url: str) -> None:
    """The desk's part of the demo's script: the `merge` path, shipping under the waybill."""
    demo.service_url = service_url
    demo.paths[MERGE_PATH] = play_merge
    demo.ship_under_waybill = ship_under_waybill


# ------------------------------------------------------------ reference


def load_desk_reference(ctx: Any) -> str:
    """Carriers, item barcodes, warehouse senders and the sample waybill pools (a number
    loaded or issued before is skipped, so a demo run again loads only what is new)."""
    from shipping import pool
    from shipping.reference import BadReference, load_carriers, load_extras

    def read(name: str) -> Any:
        return json.loads((SAMPLE_DIR / name).read_text(encoding="utf-8"))

    with ctx.session() as session:
        try:
            count = load_carriers(session, read("carriers.json"))
        except BadReference as exc:
            raise SystemExit(f"sample/carriers.json: {exc}") from None
        for kind, name in (("catalog", "catalog.json"), ("warehouses", "warehouses.json")):
            errors = load_extras(session, kind, read(name))
            if errors:
                raise SystemExit(f"sample/{name}: {'; '.join(errors)}")
    free = []
    for path in sorted(POOL_DIR.glob("*.txt")):
        numbers, errors = pool.read_numbers(path.read_text(encoding="utf-8"))
        if errors:
            raise SystemExit(f"sample/waybills/{path.name}: {'; '.join(errors[:5])}")
        with ctx.session() as session:
            answer = pool.load(session, path.stem, numbers)
        free.append(f"{path.stem} {answer['free']}")
    return f"{count} carriers and their waybill pools loaded (free numbers: {', '.join(free)})"


# ------------------------------------------------------------ shipping


def _parcel_of(demo: Demo, order_id: str, shipment_no: int) -> dict[str, Any] | None:
    """The parcel of an order's shipment, once it has its waybill."""
    from models.tables import Shipment
    from shipping import parcels as P

    with demo.ctx.session() as session:
        for shipment in P.shipments_of(session, order_id):
            if isinstance(shipment, Shipment) and shipment.shipment_no == shipment_no:
                parcel = P.parcel_of_shipment(session, shipment.id)
                if parcel is not None and parcel.waybill:
                    return P.view(session, parcel)
    return None


async def ship_under_waybill(demo: Demo, order: DemoOrder, shipment: int | None) -> bool:
    """The warehouse ships a parcel under the e-waybill the desk issued for it (each order in
    the parcel told `shipped`, carrier and waybill as tracking). False when the shipment has
    no parcel with a waybill (the desk not in use): the warehouse then ships its own way."""
    from commands.shipping import ship_parcel

    parcel = await asyncio.to_thread(_parcel_of, demo, order.order_id, shipment or 1)
    if parcel is None:
        return False
    label = f" shipment {shipment}" if shipment else ""
    await demo.note(f"warehouse: {order.order_id}{label} shipped under its e-waybill "
                    f"{parcel['carrier']} {parcel['waybill']}")
    outcomes = await ship_parcel(await demo.ctx.client(), demo.ctx.factory, parcel["parcel_id"])
    refused = [f"{o['order_id']}: {o['reason']}" for o in outcomes if not o["accepted"]]
    if not outcomes or refused:
        raise DemoFailure(f"{order.order_id}: parcel {parcel['parcel_id']} not shipped: "
                          + ("; ".join(refused) or "no order in it"))
    return True


async def ship_at_desk(ctx: Any, client: Any, order_id: str) -> str | None:
    """Ship an order's first parcel under its e-waybill (the shops' part of the demo: the
    number then goes back to the platform); "CARRIER WAYBILL", or None without a waybill."""
    from commands.shipping import ship_parcel
    from shipping import parcels as P

    def first_parcel() -> dict[str, Any] | None:
        with ctx.session() as session:
            found = [p for p in P.parcels_of(session, order_id) if p["waybill"]]
        return found[0] if found else None

    parcel = await asyncio.to_thread(first_parcel)
    if parcel is None:
        return None
    outcomes = await ship_parcel(client, ctx.factory, parcel["parcel_id"])
    if not outcomes or not all(o["accepted"] for o in outcomes):
        raise DemoFailure(f"{order_id}: not shipped at the desk: {outcomes}")
    return f"{parcel['carrier']} e-waybill {parcel['waybill']}"


# ------------------------------------------------------------ the merged parcel


def _partner(demo: Demo, order: DemoOrder) -> DemoOrder:
    others = [o for o in demo.orders.values() if o.path == MERGE_PATH and o is not order]
    if len(others) != 1:
        raise DemoFailure(f"{order.order_id}: the merge path needs exactly two orders")
    return others[0]


async def play_merge(demo: Demo, order: DemoOrder) -> None:
    """Two orders of one buyer to one receiver, released together: one parcel, one waybill.
    The first of the two is packed through the scan API; both then ship with that waybill."""
    partner = _partner(demo, order)
    both = {order.order_id, partner.order_id}

    def merged(status: dict[str, Any]) -> bool:
        return any(set(p["orders"]) == both and p["waybill"] for p in status.get("parcels", []))

    status = await demo.wait_for(order, f"one parcel with {partner.order_id}", merged)
    if order.order_id > partner.order_id:  # the packer packs once, for the first order
        await demo.wait_stage(order, "completed")
        return
    parcel = next(p for p in status["parcels"] if set(p["orders"]) == both)
    desk_of(demo).merged = parcel
    await demo.note(f"desk: {order.order_id} and {partner.order_id} merged into one parcel "
                    f"(合单) {parcel['parcel_id']}, one waybill {parcel['carrier']} "
                    f"{parcel['waybill']}")
    await pack_through_api(demo, order, parcel)
    await demo.wait_stage(order, "completed")


def _pack_facts(demo: Demo, skus: list[str]) -> tuple[dict[str, str], dict[str, int]]:
    """Each SKU's barcode (and the stray item's), and the catalog weights."""
    from models.tables import CatalogRow
    from shipping.reference import barcodes_of

    with demo.ctx.session() as session:
        codes = barcodes_of(session, [*skus, WRONG_ITEM])
        weights = {sku: (session.get(CatalogRow, sku).weight_g or 0)  # type: ignore[union-attr]
                   for sku in skus}
    missing = [sku for sku in [*skus, WRONG_ITEM] if not codes.get(sku)]
    if missing:
        raise DemoFailure(f"no barcode loaded for {', '.join(missing)} (sample/catalog.json)")
    return {sku: found[0] for sku, found in codes.items()}, weights


def _make_warehouse_key(demo: Demo) -> str:
    from service.keys import create_key

    with demo.ctx.session() as session:
        return create_key(session, name=f"demo-warehouse-{demo.run_id}", role="warehouse")


async def pack_through_api(demo: Demo, order: DemoOrder, parcel: dict[str, Any]) -> None:
    """The packer at the desk, over HTTP: one stray item scanned by mistake (refused, counting
    nothing), each item of the parcel, then the weight; every answer printed."""
    import httpx

    url = demo.service_url
    if not url:
        raise DemoFailure("the HTTP service is not running beside the demo")
    skus = [ln["sku"] for ln in parcel["lines"]]
    codes, weights = await asyncio.to_thread(_pack_facts, demo, skus)
    key = await asyncio.to_thread(_make_warehouse_key, demo)
    scans = [codes[WRONG_ITEM]] + [codes[ln["sku"]] for ln in parcel["lines"]
                                   for _ in range(ln["qty"])]
    grams = sum(weights[ln["sku"]] * ln["qty"] for ln in parcel["lines"])
    grams += demo.settings.policy.weigh.packaging_g + 15  # the scale is never exact
    run = desk_of(demo)
    waybill = parcel["waybill"]
    await demo.note(f"packer: packs {waybill} through the scan API with a warehouse key "
                    f"made for this run ({url}v1/parcels/{waybill}/scan)")
    async with httpx.AsyncClient(base_url=url, timeout=60,
                                 headers={"Authorization": f"Bearer {key}"}) as http:
        for barcode in scans:
            reply = await http.post(f"/v1/parcels/{waybill}/scan", json={"barcode": barcode})
            body = _json(reply)
            run.answers.append(("scan", reply.status_code, body))
            counts = ", ".join(f"{ln['sku']} {ln['scanned']}/{ln['qty']}"
                               for ln in body.get("lines") or [])
            verdict = "accepted" if body.get("accepted") else f"refused: {body.get('reason')}"
            say(f"      POST /v1/parcels/{waybill}/scan {barcode} → {reply.status_code} "
                f"{verdict}" + (f"  [{counts}]" if counts else ""))
        reply = await http.post(f"/v1/parcels/{waybill}/weigh", json={"weight_g": grams})
        body = _json(reply)
        run.answers.append(("weigh", reply.status_code, body))
        shipped = ", ".join(f"{o['order_id']} {'accepted' if o['accepted'] else o['reason']}"
                            for o in body.get("shipped") or [])
        say(f"      POST /v1/parcels/{waybill}/weigh {grams} g → {reply.status_code} "
            + ("accepted" if body.get("accepted") else f"refused: {body.get('reason')}")
            + f", expected {body.get('expected_g')} g, parcel {body.get('state')}"
            + (f"; shipped: {shipped}" if shipped else ""))


def _json(reply: Any) -> dict[str, Any]:
    try:
        body = reply.json()
    except ValueError:
        return {"accepted": False, "reason": f"not JSON: {reply.text[:200]}"}
    return body if isinstance(body, dict) else {"accepted": False, "reason": str(body)[:200]}


# ------------------------------------------------------------ labels


def write_labels(demo: Demo, orders: list[DemoOrder], statuses: dict[str, Any]) -> None:
    """One PDF of the labels of this run's parcels (a page a parcel, a merged parcel once),
    under OMS_HOME/labels/; its path printed."""
    from shipping.desk import LabelProblem, labels_for
    from shipping.parcels import ParcelProblem

    run = desk_of(demo)
    ids = [o.order_id for o in orders
           if (statuses.get(o.order_id) or {}).get("parcels")
           and (statuses.get(o.order_id) or {}).get("stage") != "cancelled"]
    if not ids:
        run.problems.append("no order of this run has a parcel: the desk did not run")
        return
    size = demo.settings.policy.shipping.label_size
    try:
        pdf, printed = labels_for(demo.ctx.factory, ids, size=size)
    except (LabelProblem, ParcelProblem) as exc:
        run.problems.append(f"labels not printed: {exc}")
        return
    folder = demo.settings.home / "labels"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"demo-{demo.run_id}.pdf"
    path.write_bytes(pdf)
    run.labels, run.printed = path.resolve(), printed
    merged = sum(1 for p in printed if len(p["orders"]) > 1)
    say(f"\nlabels PDF ({len(printed)} parcel(s) of {len(ids)} orders, {merged} merged, "
        f"{size} mm): {run.labels}")
    for p in printed:
        say(f"  {p['waybill']:<14} {', '.join(p['orders'])}")


# ------------------------------------------------------------ checks


def verify_desk(demo: Demo, orders: list[DemoOrder], statuses: dict[str, Any]) -> list[str]:
    """The desk's part of the demo's checks; answers the problems found."""
    run = desk_of(demo)
    problems = list(run.problems)
    for order in orders:  # every shipped shipment went out under its parcel's waybill
        status = statuses.get(order.order_id) or {}
        for s in status.get("shipments", []):
            if s["status"] == "shipped" and (
                not s.get("waybill") or s.get("tracking_no") != s["waybill"]
            ):
                problems.append(f"{order.order_id} shipment {s['shipment_no']}: shipped with "
                                f"{s.get('tracking_no')}, not its waybill {s.get('waybill')}")
    pair = [o for o in orders if o.path == MERGE_PATH]
    merged = run.merged
    if len(pair) == 2 and merged is None:
        problems.append("the merge path's two orders were never seen in one parcel")
    if merged is not None:
        problems += _check_merged(merged, {o.order_id for o in pair}, statuses)
        problems += _check_packing(run, merged)
    problems += _check_labels(run, merged)
    return problems


def _check_merged(merged: dict[str, Any], pair: set[str], statuses: dict[str, Any]) -> list[str]:
    problems = []
    for order_id in sorted(pair):
        parcels = (statuses.get(order_id) or {}).get("parcels") or []
        mine = [p for p in parcels if p["parcel_id"] == merged["parcel_id"]]
        if not mine or set(mine[0]["orders"]) != pair:
            problems.append(f"{order_id}: not in the merged parcel {merged['parcel_id']}")
        elif mine[0]["state"] != "shipped":
            problems.append(f"merged parcel {merged['parcel_id']} is {mine[0]['state']}, "
                            "not shipped")
        tracked = {s.get("tracking_no")
                   for s in (statuses.get(order_id) or {}).get("shipments", [])}
        if merged["waybill"] not in tracked:
            problems.append(f"{order_id}: not shipped with the merged parcel's waybill")
    return problems


def _check_packing(run: DeskRun, merged: dict[str, Any]) -> list[str]:
    problems = []
    scans = [(code, body) for kind, code, body in run.answers if kind == "scan"]
    weighs = [(code, body) for kind, code, body in run.answers if kind == "weigh"]
    units = sum(ln["qty"] for ln in merged["lines"])
    if len(scans) != units + 1:
        problems.append(f"{len(scans)} scans answered, expected {units + 1}")
        return problems
    code, body = scans[0]
    if code != 409 or body.get("accepted") or not body.get("reason"):
        problems.append(f"the stray item's scan was not refused with a reason ({code})")
    elif any(ln["scanned"] for ln in body.get("lines") or []):
        problems.append("the refused scan counted something")
    for code, body in scans[1:]:
        if code != 200 or not body.get("accepted"):
            problems.append(f"an item scan was refused: {code} {body.get('reason')}")
    if scans[-1][1].get("complete") is not True:
        problems.append("the parcel was not complete after its last item")
    if len(weighs) != 1 or weighs[0][0] != 200 or weighs[0][1].get("state") != "shipped":
        problems.append(f"the weigh did not ship the parcel: {weighs}")
    return problems


PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")


def _check_labels(run: DeskRun, merged: dict[str, Any] | None) -> list[str]:
    if run.labels is None:
        return [] if run.problems else ["no labels PDF written"]
    data = run.labels.read_bytes()
    pages = len(PAGE.findall(data))
    problems = []
    if not data.startswith(b"%PDF") or pages != len(run.printed):
        problems.append(f"{run.labels}: {pages} page(s), {len(run.printed)} label(s) printed")
    waybills = [p["waybill"] for p in run.printed]
    if len(set(waybills)) != len(waybills):
        problems.append("a waybill printed twice in the labels PDF")
    if merged is not None and not any(
        p["waybill"] == merged["waybill"] and len(p["orders"]) == 2 for p in run.printed
    ):
        problems.append("the merged parcel is not one label listing both orders")
    return problems


def check_desk(demo: Demo, orders: list[DemoOrder], statuses: dict[str, Any]) -> None:
    """At the end of the run: the labels PDF written, and the desk's checks; a problem is
    the merge path's (or else the first order's), so the demo fails on it."""
    write_labels(demo, orders, statuses)
    problems = verify_desk(demo, orders, statuses)
    owner = next((o for o in orders if o.path == MERGE_PATH), orders[0] if orders else None)
    if owner is not None:
        owner.problems.extend(f"desk: {p}" for p in problems)
