"""The order's compensation: a stack of undo steps, run in reverse on any exit but completion.

Each undo is pushed right before the step it undoes (`push`). Every undo step reads what
the database holds for the order and is idempotent, so it also undoes what a step did
whose result the workflow never saw (its workflow task failed after the local activity
ran). The stack runs on a cancel, a reject, an expired wait and a cancellation requested
through Temporal itself, shielded from a further cancellation (`shielded`); an undo that
fails is logged and the others still run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.order.steps import STEP_FAILED, cause

if TYPE_CHECKING:
    from workflows.order.state import OrderState

T = TypeVar("T")


class Compensation:
    def __init__(self, state: OrderState) -> None:
        self.state = state
        self.stack: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
        self.cancel_requested = False  # a Temporal cancellation came in while it ran
        # Orders started before 2026-12-01 ran compensation inline, not in a task of its
        # own: a task more changes which of the ready tasks runs first, and with it the
        # order of their commands on replay.
        self.shield = False

    def push(self, name: str, undo: Callable[[], Awaitable[Any]]) -> None:
        """Register `undo` before the step it undoes; an undo already on the stack covers every
        later step of its kind (it undoes whatever the database holds for the order)."""
        if all(existing != name for existing, _ in self.stack):
            self.stack.append((name, undo))

    def names(self) -> list[str]:
        return [name for name, _ in reversed(self.stack)]

    async def unwind(self) -> None:
        for name, undo in reversed(self.stack):
            try:
                await undo()
            except STEP_FAILED as err:  # bad data no retry can fix: the rest still run
                self.state.flag("undo_failed")
                self.state.log("undo_failed", step=name, error=cause(err))

    async def shielded(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` to its end even if Temporal cancels the workflow meanwhile."""
        if not self.shield:
            return await work
        task = asyncio.ensure_future(work)
        while True:
            try:
                return await asyncio.shield(task)
            except asyncio.CancelledError:
                if task.done():
                    raise
                self.cancel_requested = True
