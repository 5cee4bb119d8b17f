"""The HTTP intake's body: one order document or a JSON array of them, as `commands.intake` reads
a file for the CLI's `submit`, so both paths take and refuse the same documents with the same
messages. Errors come back as ``{"field", "message"}`` with the field named by its JSON path.
"""

from __future__ import annotations

import json
from typing import Any

from commands.intake import Entry, body_documents, no_json_constant
from service.deps import ApiError


def load_json(body: bytes) -> Any:
    """Strict JSON (no NaN / Infinity), or 400 naming the body (reference data)."""
    if not body.strip():
        raise ApiError(400, "the body is empty: send an order document or a JSON array", field="body")
    try:
        return json.loads(body, parse_constant=no_json_constant)
    except RecursionError as exc:
        raise ApiError(400, "the body is nested too deeply", field="body") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ApiError(400, f"the body is not JSON ({exc})"[:300], field="body") from exc


def load_batch(body: bytes, max_batch: int) -> list[Entry]:
    """One entry per document of the body, each read on its own; 400 for a body that holds
    no documents at all (not JSON, not an object or array) or more than `max_batch`."""
    try:
        entries = body_documents(body)
    except ValueError as exc:
        raise ApiError(400, str(exc)[:300], field="body") from exc
    if len(entries) > max_batch:
        raise ApiError(
            400, f"a batch holds at most {max_batch} documents, not {len(entries)}", field="body"
        )
    return entries
