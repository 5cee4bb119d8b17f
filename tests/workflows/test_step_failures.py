"""A step that fails for good holds the order for an operator; it never fails the workflow.

Bad data that no retry can fix makes an activity raise a non-retryable `ApplicationError`.
The workflow turns that into `on_hold` (waiting for an operator), the flag `step_failed`
and a timeline entry naming the step and the error, all visible in the database; `resume`
runs the step again, `cancel` cancels with compensation. Fakes under the real activity
names make the step fail, on the time-skipping server.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.orders import OrderActivities
from models.payloads import CheckOrderInput, ReleaseInput
from tests.harness.documents import order_doc
from tests.harness.shop import PATIENCE, running_shop

BAD_DATA = ApplicationError("created_at: date value out of range", type="InvalidData", non_retryable=True)


def failing(name: str, fails: int = 1) -> tuple[Any, list[int]]:
    """Fakes for the activity `name`: its first `fails` calls fail for good, then the real one runs."""
    calls: list[int] = []

    def fakes(factory: Any) -> list[Any]:
        real = OrderActivities(factory)

        @activity.defn(name="check_order")
        def check_order(inp: CheckOrderInput) -> Any:
            calls.append(1)
            if len(calls) <= fails:
                raise BAD_DATA
            return real.check_order(inp)

        @activity.defn(name="release_order")
        def release_order(inp: ReleaseInput) -> Any:
            calls.append(1)
            if len(calls) <= fails:
                raise BAD_DATA
            return real.release_order(inp)

        return [check_order if name == "check_order" else release_order]

    return fakes, calls


async def test_a_check_that_fails_for_good_holds_the_order_and_resume_runs_it_again(ts_env, sqlite_url):
    fakes, calls = failing("check_order")
    async with running_shop(ts_env, sqlite_url, fakes=fakes) as shop:
        doc = order_doc("held-check")
        oid = doc["order_id"]
        handle = await shop.start(doc)
        state = await shop.until(handle, lambda s: s.stage == "on_hold", "on hold")
        assert state.waiting_for == "operator" and "step_failed" in state.flags
        # The order was recorded although its check failed: the clerk finds it in the queue.
        status = await _persisted(shop, oid, lambda s: s["stage"] == "on_hold")
        failed = [e for e in status["events"] if e["type"] == "step_failed"]
        assert failed[0]["step"] == "check_order" and "out of range" in failed[0]["error"]
        assert calls == [1]

        await handle.signal("resume", {"note": "data fixed upstream"})
        state = await shop.until(handle, lambda s: s.stage == "released", "released")
        assert "step_failed" not in state.flags and len(calls) == 2
        await handle.signal("cancel", {"reason": "test over"})
        assert (await asyncio.wait_for(handle.result(), PATIENCE)).stage == "cancelled"
        shop.assert_invariants(oid)


async def test_a_release_that_fails_for_good_holds_the_order_until_it_is_cancelled(ts_env, sqlite_url):
    fakes, calls = failing("release_order", fails=100)
    async with running_shop(ts_env, sqlite_url, fakes=fakes) as shop:
        doc = order_doc("held-release")
        oid = doc["order_id"]
        handle = await shop.start(doc)
        state = await shop.until(handle, lambda s: s.stage == "on_hold", "on hold")
        # held where the release was being written (its pick lists were not), stock still held
        assert state.held_from == "released" and state.lines[0].reserved == 2 and state.shipments == []
        status = await _persisted(shop, oid, lambda s: s["stage"] == "on_hold")
        assert [e["step"] for e in status["events"] if e["type"] == "step_failed"] == ["release_order"]
        await handle.signal("resume", {})
        await shop.until(handle, lambda s: s.stage == "on_hold" and len(calls) == 2, "held again")
        await handle.signal("cancel", {"reason": "cannot release it"})
        outcome = await asyncio.wait_for(handle.result(), PATIENCE)
        assert (outcome.stage, outcome.reason) == ("cancelled", "cannot release it")
        assert shop.stock("TSHIRT-RED-M") == (100, 0)
        assert shop.status(oid)["refund"] == {"amount": "118.00", "status": "requested"}
        shop.assert_invariants(oid)


async def _persisted(shop: Any, oid: str, check: Any) -> dict[str, Any]:
    deadline = asyncio.get_running_loop().time() + PATIENCE
    while True:
        status = shop.status(oid)
        if status is not None and check(status):
            return status
        assert asyncio.get_running_loop().time() < deadline, status
        await asyncio.sleep(0.05)
