"""schemathesis against the service's own /openapi.json: no 5xx, responses as documented.

The service runs as an operator runs it (`python starter.py serve`, a real process on a free
port) with a worker beside it (`python worker.py`), on the session's dev server. Every
operation gets a bounded number of generated requests, valid and invalid, with an admin key
(the role that may call everything); the checks are: no server error, a documented status
code, a documented content type, and a body that matches the documented schema.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import FailedHealthCheck, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from models.db import make_engine, migrate, session_factory, transaction
from service.keys import create_key
from tests.harness import ROOT, codec_keys
from tests.harness.drills import free_port
from tests.harness.reference import load_sample

pytestmark = pytest.mark.e2e

EXAMPLES = 15


@pytest.fixture(scope="module")
def api(dev_env: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    home = tmp_path_factory.mktemp("schema")
    db = f"sqlite:///{home / 'oms.db'}"
    migrate(db)
    engine = make_engine(db)
    factory = session_factory(engine)
    load_sample(factory)
    with transaction(factory) as session:
        key = create_key(session, name="schemathesis", role="admin")
    engine.dispose()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TEMPORAL_"))}
    env.update({
        "OMS_HOME": str(home), "OMS_DATABASE_URL": db, "OMS_LOG_FORMAT": "json",
        "OMS_LOG_LEVEL": "WARNING", "OMS_SDK_METRICS_ADDRESS": "",
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "OMS_TASK_QUEUE": f"schema-{uuid.uuid4().hex[:8]}", "OMS_HTTP_ADDRESS": f"127.0.0.1:{port}",
        "OMS_SESSION_SECRET": uuid.uuid4().hex * 2, "PYTHONUNBUFFERED": "1", **codec_keys.ENV,
    })
    procs = []
    for name, argv in (("worker", [str(ROOT / "worker.py")]), ("serve", [str(ROOT / "starter.py"), "serve"])):
        sink = open(home / f"{name}.log", "w")  # noqa: SIM115 (closed with the process)
        procs.append((subprocess.Popen([sys.executable, *argv], env=env, cwd=home, stdout=sink,
                                       stderr=subprocess.STDOUT), sink))
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (home / "serve.log").read_text()[-3000:]
            assert all(p.poll() is None for p, _ in procs), (home / "serve.log").read_text()[-3000:]
            time.sleep(0.2)
        yield url, key
    finally:
        for proc, _sink in procs:
            proc.send_signal(signal.SIGINT)
        for proc, sink in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            sink.close()
    log = (home / "serve.log").read_text()
    assert "Traceback" not in log, log[-4000:]


CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


def exercise(operation: Any, mode: GenerationMode, url: str, key: str, ran: dict[str, int]) -> None:
    """Up to EXAMPLES generated requests of one operation; raises on the first failed check."""
    label = operation.label

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        ran[label] = ran.get(label, 0) + 1
        case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {key}"},
                               checks=CHECKS, timeout=30)

    run()


def test_every_operation_conforms_to_its_schema(api: tuple[str, str]) -> None:
    """Each operation, with valid and with invalid generated requests (schemathesis's own
    strategies, driven by hypothesis here: its pytest plugin predates this pytest)."""
    url, key = api
    schema = schemathesis.openapi.from_url(url + "/openapi.json")
    failures: list[str] = []
    ran: dict[str, int] = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                exercise(operation, mode, url, key, ran)
            except (Unsatisfiable, FailedHealthCheck):
                continue  # no invalid request exists for this operation's parameters
            except Exception as exc:
                failures.append(f"{operation.label} [{mode.value}]: {exc}"[:3000])
    assert not failures, "\n\n".join(failures)
    assert len(ran) >= 15, sorted(ran)
