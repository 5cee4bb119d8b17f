"""What every operator command runs in: settings, the database and the Temporal client, built once.

Shared by the CLI (`starter.py`), the demo and the HTTP service, so none of them imports another.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from temporalio.client import Client

from models.errors import OmsError
from models.settings import Settings


class CliError(OmsError):
    """A clear message for the operator; exit code 1."""


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def emit_json(value: Any) -> None:
    out(json.dumps(value, ensure_ascii=False, indent=2, default=str))


# ------------------------------------------------------------------ context


class Context:
    """Settings, database and Temporal client, built once per command."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._engine: Any = None
        self._client: Client | None = None

    @property
    def factory(self) -> Any:
        from models.db import make_engine, migrate, session_factory

        if self._engine is None:
            migrate(self.settings.db_url)
            self._engine = make_engine(self.settings.db_url)
        return session_factory(self._engine)

    def session(self) -> Any:
        from models.db import transaction

        return transaction(self.factory)

    async def client(self) -> Client:
        if self._client is None:
            from runtime.codec import CodecConfigError
            from runtime.temporal import connect

            try:
                self._client = await connect(self.settings)
            except CodecConfigError as exc:
                raise CliError(f"payload codec: {exc}") from exc
            except Exception as exc:
                raise CliError(
                    f"cannot reach Temporal at {self.settings.temporal_address} ({exc}); "
                    "start it with `python worker.py --dev`"
                ) from exc
        return self._client

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
