"""Order documents in: files and request bodies read one document at a time, each checked on
its own, and one workflow started per valid order.

Shared by the CLI's `submit`, the demo and the HTTP intake, so that both paths take the same
documents and refuse the same ones with the same messages. No document can stop the others:

* a JSON array is split into its elements' raw texts by a small scanner that parses nothing
  (`split_array`), so an element nested 100,000 deep is one rejection, not a RecursionError
  for the file; JSON Lines are read line by line, CSV row by row;
* each document's text is parsed alone (`parse_document`) with whatever nests deeper than
  `MAX_DEPTH` cut off unparsed, then checked by `models.documents.check_document` (shape,
  limits, Unicode, created_at);
* a document Temporal still refuses (its size) is rejected alone; the others go on.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from commands.context import CliError
from models.documents import (
    MAX_DEPTH,
    TOO_DEEP,
    Checked,
    OrderDocument,
    TooDeep,
    check_document,
    workflow_id_for,
)
from models.settings import Settings

# The text of one document is read at most this long (a JSON array's element, a line, a
# request body); longer is refused unread. Above the document limit on purpose, so that an
# overlong field is named in the answer.
MAX_DOCUMENT_TEXT = 8 * 1024 * 1024

CSV_FIELDS = {
    "buyer_name": ("buyer", "name"),
    "buyer_phone": ("buyer", "phone"),
    "buyer_id": ("buyer", "id"),
    "country": ("address", "country"),
    "province": ("address", "province"),
    "city": ("address", "city"),
    "district": ("address", "district"),
    "detail": ("address", "detail"),
    "postal_code": ("address", "postal_code"),
    "payment_status": ("payment", "status"),
    "payment_method": ("payment", "method"),
    "payment_amount": ("payment", "amount"),
    "transaction_id": ("payment", "transaction_id"),
}
CSV_LINE_FIELDS = ("sku", "qty", "unit_price")


@dataclass
class Entry:
    """One document as read: where it came from, and its raw value or why it is unreadable."""

    where: str  # "orders.json[3]", "orders.jsonl:4", "orders.csv:TB-1"
    raw: Any = None
    unreadable: str | None = None  # the message for the field "(document)"

    def check(self, now: datetime | None = None) -> Checked:
        if self.unreadable is not None:
            return Checked(None, [("(document)", self.unreadable)])
        return check_document(self.raw, now=now)


def read_orders(path: Path) -> list[Entry]:
    """A JSON array, JSON Lines, or CSV (one row per order line) → one entry per document.

    Only a file that cannot be read at all, or whose array cannot be told into elements,
    is refused whole (CliError); anything wrong inside one document is that entry's."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(f"{path}: cannot read ({exc})") from exc
    # Bytes that are not UTF-8 become lone surrogates: the document holding them is rejected
    # by name (not valid Unicode), the rest of the file still goes in.
    text = data.decode("utf-8-sig", errors="surrogateescape")
    name = path.name
    if path.suffix.lower() == ".csv":
        return _csv_orders(text, name)
    stripped = text.strip()
    if not stripped:
        raise CliError(f"{path}: the file is empty")
    if stripped.startswith("["):
        try:
            elements = split_array(stripped)
        except ValueError as exc:
            raise CliError(f"{path}: not valid JSON ({exc}); nothing submitted") from exc
        return [_entry(f"{name}[{i}]", element) for i, element in enumerate(elements)]
    entries: list[Entry] = []
    # Split on newlines only: splitlines() would also cut at U+2028 etc. inside JSON strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            entries.append(_entry(f"{name}:{number}", line))
    return entries


def body_documents(body: bytes) -> list[Entry]:
    """An HTTP intake body (one document, or a JSON array of them) → one entry per document.
    ValueError (the whole body refused, 400) when it is neither."""
    text = body.decode("utf-8", errors="surrogateescape").strip()
    if not text:
        raise ValueError("the body is empty: send an order document or a JSON array")
    if text.startswith("["):
        try:
            elements = split_array(text)
        except ValueError as exc:
            raise ValueError(f"the body is not JSON ({exc})") from exc
        return [_entry(f"[{i}]", element) for i, element in enumerate(elements)]
    if not text.startswith("{"):
        raise ValueError(
            "the body is not JSON holding orders: send an order document (a JSON object) "
            "or a JSON array of them"
        )
    entry = _entry("(body)", text)
    if entry.unreadable is not None and "not valid JSON" in entry.unreadable:
        raise ValueError(f"the body is not JSON ({entry.unreadable})")
    return [entry]


