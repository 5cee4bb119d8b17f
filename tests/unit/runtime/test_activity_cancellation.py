"""Every synchronous activity runs its transaction to the end when it is cancelled.

The SDK cancels a threaded activity by raising `CancelledError` into its thread at whatever
bytecode it runs, unless the activity is declared `no_thread_cancel_exception=True`. Landing
between the SQLite write lock's acquire and its bookkeeping, that leaked the process's write
lock and stalled the worker (the dev-server kill drill with the shipping desk on). So every
sync activity the worker registers opts out; async ones are cancelled at an await.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from temporalio import activity

from activities.registry import all_activities

pytestmark = pytest.mark.unit


def _definitions(acts: list[Any]) -> list[Any]:
    return [activity._Definition.must_from_callable(a) for a in acts]


def test_every_sync_activity_is_shielded_from_thread_cancel_exceptions() -> None:
    defs = _definitions(all_activities(lambda: None, None))
    sync = [d for d in defs if not d.is_async]
    assert len(sync) >= 15, [d.name for d in defs]  # the database steps of orders, stock, desk
    exposed = [d.name for d in sync if not d.no_thread_cancel_exception]
    assert exposed == [], f"sync activities a cancel can interrupt mid-transaction: {exposed}"


def test_the_sdk_still_raises_into_an_unshielded_thread() -> None:
    """The guard above matters: the SDK's raiser does interrupt a plain sync activity."""
    from temporalio.exceptions import CancelledError
    from temporalio.worker._activity import _ThreadExceptionRaiser

    raiser = _ThreadExceptionRaiser()
    started, caught = threading.Event(), []

    def busy() -> None:
        with raiser.active_thread():
            started.set()
            try:
                for _ in range(10**9):  # bytecodes for the exception to land between
                    pass
            except CancelledError as exc:
                caught.append(exc)

    t = threading.Thread(target=busy)
    t.start()
    assert started.wait(10)
    raiser.raise_in_thread(CancelledError)
    t.join(30)
    assert not t.is_alive() and len(caught) == 1
