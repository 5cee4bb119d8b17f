"""Pinduoduo: a PDD_ORDER (SPEC §5.10) mapped to an order document (SPEC §3.9, §5.1).

* ``order_id`` ``pdd-<order_sn>``; each item a line whose SKU is ``outer_id``
  (商家编码; an item without it cannot be imported);
* money from yuan *numbers*, exactly (``goods_price``, ``discount_amount``, ``postage``,
  ``pay_amount``);
* ``buyer_memo`` -> ``remarks``; the seller's ``remark`` -> ``clerk_note``;
* ``ship_by`` = ``last_ship_time``;
* the receiver: ``province``, ``city``, ``town`` (the district) are plaintext; name,
  phone and street are ``~ciphertext~``, decrypted by ``pdd.open.decrypt.batch``.
"""

from __future__ import annotations

from typing import Any

from platforms.mapping import (
    Mapped,
    MappingProblem,
    PlatformView,
    Problem,
    Sealed,
    china_time,
    fingerprint,
    money_text,
    problem_from,
    text,
    yuan,
)

PLATFORM = "pdd"
# order_status: 1 waiting to ship, 2 shipped, 3 received
# refund_status: 1 none or closed, 2 in progress, 3 refunding, 4 refunded
REFUND = {1: "none", 2: "requested", 3: "requested", 4: "refunded"}
CIPHER_FIELDS = {"name": "receiver_name", "phone": "receiver_phone", "detail": "address"}


def order_id(order_sn: Any) -> str:
    return f"{PLATFORM}-{order_sn}"


def _int(value: Any, name: str) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise MappingProblem(name, f"is not a whole number: {value!r}")
    return value


def view(order: dict[str, Any]) -> PlatformView:
    status = order.get("order_status")
    refund = order.get("refund_status")
    receiver = "|".join(
        str(order.get(k) or "")
        for k in ("open_address_id", "province", "city", "town", "address", "receiver_name")
    )
    state = REFUND.get(refund, "none") if isinstance(refund, int) else "none"
    return PlatformView(
        status=str(status),
        paid=bool(order.get("pay_time")),
        closed=False,
        shipped=status in (2, 3),
        refunds={"*": state},
        receiver=fingerprint(receiver),
        modified=str(order.get("updated_at") or ""),
    )


def _items(order: dict[str, Any]) -> list[dict[str, Any]]:
    items = order.get("item_list")
    if not isinstance(items, list) or not items:
        raise MappingProblem("item_list", "the order has no items")
    if not all(isinstance(i, dict) for i in items):
        raise MappingProblem("item_list", "an item is not an object")
    return items


def _sku(item: dict[str, Any], index: int) -> str:
    value = item.get("outer_id")
    if isinstance(value, str | int) and str(value).strip():
        return str(value).strip()
    raise MappingProblem(
        f"item_list[{index}].outer_id", "no merchant SKU code (商家编码): outer_id is not set"
    )


