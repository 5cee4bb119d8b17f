"""The Temporal client of every OMS process: the standard environment settings, the data converter
with its payload codec, the checks a worker makes before it starts, the SDK's own metrics."""

from __future__ import annotations

from typing import Any

import structlog
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
)

from models.errors import OmsError
from models.settings import Settings


async def connect(settings: Settings, *, runtime: Any = None) -> Client:
    """Connect with the standard Temporal environment settings (TLS, API key, profile) honoured.

    Every client and worker of the OMS comes from here, with `data_converter(settings)`:
    payloads are encrypted before they leave the process. `runtime`: a
    `temporalio.runtime.Runtime` of its own (the worker's, with SDK metrics).
    """
    from temporalio.envconfig import ClientConfig

    converter = data_converter(settings)  # a bad key ring stops here, before any connection
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config())
    config["target_host"] = settings.temporal_address
    config["namespace"] = settings.temporal_namespace
    if runtime is not None:
        config["runtime"] = runtime
    return await Client.connect(**config, data_converter=converter)


class ConfigRefused(OmsError):
    """Settings nothing may start with: a malformed or wrong codec key, a bad webhook secret."""


def preflight(settings: Settings) -> None:
    """What a worker (and the demo) checks before it starts; `ConfigRefused` says what is wrong.

    The codec key ring must parse (or the embedded default be made), each key must be the
    one this installation used under its id (`runtime.codec.check_ring`, which needs the
    database: it is migrated here), and a webhook URL needs well-formed secrets.
    """
    from models.db import make_engine, migrate, session_factory
    from outbox.webhooks import WebhookConfigError, check_settings
    from runtime.codec import CodecConfigError, check_ring, key_ring

    try:
        ring = key_ring(settings)
        check_settings(settings)
        migrate(settings.db_url)
        engine = make_engine(settings.db_url, pool_size=1)
        try:
            check_ring(ring, session_factory(engine))
        finally:
            engine.dispose()
    except (CodecConfigError, WebhookConfigError) as exc:
        raise ConfigRefused(str(exc)) from None


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic payloads, sealed by the AES-256-GCM codec (`runtime/codec.py`); failure
    messages and stack traces moved into encoded attributes, so the codec seals them too.

    Raises `runtime.codec.CodecConfigError` for a malformed or unreadable key ring.
    """
    import dataclasses

    from temporalio.converter import DefaultFailureConverterWithEncodedAttributes

    from runtime.codec import AesGcmCodec, key_ring

    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=AesGcmCodec(key_ring(settings)),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def sdk_metrics_runtime(settings: Settings) -> Any:
    """A Temporal runtime exporting the SDK's own worker metrics (task latencies, slots, polls)
    as Prometheus text on OMS_SDK_METRICS_ADDRESS (default 127.0.0.1:9464; empty: off).
    None when off, or when that port is taken (the worker runs on, without them)."""
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

    address = (settings.sdk_metrics_address or "").strip()
    if not address:
        return None
    try:
        return Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(bind_address=address, durations_as_seconds=True)
            )
        )
    except ValueError as exc:
        structlog.get_logger().warning("sdk metrics off", address=address, error=str(exc))
        return None

