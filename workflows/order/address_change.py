"""The buyer changed the address on the platform before the order shipped (SPEC §3.9, issue 19).

The shop's sync decrypts the new receiver and sends the order `platform_address` (`messages`):
the order takes it at once (each field old → new in the timeline, masked) and marks it
unchecked (`state.address_changed`). Where the order stands decides what follows:

* not yet past its check (checking, waiting for the buyer or the money): the intake loop
  checks the document as it is, so the new address is what its next check sees; an order
  waiting for its buyer's answer takes the change as that answer (the buyer corrected it);
* past its check, in any wait (stock, review, the warehouse, a hold) or at the step before a
  release: the address is **checked again** (`check_order`, no reservation, nothing
  recorded twice), its findings replace the address findings and flags; an order already
  released sends its warehouse an **amended pick list** (`pick_list_amended`: the open
  shipments and the new delivery region; the door address and the receiver stay off it,
  as on the pick list); on the shipping desk its parcels are re-labelled for the new
  address (`stages.desk.readdress`: a merged parcel left, a Cainiao number issued to the old
  receiver cancelled and a new one issued, a printed label's number voided, the carrier
  chosen again when the old one cannot serve the new address).

Found wanting (a street without a number, say), the new address is flagged for a clerk like
any finding; the amended pick list still goes out, so the warehouse never packs for the old
address. The same address sent twice is refused by the message's rule ("the order already
has this address"): a change seen twice changes nothing the second time.

No patch guards the check and the amended pick list: old histories never carry
`platform_address`, and every command here follows that signal. The parcels' re-labelling
came later, so it is taken only by orders started on its code (`patches.FLOW_2026_12_05_B`):
an older order replaying a change it already took must not meet a step it never ran.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.orders import OrderActivities
    from models.enums import Stage
    from models.payloads import CheckOrderInput
    from workflows.order.stages import desk, intake

if TYPE_CHECKING:
    from workflows.order.context import Order

# Stages whose own loop checks the current document next (intake): nothing to do here.
_INTAKE = {Stage.RECEIVED, Stage.CHECKING, Stage.AWAITING_BUYER, Stage.AWAITING_PAYMENT}
_DONE = {Stage.SHIPPED, Stage.COMPLETED, Stage.CANCELLED}


def wire(o: Order) -> None:
    """Every wait of the order (`Waits.wait`) checks a changed address as it comes."""
    o.waits.address_due = lambda: due(o)
    o.waits.address_amend = lambda: amend(o)


def due(o: Order) -> bool:
    s = o.state
    return s.address_changed and s.stage not in _INTAKE and s.stage not in _DONE


async def checkpoint(o: Order) -> None:
    """Before a release: a changed address is checked first (the pick list takes it)."""
    if due(o):
        await amend(o)


async def amend(o: Order) -> None:
    """Check the new address again; a released order's warehouse gets an amended pick list."""
    s = o.state
    s.address_changed = False
    result = await o.steps.db(
        OrderActivities.check_order,
        CheckOrderInput(order=s.order, policy=s.policy, submitted_at=None,
                        buyer_confirmed=s.buyer_confirmed, reserve=None),
    )
    intake.take_findings(o, result.findings, "address_checked")
    open_shipments = s.open_shipments()
    if open_shipments:
        address = s.order.address
        await o.steps.emit(
            "pick_list_amended",
            {
                "shipments": [sh.id for sh in open_shipments],
                "ship_to": {"country": address.country, "province": address.province,
                            "city": address.city, "district": address.district},
                "reason": "the buyer changed the address on the platform",
            },
            "address-amended",
        )
        await desk.readdress(o)
