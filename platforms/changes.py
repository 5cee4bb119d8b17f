"""Changes on the platform after import, carried to the running order (SPEC §3.9).

`diff` compares the platform's view of an order at the last sync with now and names
what changed; `apply_changes` sends each to the order's workflow as its Temporal update,
so the order's own rules judge it and its timeline records it:

* ``paid`` -> ``pay`` (amount, the platform's transaction id);
* ``closed`` -> ``cancel`` ("closed on <platform>");
* ``refunded`` (every line) -> ``cancel`` ("refunded on <platform>");
* ``refund_requested`` / ``refund_closed`` -> the ``platform_refund`` signal (the order is
  stopped before it ships while a refund is asked for; withdrawn, it goes on). A signal,
  as it comes from another process and needs no answer: the order records it in its
  timeline, or records why it did not apply (a second time, say);
* ``address_changed`` (before shipping) -> the ``platform_address`` signal with the new
  receiver, decrypted by the sync (`platforms.sync`): the order checks it again and, if
  released, amends its pick list (`workflows.order.address_change`).

A change already applied (a window read twice after a crash) meets an order that no
longer takes it, and the update is refused: the second time changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError

from platforms.mapping import Mapped, PlatformView, Receiver, with_receiver

PAID = "paid"
CLOSED = "closed"
REFUNDED = "refunded"
REFUND_REQUESTED = "refund_requested"
REFUND_CLOSED = "refund_closed"
ADDRESS_CHANGED = "address_changed"


def _all_refunded(view: PlatformView) -> bool:
    return bool(view.refunds) and all(s == "refunded" for s in view.refunds.values())


def _requested(view: PlatformView) -> set[str]:
    return {line for line, s in view.refunds.items() if s == "requested"}


def diff(old: PlatformView, new: PlatformView) -> list[str]:
    """What changed from `old` to `new`, in the order it should be applied."""
    out: list[str] = []
    if new.paid and not old.paid:
        out.append(PAID)
    if _all_refunded(new) and not _all_refunded(old):
        out.append(REFUNDED)
    elif new.closed and not old.closed:
        out.append(CLOSED)
    elif _requested(new) - _requested(old):
        out.append(REFUND_REQUESTED)
    elif _requested(old) and not _requested(new) and not _all_refunded(new):
        out.append(REFUND_CLOSED)
    if new.receiver != old.receiver and not new.shipped and not new.closed:
        out.append(ADDRESS_CHANGED)
    return out


def _update_for(change: str, m: Mapped) -> tuple[str, dict[str, Any]] | None:
    platform_name = {"taobao": "taobao", "pdd": "pinduoduo"}.get(m.platform, m.platform)
    doc = m.document or {}
    if change == PAID:
        payment = doc.get("payment") or {}
        if not payment.get("amount") or not payment.get("transaction_id"):
            return None
        return "pay", {
            "amount": payment["amount"],
            "transaction_id": payment["transaction_id"],
            "method": payment.get("method"),
        }
    if change == CLOSED:
        return "cancel", {"reason": f"closed on {platform_name}", "by": f"{m.platform} sync"}
    if change == REFUNDED:
        return "cancel", {
            "reason": f"refunded on {platform_name}",
            "by": f"{m.platform} sync",
            "refunded_on": m.platform,
        }
    return None


SIGNALS = {REFUND_REQUESTED: "requested", REFUND_CLOSED: "closed"}


async def send_signal(
    client: Client, order_id: str, name: str, payload: dict[str, Any]
) -> tuple[bool, str | None]:
    handle = client.get_workflow_handle(f"order-{order_id}")
    try:
        await handle.signal(name, payload)
    except RPCError as exc:
        return False, f"the order's workflow did not take it: {exc.message}"[:500]
    return True, None


async def send_update(
    client: Client, order_id: str, update: str, payload: dict[str, Any]
) -> tuple[bool, str | None]:
    """(accepted, why not) for one update to `order-<order_id>`."""
    handle = client.get_workflow_handle(f"order-{order_id}")
    try:
        await handle.execute_update(update, payload)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        return False, str(getattr(cause, "message", None) or cause or exc)[:500]
    except RPCError as exc:
        return False, f"the order's workflow did not take it: {exc.message}"[:500]
    return True, None


def address_signal(m: Mapped, receiver: Receiver) -> dict[str, Any]:
    """The `platform_address` payload: the new receiver as the order document holds it."""
    doc = with_receiver(m.document or {}, receiver)
    buyer, address = doc.get("buyer") or {}, doc.get("address") or {}
    payload = {"platform": m.platform, "name": buyer.get("name"), "phone": buyer.get("phone")}
    for part in ("province", "city", "district", "detail", "postal_code"):
        payload[part] = address.get(part)
    return {k: v for k, v in payload.items() if v is not None}


async def apply_changes(
    client: Client, m: Mapped, changes: list[str], *, receiver: Receiver | None = None
) -> list[dict[str, Any]]:
    """Each change sent to the order; what became of it, for the shop's record. An address
    change goes only with its decrypted `receiver` (without it, the caller records why)."""
    outcomes = []
    for change in changes:
        at = datetime.now(UTC).isoformat()
        if change == ADDRESS_CHANGED:
            if receiver is None:
                continue
            sent, reason = await send_signal(
                client, m.order_id, "platform_address", address_signal(m, receiver)
            )
            outcomes.append({"at": at, "change": change, "signal": "platform_address",
                             "applied": sent, "reason": reason})
            continue
        if change in SIGNALS:
            payload = {"status": SIGNALS[change], "platform": m.platform}
            sent, reason = await send_signal(client, m.order_id, "platform_refund", payload)
            outcomes.append(
                {
                    "at": at,
                    "change": change,
                    "signal": "platform_refund",
                    "applied": sent,
                    "reason": reason,
                }
            )
            continue
        wanted = _update_for(change, m)
        if wanted is None:
            outcomes.append(
                {
                    "at": at,
                    "change": change,
                    "applied": False,
                    "reason": "no message for this change in the order workflow yet",
                }
            )
            continue
        update, payload = wanted
        accepted, reason = await send_update(client, m.order_id, update, payload)
        outcomes.append(
            {"at": at, "change": change, "update": update, "applied": accepted, "reason": reason}
        )
    return outcomes
