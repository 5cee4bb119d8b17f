"""A workflow that tries what the sandbox forbids (for tests/unit/runtime/test_runner.py)."""

from __future__ import annotations

import datetime

from temporalio import workflow


@workflow.defn(name="SandboxProbe")
class SandboxProbe:
    @workflow.run
    async def run(self) -> str:
        try:
            datetime.datetime.now()  # the wall clock: not deterministic, refused in the sandbox
        except Exception as exc:  # noqa: BLE001
            return type(exc).__name__
        return "allowed"
