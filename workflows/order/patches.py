"""Every change of the order workflow's commands, by date, and when its guard can go.

A running order replays its history on whatever code the worker has. A change of the
commands the workflow issues (a step more or less, a step moved) is taken only by
orders started after it: `workflow.patched(id)` marks the history of a new order and
is False on replay of an older one. A workflow decides its patches in its *first
activation*: a patch taken after a local activity is unsafe — when the server splits
the workflow task between that activity's result and the `patched` call (a long step,
an operator's query), replay resolves the activity inside the earlier task, before the
server's record of the patch is known, takes the old branch and fails on the marker
(seen on `release-writes-state`; `tests/histories/split-after-check-cancelled.json`).

A guard is retired only by the SDK's procedure, in two steps, each a deploy:

1. once no order started before the change is running (orders live for days, at most
   `backorder_deadline` / `timeout` plus a hold, so about a month after the date given here,
   checked with `temporal workflow count --query 'ExecutionStatus="Running" AND StartTime <
   "<date>"'`): `workflow.patched(id)` becomes `workflow.deprecate_patch(id)` and the old
   branch goes. Histories recorded before the change are deleted from `tests/histories/` in
   the same commit, which names the guard they alone needed; every other history must go on
   replaying;
2. once no order that ran step 1's code is running (the same query, with step 1's date):
   the `deprecate_patch` call goes too.

None is due yet (2026-12-05): the oldest guards date from 2026-11-29.
"""

from __future__ import annotations

from temporalio import workflow

# 2026-11-29, taken where each change sits (orders started 11-29 .. 11-30):
CHECK_RESERVES = "check-reserves-when-clear"  # check_order reserves a clean order in its step
RELEASE_WRITES_STATE = "release-writes-state"  # release_order records the release (one write less)
PERSIST_WHEN_PAUSED = "persist-when-paused"  # no state write beside a woken flow
WAREHOUSE_WITH_STATE = "warehouse-events-with-state"  # picked/packed/shipped ride the state write

# 2026-11-30, first activation: every change above, and search attributes upserted once
# per pause instead of at every change.
FLOW_2026_11_30 = "order-flow-2026-11-30"

# 2026-12-01, first activation: every change above, and each undo step is pushed on the
# compensation stack right before the step it undoes (an order cancelled before its
# release no longer withdraws pick lists it never had); compensation runs shielded
# from a Temporal cancellation.
FLOW_2026_12_01 = "order-flow-2026-12-01"

# 2026-12-05, first activation, only for an order whose document carries a platform's
# `ship_by` (issue 19): two durable timers flag it `ship_by_soon`, then `ship_by_late`.
SHIP_BY_TIMERS = "ship-by-timers"
# 2026-12-05, first activation: the shipping desk (issue 20): after the release, each new
# shipment's parcel, carrier and waybill (`stages.desk`), the waybills' undo pushed first.
SHIPPING_DESK = "order-shipping-desk-2026-12-05"
# 2026-12-05, first activation: a refund asked for on the platform holds the order (issue 19,
# `refund_hold`): on hold, its open pick lists withdrawn with the stock kept; the refund
# closed, it goes on where it stopped (released again if its pick lists were withdrawn).
REFUND_HOLD = "order-refund-hold-2026-12-05"
# 2026-12-05, first activation: both changes above in one marker, for orders started after them
# (a new order marks only its newest flow: three markers in its first task made the server keep
# the speculative workflow task of the first update refused after it, one empty task written).
FLOW_2026_12_05 = "order-flow-2026-12-05"
# 2026-12-05 (later), first activation: every change above, and an address the buyer changed on
# the platform after the release re-labels the order's parcels (`stages.desk.readdress`): a
# Cainiao number issued to the old receiver cancelled, a printed label's number voided.
FLOW_2026_12_05_B = "order-flow-2026-12-05-b"


class Patches:
    """What the order's history says about the changes above, decided once at its start."""

    def __init__(self) -> None:
        self.flow_12_01 = False  # started on the code of 2026-12-01 or later
        self.flow_11_30 = False  # started on the code of 2026-11-30 or later
        self.desk = False  # started on the shipping desk's code (2026-12-05) or later
        self.refund_hold = False  # a platform's refund holds it (2026-12-05) or only flags it
        self.readdress = False  # a changed address re-labels its parcels (2026-12-05, later)

    def decide(self) -> None:
        """Called first thing in `run`. A new order marks only the newest flow, which implies
        the older ones; an order started earlier finds its own marker (or none) instead."""
        self.readdress = workflow.patched(FLOW_2026_12_05_B)
        flow_12_05 = self.readdress or workflow.patched(FLOW_2026_12_05)
        self.flow_12_01 = flow_12_05 or workflow.patched(FLOW_2026_12_01)
        self.flow_11_30 = self.flow_12_01 or workflow.patched(FLOW_2026_11_30)
        self.desk = flow_12_05 or (self.flow_12_01 and workflow.patched(SHIPPING_DESK))
        self.refund_hold = flow_12_05 or (self.desk and workflow.patched(REFUND_HOLD))

    def uses(self, patch_id: str) -> bool:
        """A 2026-11-29 change: in for any order started on the flow of 11-30 or later; for
        one started earlier, decided where the change was first guarded."""
        return self.flow_11_30 or workflow.patched(patch_id)
