"""HTTP service: API keys, the order_flags index table, keyset indexes for lists

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 21:30:00

* ``api_keys``: one row per key, only its SHA-256 kept.
* ``order_flags``: one row per (order, flag), so ``list --flag`` and ``GET /v1/orders?flag=``
  are an index range instead of a scan of every order's JSON; filled from the orders held.
* indexes for keyset pages in (created_at, order_id) order: the whole list, by stage, by
  waiting_for (the old (stage, created_at) index is replaced by one that ends in order_id);
  the outbox by (created_at, id) and by status (webhook-delivery metrics).
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'api_keys',
        sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('key_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('prefix', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('name'),
        sa.UniqueConstraint('key_hash'),
    )
    op.create_table(
        'order_flags',
        sa.Column('order_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('flag', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('order_id', 'flag'),
    )
    with op.batch_alter_table('order_flags', schema=None) as batch_op:
        batch_op.create_index(
            'ix_order_flags_flag_created_id', ['flag', 'created_at', 'order_id'], unique=False
        )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_stage_created')
        batch_op.create_index('ix_orders_created_id', ['created_at', 'order_id'], unique=False)
        batch_op.create_index(
            'ix_orders_stage_created_id', ['stage', 'created_at', 'order_id'], unique=False
        )
        batch_op.create_index(
            'ix_orders_waiting_created_id', ['waiting_for', 'created_at', 'order_id'], unique=False
        )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_created_id', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_outbox_status', ['status'], unique=False)

    # The flags of the orders already held, one row each (batched: a large database stays
    # within memory).
    bind = op.get_bind()
    orders = sa.table(
        'orders', sa.column('order_id'), sa.column('flags', sa.JSON), sa.column('created_at')
    )
    # created_at is copied as the database gave it (no type: no conversion either way)
    flags = sa.table('order_flags', sa.column('order_id'), sa.column('flag'), sa.column('created_at'))
    result = bind.execute(
        sa.select(orders.c.order_id, orders.c.flags, orders.c.created_at).execution_options(
            yield_per=2000
        )
    )
    for chunk in result.partitions():
        rows = [
            {'order_id': order_id, 'flag': str(flag), 'created_at': created_at}
            for order_id, order_flags, created_at in chunk
            for flag in dict.fromkeys(order_flags or [])
        ]
        if rows:
            bind.execute(flags.insert(), rows)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_status')
        batch_op.drop_index('ix_outbox_created_id')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index('ix_orders_waiting_created_id')
        batch_op.drop_index('ix_orders_stage_created_id')
        batch_op.drop_index('ix_orders_created_id')
        batch_op.create_index('ix_orders_stage_created', ['stage', 'created_at'], unique=False)
    with op.batch_alter_table('order_flags', schema=None) as batch_op:
        batch_op.drop_index('ix_order_flags_flag_created_id')
    op.drop_table('order_flags')
    op.drop_table('api_keys')
