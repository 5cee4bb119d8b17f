"""The HTTP intake's parsing: the body to raw documents, each to a document or its errors.

The shape rules are those of the CLI's `submit` (`models.documents.parse_order`); errors come
back as ``{"field", "message"}`` with the field named by its JSON path.
"""

from __future__ import annotations

import json
from typing import Any

from models.documents import OrderDocument, parse_order
from service.deps import ApiError

MAX_DEPTH = 32
MAX_DOCUMENT_CHARS = 256 * 1024  # an order is a few kB; Temporal refuses inputs over 2 MB


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def load_json(body: bytes) -> Any:
    """Strict JSON (no NaN / Infinity), or 400 naming the body."""
    if not body.strip():
        raise ApiError(400, "the body is empty: send an order document or a JSON array", field="body")
    try:
        return json.loads(body, parse_constant=_no_constant)
    except RecursionError as exc:
        raise ApiError(400, "the body is nested too deeply to be an order", field="body") from exc
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ApiError(400, f"the body is not JSON ({exc})"[:300], field="body") from exc


def load_batch(body: bytes, max_batch: int) -> list[Any]:
    data = load_json(body)
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        if len(data) > max_batch:
            raise ApiError(
                400, f"a batch holds at most {max_batch} documents, not {len(data)}", field="body"
            )
        return data
    raise ApiError(
        400, "the body must be an order document (a JSON object) or a JSON array of them",
        field="body",
    )


def _hostile(value: Any, path: str, depth: int = 0) -> tuple[str, str] | None:
    """The first thing no order may carry: nesting deeper than MAX_DEPTH, or a lone
    surrogate in a string (JSON allows `\\ud800`; nothing downstream can encode it)."""
    if depth > MAX_DEPTH:
        return path or "(document)", f"nested more than {MAX_DEPTH} levels deep"
    if isinstance(value, str):
        if any("\ud800" <= ch <= "\udfff" for ch in value):
            return path or "(document)", "contains a lone UTF-16 surrogate"
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            found = _hostile(key, sub, depth + 1) or _hostile(item, sub, depth + 1)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = _hostile(item, f"{path}.{index}" if path else str(index), depth + 1)
            if found:
                return found
    return None


def check_document(raw: Any) -> tuple[OrderDocument | None, list[dict[str, str]], str | None]:
    """(document, [], order_id) or (None, errors, order_id-if-any)."""
    label = raw.get("order_id") if isinstance(raw, dict) else None
    label = label if isinstance(label, str) and len(label) <= 200 else None
    hostile = _hostile(raw, "")
    if not hostile and len(json.dumps(raw, ensure_ascii=False)) > MAX_DOCUMENT_CHARS:
        hostile = ("(document)", f"larger than {MAX_DOCUMENT_CHARS // 1024} kB")
    if hostile:
        if label and _hostile(label, ""):
            label = None
        return None, [{"field": hostile[0], "message": hostile[1]}], label
    doc, problems = parse_order(raw)
    if doc is None:
        return None, [_field_error(p) for p in problems], label
    return doc, [], doc.order_id


def _field_error(problem: str) -> dict[str, str]:
    field, sep, message = problem.partition(": ")
    return {"field": field, "message": message} if sep else {"field": "(document)", "message": problem}
