"""console: the search index of orders (issue 21)

Revision ID: 0006_console
Revises: 0005_shipping (chained after shipping, as /work/COORD.md asks)
"""
from alembic import op
import sqlalchemy as sa


revision = "0006_console"
down_revision = "0005_shipping"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "order_search_keys",
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("value", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("kind", "value", "created_at", "order_id"),
    )
    op.create_index("ix_order_search_keys_order", "order_search_keys", ["order_id"])
    # Orders already kept: `oms search reindex` indexes them (names and phones once
    # OMS_SEARCH_KEY is set); otherwise each is indexed at its next stage change.


def downgrade() -> None:
    op.drop_index("ix_order_search_keys_order", table_name="order_search_keys")
    op.drop_table("order_search_keys")
