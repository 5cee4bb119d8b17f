"""One order's run: its state and the parts that act on it, handed to every stage."""

from __future__ import annotations

from dataclasses import dataclass

from workflows.order.compensation import Compensation
from workflows.order.patches import Patches
from workflows.order.persistence import Persistence
from workflows.order.state import OrderState
from workflows.order.steps import Steps
from workflows.order.visibility import Visibility
from workflows.order.waits import Waits


@dataclass
class Order:
    state: OrderState
    patches: Patches
    visibility: Visibility
    steps: Steps
    persistence: Persistence
    compensation: Compensation
    waits: Waits

    @classmethod
    def wire(cls, state: OrderState) -> Order:
        patches = Patches()
        visibility = Visibility(state)
        state.on_publish = visibility.publish
        steps = Steps(state)
        persistence = Persistence(state, steps, patches)
        steps.persistence = persistence
        o = cls(state, patches, visibility, steps, persistence, Compensation(state), None)  # type: ignore[arg-type]
        o.waits = Waits(o)
        steps.hold_failed = o.waits.hold_failed_step
        return o
