"""The one registration list: every activity of the OMS, bound to its dependencies."""

from __future__ import annotations

from typing import Any


def all_activities(factory: Any, sender: Any) -> list[Any]:
    """Every activity of the OMS, bound to its dependencies (one list, used by every worker)."""
    from activities.inventory import InventoryActivities
    from activities.orders import OrderActivities
    from activities.outbox import OutboxActivities
    from activities.shipping import ShippingActivities

    orders = OrderActivities(factory)
    shipping = ShippingActivities(factory)
    inventory = InventoryActivities(factory)
    outbox = OutboxActivities(factory, sender)
    return [
        orders.record_order,
        orders.check_order,
        orders.contact_buyer,
        orders.review_order,
        orders.release_order,
        orders.update_shipment,
        orders.update_shipments,
        orders.withdraw_shipments,
        orders.request_refund,
        orders.emit_event,
        orders.persist_state,
        inventory.allocate,
        inventory.release_stock,
        inventory.restock,
        inventory.transfer_arrival,
        inventory.pick_exception,
        outbox.deliver_event,
        shipping.prepare_parcel,
        shipping.void_parcels,
    ]