def _entry(where: str, text: str) -> Entry:
    try:
        return Entry(where, raw=parse_document(text))
    except ValueError as exc:
        return Entry(where, unreadable=str(exc))


# Strings (skipped whole; a lone quote is one that never ends), brackets and commas: all a
# scanner needs to see a JSON text's structure without parsing it.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]|"', re.DOTALL)
_CLOSES = {"]": "[", "}": "{"}


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    return f"line {line} column {pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"


def split_array(text: str) -> list[str]:
    """The raw texts of the elements of the JSON array that `text` holds, unparsed.

    ValueError when the array's own structure is broken (a bracket that closes nothing
    open, a string or the array that never ends, text after it): then no element can be
    told from the next. What is wrong inside a balanced element is left to its parse."""
    start = text.index("[")
    stack: list[str] = []
    elements: list[str] = []
    begin = start + 1
    for match in _TOKEN.finditer(text, start):
        token = match.group()
        char = token[0]
        if char == '"':
            if len(token) == 1:
                raise ValueError(f"a string that never ends, at {_where(text, match.start())}")
        elif char in "[{":
            stack.append(char)
        elif char in "]}":
            if not stack or stack[-1] != _CLOSES[char]:
                raise ValueError(f"'{char}' closes nothing open, at {_where(text, match.start())}")
            stack.pop()
            if not stack:
                last = text[begin : match.start()]
                if last.strip() or elements:
                    elements.append(last)
                if text[match.end() :].strip():
                    raise ValueError(f"text after the array, at {_where(text, match.end())}")
                return elements
        elif len(stack) == 1:  # a comma between two elements
            elements.append(text[begin : match.start()])
            begin = match.end()
    raise ValueError("the array never ends (a closing ']' is missing)")


def parse_document(text: str) -> Any:
    """One document's JSON text → its value, with every array or object nested deeper than
    MAX_DEPTH replaced by `TooDeep` without being parsed (so no depth can exhaust the
    parser's recursion). ValueError naming why it is not JSON."""
    if len(text) > MAX_DOCUMENT_TEXT:
        raise ValueError(f"larger than {MAX_DOCUMENT_TEXT // (1024 * 1024)} MB; not read")
    if not text.strip():
        raise ValueError("not valid JSON (no value between two commas)")
    mark = f"\u0000oms-too-deep-{secrets.token_hex(8)}"
    cut = _cut_deep(text, json.dumps(mark))
    try:
        value = json.loads(cut, parse_constant=no_json_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg}, at character {exc.pos + 1})") from exc
    except RecursionError as exc:  # not reached: _cut_deep bounds the depth
        raise ValueError(TOO_DEEP) from exc
    except ValueError as exc:  # NaN or Infinity; a number of more than 4300 digits
        why = "a number of more than 4300 digits" if "4300" in str(exc) else str(exc)
        raise ValueError(f"not valid JSON ({why})"[:300]) from exc
    return _marked(value, mark) if cut is not text else value


def _cut_deep(text: str, placeholder: str) -> str:
    """`text` with each array or object that opens below MAX_DEPTH levels replaced by
    `placeholder` (or `text` itself when nothing is that deep)."""
    if text.count("[") + text.count("{") <= MAX_DEPTH:  # cannot nest deeper: no scan
        return text
    depth = 0
    cuts: list[tuple[int, int]] = []
    opened = -1
    for match in _TOKEN.finditer(text):
        char = match.group()[0]
        if char == '"' or char == ",":
            continue
        if char in "[{":
            depth += 1
            if depth == MAX_DEPTH + 1:
                opened = match.start()
        else:
            if depth == MAX_DEPTH + 1:
                cuts.append((opened, match.end()))
                opened = -1
            depth -= 1
    if opened >= 0:  # still open at the end: cut to the end, the parse then says it is broken
        cuts.append((opened, len(text)))
    if not cuts:
        return text
    parts, last = [], 0
    for begin, end in cuts:
        parts += [text[last:begin], placeholder]
        last = end
    parts.append(text[last:])
    return "".join(parts)


def _marked(value: Any, mark: str) -> Any:
    if isinstance(value, str):
        return TooDeep() if value == mark else value
    if isinstance(value, list):
        return [_marked(v, mark) for v in value]
    if isinstance(value, dict):
        return {k: _marked(v, mark) for k, v in value.items()}
    return value


