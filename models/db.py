"""Engine, sessions and migrations for SQLite (embedded default) and PostgreSQL.

SQLite is opened in WAL mode with a busy timeout, and every transaction starts
with ``BEGIN IMMEDIATE`` so that two writers serialise at the start instead of
failing half-way; PostgreSQL relies on row locks (``SELECT ... FOR UPDATE``)
and conditional updates. The schema is managed by Alembic (`migrate`), never by
``create_all`` at random moments.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.pool import QueuePool
from sqlmodel import Session

SessionFactory = Callable[[], Session]

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def make_engine(url: str, *, pool_size: int = 10, read_only: bool = False) -> Engine:
    """An engine for `url`. `read_only` (the HTTP service's reads): on SQLite, transactions
    begin deferred, as WAL readers, and never queue for the write lock; elsewhere the same."""
    if url.startswith("sqlite"):
        if url.startswith("sqlite:///") and ":memory:" not in url:
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        # Pooled: opening a connection costs a schema parse, and closing the last one
        # checkpoints the WAL; per transaction that halved the ledger's throughput.
        # No overflow limit: writers queue on the write lock below, never on the pool.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 60, "isolation_level": None},
            poolclass=QueuePool,
            pool_size=pool_size,
            max_overflow=-1,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        if read_only:

            @event.listens_for(engine, "begin")
            def _sqlite_begin_deferred(conn):  # type: ignore[no-untyped-def]
                conn.exec_driver_sql("BEGIN")  # one snapshot for the whole read

            return engine

        # The threads of one process queue for writing on a lock, not in SQLite's busy
        # handler: its back-off sleeps (1, 2, 5, ... 100 ms a try) starve whoever loses
        # a race, and cut a hot SKU's throughput several times over. Other processes
        # still meet at BEGIN IMMEDIATE and the busy timeout.
        writer = threading.Lock()

        @event.listens_for(engine, "begin")
        def _sqlite_begin_immediate(conn):  # type: ignore[no-untyped-def]
            if not writer.acquire(timeout=60):
                raise TimeoutError("waited 60 s for this process's SQLite write lock")
            conn.info["oms_writer"] = True
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            except BaseException:
                conn.info.pop("oms_writer", None)
                writer.release()
                raise

        def _end_then_release(conn, end):  # type: ignore[no-untyped-def]
            # These events fire before SQLAlchemy's own COMMIT / ROLLBACK: end the
            # transaction here (the driver's call after it is then a no-op), and only
            # then let the next writer in.
            if conn.info.pop("oms_writer", False):
                try:
                    end(conn.connection.dbapi_connection)
                finally:
                    writer.release()

        event.listen(engine, "commit", lambda conn: _end_then_release(conn, lambda c: c.commit()))
        event.listen(
            engine, "rollback", lambda conn: _end_then_release(conn, lambda c: c.rollback())
        )

        @event.listens_for(engine, "checkin")
        @event.listens_for(engine, "invalidate")
        def _never_leak(_dbapi_conn, record, *_exc):  # type: ignore[no-untyped-def]
            # A connection that leaves without commit or rollback (invalidated) still frees the lock.
            if record is not None and record.info.pop("oms_writer", False):
                writer.release()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def session_factory(engine: Engine) -> SessionFactory:
    def factory() -> Session:
        return Session(engine, expire_on_commit=False)

    return factory


@contextmanager
def transaction(factory: SessionFactory) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def is_postgres(bind: Session | Engine) -> bool:
    """PostgreSQL, where concurrent writers lock their rows (``SELECT ... FOR UPDATE``), rather
    than SQLite, where ``BEGIN IMMEDIATE`` serialises them already."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return engine.dialect.name == "postgresql"


def insert_new(session: Session, table: Table, row: dict[str, Any]) -> bool:
    """``INSERT ... ON CONFLICT DO NOTHING`` of one row: True when it was new.

    A plain statement: the hot steps (outbox events, idempotency keys) write rows they
    never read back, and the ORM's load-then-add cost more than the insert itself.
    """
    stmt = _insert_new_stmt(session.get_bind().dialect.name, table)
    return session.execute(stmt, row).first() is not None


@lru_cache(maxsize=64)
def _insert_new_stmt(dialect: str, table: Table) -> Any:
    """Built once per table: the values come as parameters, so the compiled form is cached too."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    key = next(iter(table.primary_key.columns))
    return insert(table).on_conflict_do_nothing().returning(key)


def migrate(url: str) -> None:
    """Bring the schema up to date (idempotent): ``alembic upgrade head``."""
    from alembic import command
    from alembic.config import Config

    if url.startswith("sqlite:///") and ":memory:" not in url:
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(cfg, "head")
