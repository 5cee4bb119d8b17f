"""platforms: shops, shop orders, the PII access log

Revision ID: 0004_platforms
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = "0004_platforms"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shops",
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("app_key", sa.String(length=100), nullable=False),
        sa.Column("app_secret_sealed", sa.String(length=400), nullable=False),
        sa.Column("session_sealed", sa.String(length=4000), nullable=True),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("api_url", sa.String(length=500), nullable=False),
        sa.Column("poll_every_s", sa.Integer(), nullable=False),
        sa.Column("ship_within_s", sa.Integer(), nullable=False),
        sa.Column("carrier_ids", sa.JSON(), nullable=False),
        sa.Column("merge", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("last_error", sa.String(length=1000), nullable=True),
        sa.Column("synced_through", sa.DateTime(timezone=True), nullable=False),
        sa.Column("imported", sa.Integer(), nullable=False),
        sa.Column("last_run", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "shop_orders",
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("shop", sa.String(length=40), nullable=False),
        sa.Column("platform_order_id", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=True),
        sa.Column("view", sa.JSON(), nullable=False),
        sa.Column("changes", sa.JSON(), nullable=False),
        sa.Column("pending", sa.JSON(), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("order_id"),
    )
    op.create_index("ix_shop_orders_shop_outcome", "shop_orders", ["shop", "outcome"])
    op.create_index("ix_shop_orders_platform_id", "shop_orders", ["shop", "platform_order_id"])
    op.create_table(
        "pii_access_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("shop", sa.String(length=40), nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("scene", sa.String(length=100), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_pii_access_order", "pii_access_log", ["order_id", "at"])
    op.create_index("ix_pii_access_at", "pii_access_log", ["at"])
    op.create_table(
        "write_backs",
        sa.Column("event_id", sa.String(length=160), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("shop", sa.String(length=40), nullable=False),
        sa.Column("shipment_id", sa.String(length=80), nullable=False),
        sa.Column("carrier", sa.String(length=20), nullable=False),
        sa.Column("tracking_no", sa.String(length=60), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=True),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index("ix_write_backs_shop_status", "write_backs", ["shop", "status"])


def downgrade() -> None:
    op.drop_index("ix_write_backs_shop_status", table_name="write_backs")
    op.drop_table("write_backs")
    op.drop_index("ix_pii_access_at", table_name="pii_access_log")
    op.drop_index("ix_pii_access_order", table_name="pii_access_log")
    op.drop_table("pii_access_log")
    op.drop_index("ix_shop_orders_platform_id", table_name="shop_orders")
    op.drop_index("ix_shop_orders_shop_outcome", table_name="shop_orders")
    op.drop_table("shop_orders")
    op.drop_table("shops")
