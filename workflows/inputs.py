"""A workflow's input, decoded inside the workflow so that an input that is no order fails it.

The OMS starts its workflows only from checked documents, but anyone with the Temporal UI or
`temporal workflow start` can start `OrderWorkflow` with anything. Decoded by the SDK, an input
that does not fit its model fails every workflow task and is retried for ever. Taken as a raw
payload and decoded here, with the same payload converter and the same type, it becomes a
non-retryable `InvalidInput` failure of the workflow that names each bad field (never its
value, which may be a buyer's phone number). A valid input decodes exactly as before, so
recorded histories replay unchanged.
"""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

from models.errors import ErrorType, application_error

M = TypeVar("M", bound=BaseModel)
MAX_PROBLEMS = 5


def decode_input(raw: RawValue | None, model: type[M]) -> M:
    """The input as `model`, or `ApplicationError(type="InvalidInput", non_retryable=True)`."""
    if raw is None:
        raise invalid(model, ["input: missing (start the workflow with one argument)"])
    try:
        return workflow.payload_converter().from_payload(raw.payload, model)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or 'input'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        ]
        raise invalid(model, problems) from None
    except (ValueError, TypeError, UnicodeError) as exc:  # not JSON, not the expected encoding
        raise invalid(model, [f"input: cannot be decoded ({type(exc).__name__})"]) from None


def invalid(model: type[BaseModel], problems: list[str]) -> ApplicationError:
    shown = [p[:200] for p in problems[:MAX_PROBLEMS]]
    more = f" (and {len(problems) - MAX_PROBLEMS} more)" if len(problems) > MAX_PROBLEMS else ""
    return application_error(
        ErrorType.INVALID_INPUT, f"the input is not a valid {model.__name__}: " + "; ".join(shown) + more
    )
