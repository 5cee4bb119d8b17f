"""ship_by: the orders' platform ship-by time as columns, the queue's deadline index (issue 19)

Revision ID: 0007_ship_by
Revises: 0006_console

* ``orders.ship_by``: the document's ``ship_by`` (a platform's ship-by time) in UTC, for lists;
* ``orders.ship_due``: the same while the order is still to ship, NULL once it shipped,
  completed or was cancelled: the queue sorts on it (soonest deadline first, then the orders
  without one oldest first), each list reading one range of ``ix_orders_waiting_due_created_id``
  (by what orders wait for), ``ix_orders_stage_due_created_id`` (by stage) or
  ``ix_orders_due_created_id`` (all orders; a flag's list checks its flag row by key).

The orders already kept get both from their documents here (batched); from then on the order's
record and its state writes (``orders.store``) keep them.
"""
from datetime import UTC, datetime
from typing import Any

from alembic import op
import sqlalchemy as sa


revision = "0007_ship_by"
down_revision = "0006_console"
branch_labels = None
depends_on = None

CLOSED = ("shipped", "completed", "cancelled")


def _utc(raw: Any) -> datetime | None:
    # as models.documents.ship_by_time, in UTC: a migration keeps its own copy, frozen with it
    if not isinstance(raw, str):
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return at.astimezone(UTC) if at.tzinfo is not None else None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ship_by", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("ship_due", sa.DateTime(timezone=True), nullable=True))
    bind = op.get_bind()
    orders = sa.table("orders", sa.column("order_id"), sa.column("stage"),
                      sa.column("document", sa.JSON), sa.column("ship_by", sa.DateTime(timezone=True)),
                      sa.column("ship_due", sa.DateTime(timezone=True)))
    # Only the documents that carry a ship_by are read (the platforms' orders).
    has = orders.c.document["ship_by"].as_string().is_not(None)
    found = bind.execute(
        sa.select(orders.c.order_id, orders.c.stage, orders.c.document["ship_by"].as_string()).where(has)
    ).all()  # read before writing the same table: three short values a row
    update = orders.update().where(orders.c.order_id == sa.bindparam("b_order")).values(
        ship_by=sa.bindparam("b_by"), ship_due=sa.bindparam("b_due"))
    rows = [{"b_order": order_id, "b_by": at, "b_due": None if stage in CLOSED else at}
            for order_id, stage, raw in found if (at := _utc(raw)) is not None]
    for first in range(0, len(rows), 2000):
        bind.execute(update, rows[first:first + 2000])
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index("ix_orders_due_created_id", ["ship_due", "created_at", "order_id"])
        batch_op.create_index("ix_orders_waiting_due_created_id",
                              ["waiting_for", "ship_due", "created_at", "order_id"])
        batch_op.create_index("ix_orders_stage_due_created_id",
                              ["stage", "ship_due", "created_at", "order_id"])


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_stage_due_created_id")
        batch_op.drop_index("ix_orders_waiting_due_created_id")
        batch_op.drop_index("ix_orders_due_created_id")
        batch_op.drop_column("ship_due")
        batch_op.drop_column("ship_by")
