"""A real HTTP webhook receiver for tests and benchmarks.

``WebhookReceiver`` runs a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (a free
port) in a background thread. It verifies every request with the
``standardwebhooks`` package (the Standard Webhooks reference library, written by
no one here, with its five-minute timestamp tolerance), records it,
de-duplicates accepted deliveries by ``webhook-id`` and answers as scripted per
event: a status code, a dropped connection (``DROP``) or a late answer
(``Slow``).

Scripts::

    WebhookReceiver(secret)                                  # 200 to everything
    WebhookReceiver(secret, script={"e1": [500, DROP]})      # 500, drop, then 200
    WebhookReceiver(secret, script={"e2": 400})              # 400 on every attempt
    WebhookReceiver(secret, script=lambda event_id, attempt: 429 if attempt < 3 else 204)

A list gives the answers for the first attempts, after which the event is
accepted with 200; a single answer applies to every attempt. A request whose
signature does not verify is answered 401 whatever the script says, as a real
receiver would.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from outbox.webhooks import HEADER_EVENT_TYPE, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP


class _Drop:
    def __repr__(self) -> str:
        return "DROP"


DROP = _Drop()
"""Close the connection after reading the request, without answering."""


@dataclass(frozen=True)
class Slow:
    """Answer *status* only after *seconds*: longer than the client timeout, it is a timeout."""

    seconds: float
    status: int = 200


Answer = int | _Drop | Slow
Script = Callable[[str, int], Answer] | Mapping[str, Answer | Sequence[Answer]]


@dataclass(frozen=True)
class ReceivedRequest:
    """One request as the receiver saw it, and how it answered."""

    event_id: str | None
    event_type: str | None
    body: bytes
    signature: str | None
    signature_valid: bool
    timestamp: str | None
    headers: dict[str, str]
    verify_error: str | None
    attempt: int
    answer: Answer
    accepted: bool
    duplicate: bool


def _answer_from(script: Script | None, event_id: str, attempt: int) -> Answer:
    if script is None:
        return 200
    if callable(script):
        return script(event_id, attempt)
    planned = script.get(event_id, 200)
    if isinstance(planned, Sequence):
        return planned[attempt - 1] if attempt <= len(planned) else 200
    return planned


def _status_of(answer: Answer) -> int | None:
    if isinstance(answer, Slow):
        return answer.status
    if isinstance(answer, int):
        return answer
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a production receiver would offer
    disable_nagle_algorithm = True  # headers and body go out in two writes
    timeout = 30  # idle keep-alive connections are closed eventually
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        answer = self.server.receiver._record(headers=dict(self.headers.items()), body=body)
        if isinstance(answer, _Drop):
            self.close_connection = True
            with contextlib.suppress(OSError):  # the client may already be gone
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        if isinstance(answer, Slow):
            time.sleep(answer.seconds)
        status = _status_of(answer)
        assert status is not None
        reply = b'{"ok":true}' if 200 <= status < 300 else b'{"error":"scripted %d"}' % status
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
        except OSError:  # the client gave up (timeout) and closed the socket
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # concurrent senders must not wait on a tiny accept backlog
    receiver: WebhookReceiver

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out and hang up are part of the scripts; stay quiet.
        pass


class WebhookReceiver:
    """Context manager running a signature-checking, scriptable webhook endpoint."""

    def __init__(
        self, secret: str, script: Script | None = None, *, path: str = "/webhook", port: int = 0
    ):
        self.secret = secret  # whsec_...: what the receiver was given to verify with
        self._verifier = Webhook(secret)
        self.script = script
        self._path = path
        self._port = port  # 0: a free one; a drill that starts the receiver late names its port
        self._lock = threading.Lock()
        self._received: list[ReceivedRequest] = []
        self._attempts: Counter[str] = Counter()
        self._accepted: dict[str, int] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> WebhookReceiver:
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.receiver = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("WebhookReceiver is not running; use it as a context manager")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}{self._path}"

    @property
    def received(self) -> list[ReceivedRequest]:
        """Every request, in arrival order, including failed attempts."""
        with self._lock:
            return list(self._received)

    @property
    def unique_ids(self) -> set[str]:
        """Event ids accepted (answered 2xx) at least once."""
        with self._lock:
            return set(self._accepted)

    @property
    def duplicates(self) -> int:
        """Accepted deliveries of an event id that had already been accepted."""
        with self._lock:
            return sum(count - 1 for count in self._accepted.values())

    def accepted_count(self, event_id: str) -> int:
        with self._lock:
            return self._accepted.get(event_id, 0)

    def attempts_for(self, event_id: str) -> int:
        """How many requests arrived for *event_id*, whatever the answer."""
        with self._lock:
            return self._attempts[event_id]

    def _record(self, *, headers: dict[str, str], body: bytes) -> Answer:
        lowered = {k.lower(): v for k, v in headers.items()}
        event_id = lowered.get(HEADER_ID)
        event_type = lowered.get(HEADER_EVENT_TYPE.lower())
        signature = lowered.get(HEADER_SIGNATURE)
        error: str | None = None
        try:
            self._verifier.verify(body, headers, json_parse=False)
        except (WebhookVerificationError, ValueError) as exc:  # ValueError: a malformed header
            error = f"{type(exc).__name__}: {exc}"
        valid = error is None
        with self._lock:
            key = event_id or ""
            self._attempts[key] += 1
            attempt = self._attempts[key]
        answer: Answer = (
            401 if not valid or not event_id else _answer_from(self.script, key, attempt)
        )
        status = _status_of(answer)
        accepted = status is not None and 200 <= status < 300
        with self._lock:
            duplicate = accepted and key in self._accepted
            if accepted:
                self._accepted[key] = self._accepted.get(key, 0) + 1
            self._received.append(
                ReceivedRequest(
                    event_id=event_id,
                    event_type=event_type,
                    body=body,
                    signature=signature,
                    signature_valid=valid,
                    timestamp=lowered.get(HEADER_TIMESTAMP),
                    headers=lowered,
                    verify_error=error,
                    attempt=attempt,
                    answer=answer,
                    accepted=accepted,
                    duplicate=duplicate,
                )
            )
        return answer
