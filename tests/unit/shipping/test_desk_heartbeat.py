"""The desk's activities heartbeat from a helper thread while their blocking step runs
(`activities.shipping.beating`), so that a worker that dies mid-step is seen by the server
within the heartbeat timeout, not after the step's whole start-to-close timeout."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from temporalio.testing import ActivityEnvironment

from activities.shipping import BEAT_EVERY, beating
from shipping.retry import WAYBILL_HEARTBEAT, WAYBILL_TIMEOUT


def test_a_blocking_step_heartbeats_until_it_ends_and_then_stops() -> None:
    env = ActivityEnvironment()
    beats: list[str] = []
    env.on_heartbeat = lambda *details: beats.append(threading.current_thread().name)

    def step() -> str:
        with beating(every=0.05):
            time.sleep(0.6)  # a Cainiao call, a long transaction: this thread cannot beat
        return "done"

    assert env.run(step) == "done"
    assert len(beats) >= 5 and set(beats) == {"desk-heartbeat"}
    after = len(beats)
    time.sleep(0.3)
    assert len(beats) == after  # the helper stopped with the step
    assert not [t for t in threading.enumerate() if t.name == "desk-heartbeat"]


def test_a_step_that_raises_stops_its_heartbeat_too() -> None:
    env = ActivityEnvironment()
    beats: list[object] = []
    env.on_heartbeat = lambda *details: beats.append(details)

    def step() -> None:
        with beating(every=0.05):
            time.sleep(0.2)
            raise ValueError("the parcel cannot be recorded")

    try:
        env.run(step)
    except ValueError as exc:
        assert str(exc) == "the parcel cannot be recorded"
    else:
        raise AssertionError("the step's error was swallowed")
    assert beats and not [t for t in threading.enumerate() if t.name == "desk-heartbeat"]


def test_the_beat_is_well_inside_the_heartbeat_timeout_and_that_inside_the_step_timeout() -> None:
    assert timedelta(seconds=BEAT_EVERY * 3) <= WAYBILL_HEARTBEAT < WAYBILL_TIMEOUT