def map_order(order: Any, *, shop: str) -> Mapped:
    """One PDD_ORDER -> `Mapped` (never raises; problems name the order's field)."""
    if not isinstance(order, dict):
        return Mapped("", PLATFORM, "", None, [Problem("(order)", "is not a JSON object")])
    sn = order.get("order_sn")
    if not isinstance(sn, str) or not sn.strip() or len(sn) > 50:
        return Mapped("", PLATFORM, "", None, [Problem("order_sn", f"is not an order id: {sn!r}")])
    sn = sn.strip()
    problems: list[Problem] = []

    def attempt(fn: Any, *args: Any, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except Exception as exc:
            problems.append(problem_from(exc))
            return None

    items = attempt(_items, order) or []
    lines = []
    for i, item in enumerate(items):
        sku = attempt(_sku, item, i)
        qty = attempt(_int, item.get("goods_count"), f"item_list[{i}].goods_count")
        if qty is not None and qty <= 0:
            problems.append(Problem(f"item_list[{i}].goods_count", f"is not positive: {qty}"))
            qty = None
        price = attempt(yuan, item.get("goods_price"), f"item_list[{i}].goods_price")
        if sku is None or qty is None or price is None:
            continue
        entry: dict[str, Any] = {"sku": sku, "qty": qty, "unit_price": money_text(price)}
        if item.get("goods_name"):
            entry["name"] = text(item.get("goods_name"), 200)
        entry["platform_line_id"] = str(item.get("sku_id") or item.get("goods_id") or i)
        lines.append(entry)
    created = attempt(china_time, order.get("created_time"), "created_time")
    last_ship = attempt(china_time, order.get("last_ship_time"), "last_ship_time", required=False)
    discount = attempt(yuan, order.get("discount_amount"), "discount_amount", required=False)
    postage = attempt(yuan, order.get("postage"), "postage", required=False)
    pay_amount = attempt(yuan, order.get("pay_amount"), "pay_amount")
    ciphertexts = {}
    for part, name in CIPHER_FIELDS.items():
        value = order.get(name)
        if isinstance(value, str) and value.startswith("~") and value.endswith("~"):
            ciphertexts[part] = value
        elif value:
            problems.append(Problem(name, "is not the platform's ciphertext (~...~)"))
    the_view = view(order)
    if problems:
        return Mapped(order_id(sn), PLATFORM, sn, None, problems, the_view)
    assert created is not None and pay_amount is not None
    doc: dict[str, Any] = {
        "order_id": order_id(sn),
        "platform": PLATFORM,
        "shop": shop,
        "platform_order_id": sn,
        "created_at": created.isoformat(),
        "buyer": {"name": None, "phone": None, "id": None},
        "address": {
            "country": "CN",
            "province": text(order.get("province"), 50),
            "city": text(order.get("city"), 50),
            "district": text(order.get("town"), 50),
            "detail": None,
        },
        "lines": lines,
        "discount": money_text(discount or 0),
        "shipping_fee": money_text(postage or 0),
        "total": money_text(pay_amount),
        "payment": {
            "status": "paid" if the_view.paid else "pending",
            "method": "pdd",
            "amount": money_text(pay_amount) if the_view.paid else None,
            "transaction_id": text(order.get("pay_no"), 100) if the_view.paid else None,
        },
        "remarks": text(order.get("buyer_memo"), 500),
        "clerk_note": (
            f"卖家备注: {text(order.get('remark'), 400)}"
            if text(order.get("remark"), 400)
            else None
        ),
        "receiver_masked": {
            "name": text(order.get("receiver_name_mask"), 100),
            "mobile": text(order.get("receiver_phone_mask"), 40),
            "detail": text(order.get("receiver_address_mask"), 200),
        },
    }
    if last_ship is not None:
        doc["ship_by"] = last_ship.isoformat()
    mapped = Mapped(order_id(sn), PLATFORM, sn, doc, [], the_view)
    if len(ciphertexts) == len(CIPHER_FIELDS):
        mapped.sealed = Sealed(sn, ciphertexts=ciphertexts)
    elif mapped.importable:
        missing = sorted(CIPHER_FIELDS[p] for p in CIPHER_FIELDS if p not in ciphertexts)
        mapped.problems.append(Problem(missing[0], "the receiver's ciphertext is missing"))
        mapped.document = None
    return mapped


# ------------------------------------------------------------------ the gateway calls

INCREMENT = "pdd.order.number.list.increment.get"
DECRYPT = "pdd.open.decrypt.batch"
SHIP = "pdd.logistics.online.send"
DECRYPT_BATCH = 100  # pdd.open.decrypt.batch takes at most 100 items per call
PAGE_SIZE = 100
SCENE = "pdd.open.decrypt.batch"


def read_window(
    client: Any, start: int, end: int, *, page_size: int = PAGE_SIZE, on_page: Any = None
) -> list[Any]:
    """Every order updated in [start, end] (Unix seconds), read from the last page back."""
    base = {
        "start_updated_at": start,
        "end_updated_at": end,
        "order_status": 5,
        "refund_status": 5,
        "is_lucky_flag": 0,
    }
    first = client.call(INCREMENT, base | {"page": 1, "page_size": page_size})
    total = int(first.get("total_count") or 0)
    pages = max(1, -(-total // page_size))
    if pages == 1:
        return list(first.get("order_sn_list") or [])
    seen: dict[str, Any] = {}
    for page in range(pages, 0, -1):
        body = client.call(INCREMENT, base | {"page": page, "page_size": page_size})
        for order in body.get("order_sn_list") or []:
            key = str(order.get("order_sn")) if isinstance(order, dict) else repr(order)
            seen.setdefault(key, order)
        if on_page is not None:
            on_page(page)
    return list(seen.values())


def decrypt(client: Any, sealed: list[Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """Receivers by order_sn, and the platform's reason per order_sn it refused."""
    from platforms.mapping import Receiver

    items = [
        (s.platform_order_id, part, data)
        for s in sealed
        for part, data in sorted(s.ciphertexts.items())
    ]
    plain: dict[str, dict[str, str]] = {}
    refused: dict[str, str] = {}
    for i in range(0, len(items), DECRYPT_BATCH):
        chunk = items[i : i + DECRYPT_BATCH]
        body = client.call(
            DECRYPT, {"data_list": [{"data_tag": sn, "encrypted_data": d} for sn, _, d in chunk]}
        )
        answers = {
            (str(a.get("data_tag")), str(a.get("encrypted_data"))): a
            for a in body.get("data_decrypt_list") or []
            if isinstance(a, dict)
        }
        for sn, part, data in chunk:
            a = answers.get((sn, data))
            if a is None:
                refused.setdefault(sn, "pdd.open.decrypt.batch returned nothing for it")
            elif a.get("error_code") not in (0, "0") or not a.get("decrypted_data"):
                refused.setdefault(
                    sn, f"pdd.open.decrypt.batch: {a.get('error_msg') or a.get('error_code')}"
                )
            else:
                plain.setdefault(sn, {})[part] = str(a["decrypted_data"])
    got = {}
    for sn, parts in plain.items():
        if sn in refused or set(parts) != set(CIPHER_FIELDS):
            continue
        got[sn] = Receiver(name=parts["name"], phone=parts["phone"], detail=parts["detail"])
    for s in sealed:
        if s.platform_order_id not in got:
            refused.setdefault(s.platform_order_id, "pdd.open.decrypt.batch: not decrypted")
    return got, refused
