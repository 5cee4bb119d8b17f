"""The one registration list: every activity of the OMS, bound to its dependencies."""

from __future__ import annotations

from typing import Any


def all_activities(factory: Any, sender: Any, *, cainiao: Any = None,
                   search_key: bytes | None = None) -> list[Any]:
    """Every activity of the OMS, bound to its dependencies (one list, used by every worker).
    `cainiao`: the shipping desk's Cainiao client (`shipping.cainiao.TopCainiao`), built from
    the shops' TOP credentials; without one a `cainiao` carrier's parcel is flagged for a clerk."""
    from activities.inventory import InventoryActivities
    from activities.orders import OrderActivities
    from activities.outbox import OutboxActivities
    from activities.shipping import ShippingActivities

    orders = OrderActivities(factory, search_key)  # OMS_SEARCH_KEY (privacy/search_keys.py)
    shipping = ShippingActivities(factory, cainiao)
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
        shipping.readdress_parcels,
    ]



def platform_activities(factory: Any, settings: Any, ring: Any) -> list[Any]:
    """The shops' sync activities (issue 19): the database, the settings (intake's task queue
    and policy) and the codec key ring that seals the shops' credentials."""
    from activities.platforms import PlatformActivities

    return PlatformActivities(factory, settings, ring).all()
