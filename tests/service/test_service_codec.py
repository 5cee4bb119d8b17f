"""The Temporal codec-server endpoints (`/codec/decode`, `/codec/encode`) of the real service.

They use the codec of the service's own Temporal client (the workers' data converter): what
the service encodes, it decodes back to the plain payload, whatever that codec is (with none
configured, payloads pass through unchanged). Only clerk and admin keys; in --dev on loopback
also no key; platform and warehouse keys never. CORS answers the Temporal UI's origin.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.harness.service import ServiceStack, running_service

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def svc(dev_env: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceStack]:
    async with running_service(dev_env, tmp_path_factory.mktemp("codec"), worker=False) as stack:
        yield stack


@pytest.fixture(scope="module")
async def dev_svc(dev_env: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServiceStack]:
    async with running_service(dev_env, tmp_path_factory.mktemp("codec-dev"), worker=False,
                               dev=True) as stack:
        yield stack


def as_json(payloads: Any) -> dict[str, Any]:
    return {
        "payloads": [
            {"metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
             "data": base64.b64encode(p.data).decode()}
            for p in payloads
        ]
    }


def converter(stack: ServiceStack) -> Any:
    return stack.service.server.config.app.state.oms.client.data_converter


async def test_what_the_service_encodes_it_decodes_to_the_plain_payload(svc: ServiceStack) -> None:
    dc = converter(svc)
    value = {"order_id": "CODEC-1", "buyer": {"phone": "13812345678"}}
    plain = dc.payload_converter.to_payloads([value])
    stored = await dc.encode([value])  # what the workers hand to Temporal
    decoded = await svc.post("/codec/decode", "clerk", json=as_json(stored))
    assert decoded.status_code == 200, decoded.text
    assert decoded.json() == as_json(plain)
    if dc.payload_codec is None:
        assert as_json(stored) == as_json(plain)  # nothing to decode: passed through

    encoded = await svc.post("/codec/encode", "admin", json=as_json(plain))
    assert encoded.status_code == 200
    back = await svc.post("/codec/decode", "admin", json=encoded.json())
    assert back.json() == as_json(plain)
    assert (await svc.post("/codec/decode", "clerk", json={"payloads": []})).json() == {"payloads": []}


async def test_only_clerk_and_admin_keys_may_use_the_codec(svc: ServiceStack) -> None:
    body = {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "e30="}]}
    for path in ("/codec/decode", "/codec/encode"):
        assert (await svc.http.post(path, json=body)).status_code == 401  # not --dev: a key needed
        for role in ("platform", "warehouse"):
            r = await svc.post(path, role, json=body)
            assert r.status_code == 403 and role in r.json()["error"]
        for role in ("clerk", "admin"):
            assert (await svc.post(path, role, json=body)).status_code == 200


async def test_in_dev_on_loopback_the_local_ui_needs_no_key_but_other_roles_stay_out(
    dev_svc: ServiceStack,
) -> None:
    body = {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "e30="}]}
    r = await dev_svc.http.post("/codec/decode", json=body)
    assert r.status_code == 200 and r.json() == body
    assert (await dev_svc.post("/codec/decode", "platform", json=body)).status_code == 403
    assert (await dev_svc.post("/codec/decode", "warehouse", json=body)).status_code == 403
    assert (await dev_svc.http.post("/codec/decode", json=body,
                                    headers={"Authorization": "Bearer oms_bogus"})).status_code == 401
    # --dev opens the codec only: the API still wants a key
    assert (await dev_svc.http.get("/v1/orders")).status_code == 401


async def test_cors_answers_the_temporal_ui_and_no_one_else(svc: ServiceStack) -> None:
    _host, port = svc.settings.temporal_host_port
    ui = f"http://localhost:{port + 1000}"
    preflight = await svc.http.options("/codec/decode", headers={
        "Origin": ui, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace,authorization"})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ui
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "x-namespace" in preflight.headers["access-control-allow-headers"]
    assert preflight.headers["access-control-allow-credentials"] == "true"

    r = await svc.post("/codec/decode", "clerk", json={"payloads": []}, headers={"Origin": ui})
    assert r.headers["access-control-allow-origin"] == ui
    refused = await svc.http.post("/codec/decode", json={"payloads": []}, headers={"Origin": ui})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == ui

    other = await svc.http.options("/codec/decode", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert other.status_code == 403 and "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"payloads": [{"metadata": {}, "data": "not base64!"}]}, "payloads.0"),
        ({"payloads": [{"metadata": {"encoding": "%%%"}, "data": ""}]}, "payloads.0"),
        ({"payloads": "nope"}, "payloads"),
        ({}, "payloads"),
        ({"payloads": [{"metadata": {}, "data": ""}] * 1001}, "payloads"),
    ],
)
async def test_a_malformed_codec_body_is_a_422_naming_the_field(
    svc: ServiceStack, body: dict[str, Any], field: str
) -> None:
    r = await svc.post("/codec/decode", "clerk", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
