"""Logging, configured once in each entry point's `main()`: structlog for our code and Temporal's
stdlib records alike, console on a TTY and JSON otherwise, buyer data masked on every line."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

from models.settings import Settings
from privacy.mask import mask_field


def _mask_pii(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Buyer data (a phone, an address detail) masked by the one masker; a host's `address`
    (the HTTP port, the metrics exporter) is no buyer data and is shown as it is."""
    for key in list(event):
        event[key] = mask_field(key, event[key])
    return event


def _bind_activity(_logger: Any, _name: str, event: dict[str, Any]) -> dict[str, Any]:
    """Inside an activity, every log line names the activity and its order workflow."""
    from temporalio import activity

    if activity.in_activity():
        info = activity.info()
        event.setdefault("activity", info.activity_type)
        event.setdefault("workflow_id", info.workflow_id)
        event.setdefault("attempt", info.attempt)
    return event


def configure_logging(settings: Settings, *, stream: Any = None) -> None:
    """structlog for our code and Temporal's stdlib records alike; console on a TTY, JSON otherwise."""
    stream = stream or sys.stderr
    fmt = settings.log_format
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _bind_activity,
        _mask_pii,
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=stream.isatty())
        if fmt == "console"
        else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    structlog.configure(
        # Below the level, a line is dropped before the chain (timestamp, masking) runs.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())