def no_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _csv_orders(text: str, name: str) -> list[Entry]:
    grouped: dict[str, Entry] = {}
    limit = csv.field_size_limit()
    # A cell as long as a whole document may be: the document check names the field, so a
    # long cell rejects its order rather than stopping the reader.
    csv.field_size_limit(MAX_DOCUMENT_TEXT)
    try:
        reader = csv.DictReader(io.StringIO(text))
        for row in reader:
            _csv_row(grouped, row, f"{name}:{reader.line_num}")
    except csv.Error as exc:
        raise CliError(f"{name}: not valid CSV ({exc}); nothing submitted") from exc
    finally:
        csv.field_size_limit(limit)
    return list(grouped.values())


def _csv_row(grouped: dict[str, Entry], row: dict[Any, Any], where: str) -> None:
    row = {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k}
    order_id = row.get("order_id") or ""
    entry = grouped.get(order_id)
    if entry is None:
        doc: dict[str, Any] = {"order_id": order_id, "lines": []}
        for key, value in row.items():
            if value in ("", None) or key in CSV_LINE_FIELDS or key == "order_id":
                continue
            if key in CSV_FIELDS:
                part, field = CSV_FIELDS[key]
                doc.setdefault(part, {})[field] = value
            else:
                doc[key] = value
        entry = grouped[order_id] = Entry(where, raw=doc)
    line: dict[str, Any] = {"sku": row.get("sku", "")}
    qty = row.get("qty") or ""  # None when the row has fewer cells than the header
    line["qty"] = int(qty) if qty.isascii() and qty.isdigit() and len(qty) <= 9 else qty
    if row.get("unit_price"):
        line["unit_price"] = row["unit_price"]
    entry.raw["lines"].append(line)


# ------------------------------------------------------------------ answers and starts


@dataclass
class Answer:
    """What intake answers for one document: `started`, `duplicate` (submitted before, or
    earlier in the same file or batch) or `rejected` with one (field, message) per bad field."""

    where: str
    order_id: str | None
    result: str | None  # None: valid, not started yet
    errors: list[tuple[str, str]]
    document: OrderDocument | None = None

    def line(self) -> str:
        """As `submit` prints it: `<order_id>: started`, `<id>: rejected: <field>: <reason>; ...`."""
        label = self.order_id or self.where
        if self.result == "rejected":
            return f"{label}: rejected: " + "; ".join(f"{f}: {m}" for f, m in self.errors)
        return f"{label}: {self.result}"


def answer_entries(entries: list[Entry], *, now: datetime | None = None) -> list[Answer]:
    """Check every document on its own; the second of two with one order_id is a duplicate."""
    answers: list[Answer] = []
    seen: set[str] = set()
    for entry in entries:
        checked = entry.check(now)
        doc = checked.document
        if doc is None:
            answers.append(Answer(entry.where, checked.label, "rejected", checked.errors))
        elif doc.order_id in seen:
            answers.append(Answer(entry.where, doc.order_id, "duplicate", []))
        else:
            seen.add(doc.order_id)
            answers.append(Answer(entry.where, doc.order_id, None, [], doc))
    return answers


async def start_answers(
    client: Client,
    settings: Settings,
    answers: list[Answer],
    *,
    concurrency: int = 32,
    on_started: Callable[[], None] | None = None,
) -> None:
    """Start one workflow per valid answer (`result` None), `concurrency` at a time.

    A document that Temporal refuses (INVALID_ARGUMENT: its size, say) or that cannot be
    encoded is rejected alone; any other RPCError (Temporal unreachable) is raised."""
    gate = asyncio.Semaphore(concurrency)

    async def start(answer: Answer) -> None:
        assert answer.document is not None
        async with gate:
            try:
                answer.result = await submit_one(client, settings, answer.document)
            except RPCError as exc:
                if exc.status != RPCStatusCode.INVALID_ARGUMENT:
                    raise
                answer.result = "rejected"
                answer.errors = [("(document)", f"Temporal refused it: {exc.message}"[:300])]
            except (ValueError, TypeError) as exc:  # not reached: the check keeps these out
                answer.result = "rejected"
                answer.errors = [("(document)", f"cannot be sent to Temporal: {exc}"[:300])]
        if on_started is not None:
            on_started()

    await asyncio.gather(*(start(a) for a in answers if a.result is None))


async def submit_one(client: Client, settings: Settings, order: OrderDocument) -> str:
    from models.payloads import OrderInput
    from workflows.order import OrderWorkflow

    try:
        await client.start_workflow(
            OrderWorkflow.run,
            OrderInput(order=order, policy=settings.order_policy(), submitted_at=datetime.now(UTC)),
            id=workflow_id_for(order.order_id),
            task_queue=settings.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        )
    except WorkflowAlreadyStartedError:
        return "duplicate"
    return "started"
