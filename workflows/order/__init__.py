"""The order workflow, by stage (see `workflow.py` for the map)."""

from workflows.order.steps import DB_TIMEOUT, RETRY_DB
from workflows.order.workflow import OrderWorkflow

__all__ = ["DB_TIMEOUT", "RETRY_DB", "OrderWorkflow"]
