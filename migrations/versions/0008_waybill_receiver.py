"""waybills.receiver_key: whom each waybill was issued to (issue 19 × 20)

Revision ID: 0008_waybill_receiver
Revises: 0007_ship_by

A hash of the receiver (the platform's receiver id, name, phone and address; it names nobody),
written when the number is given to its parcel. When the buyer changes the address on the
platform, a number issued to the old receiver is found by it (`shipping.desk.readdress_order_parcels`):
a Cainiao number, or any number already printed, is voided and a new one issued. Numbers
issued before this column have none, and count as issued to an older address.
"""
from alembic import op
import sqlalchemy as sa


revision = "0008_waybill_receiver"
down_revision = "0007_ship_by"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("waybills", schema=None) as batch_op:
        batch_op.add_column(sa.Column("receiver_key", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("waybills", schema=None) as batch_op:
        batch_op.drop_column("receiver_key")
