"""The in-memory shop a stand-in gateway serves: its trades, its receivers, its faults.

A `StandinShop` is what a platform knows about one seller: the trades (in the
platform's own shape, see `platforms.standin.trades`), the plaintext
receivers hidden behind the masked values and ciphertexts, the write-backs
received, and the faults a test asks for. Every method takes the shop's lock:
the HTTP server answers from several threads while a test changes trades.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

PDD_CIPHER_FIELDS = {
    "receiver_name": "name",
    "receiver_phone": "phone",
    "receiver_address": "address",
    "address": "address",
}


@dataclass
class Faults:
    """What the gateway does wrong, on purpose."""

    rate_limit_next: int = 0  # the next N calls answer "App Call Limited"
    down_next: int = 0  # the next N calls answer 502 (the platform is down)
    down_until: float = 0.0  # every call before this time.time() answers 502
    session_expired: bool = False  # every call with a session answers "Invalid session"
    refuse_decrypt: dict[str, str] = field(default_factory=dict)  # tid -> platform's reason
    refuse_ship: dict[str, str] = field(default_factory=dict)  # tid -> platform's reason
    # called after each page of an increment read is served: (page_no, served tids)
    after_page: Callable[[int, list[str]], None] | None = None


@dataclass
class Shipment:
    """One write-back the platform received."""

    tid: str
    tracking: str
    carrier: str
    sub_tids: list[str]
    at: float


class StandinShop:
    """One seller account on a stand-in platform (see the module's docstring)."""

    def __init__(self, platform: str, *, app_key: str, app_secret: str, session: str) -> None:
        if platform not in ("taobao", "pdd"):
            raise ValueError(f"platform: {platform!r} has no stand-in (taobao, pdd)")
        self.platform = platform
        self.app_key = app_key
        self.app_secret = app_secret
        self.session = session
        self.lock = threading.RLock()
        self.trades: dict[str, dict[str, Any]] = {}
        self.modified_at: dict[str, float | None] = {}  # parsed once, for the window scans
        self.plain: dict[str, dict[str, str]] = {}  # tid -> receiver in plaintext
        self.ciphertexts: dict[str, str] = {}  # pdd: "~...~" -> plaintext
        self.shipments: list[Shipment] = []
        self.decrypted: list[tuple[str, str]] = []  # (tid, scene or field) per item decrypted
        self.faults = Faults()
        self.calls: Counter[str] = Counter()
        self.clock: Callable[[], float] = time.time

    # --- trades -----------------------------------------------------------------------
    def put(self, trade: dict[str, Any], receiver: dict[str, str] | None = None) -> None:
        """Add or replace one trade (as given: a test may put a malformed one)."""
        from platforms.standin.trades import modified_ts

        key = trade_key(self.platform, trade)
        with self.lock:
            self.trades[key] = trade
            self.modified_at[key] = modified_ts(self.platform, trade)
            if receiver is not None:
                self.plain[key] = dict(receiver)
                if self.platform == "pdd":
                    for name, part in PDD_CIPHER_FIELDS.items():
                        if isinstance(trade.get(name), str):
                            self.ciphertexts[trade[name]] = receiver[part]

    def change(self, key: str, *, at: float | None = None, **fields: Any) -> dict[str, Any]:
        """Change a trade on the platform: its fields, and its modified time (default: now)."""
        from platforms.standin.trades import modified_ts, stamp

        with self.lock:
            trade = self.trades[key]
            trade.update(fields)
            when = self.clock() if at is None else at
            stamp(self.platform, trade, when)
            self.modified_at[key] = modified_ts(self.platform, trade)
            return trade

    def change_line(self, key: str, index: int, **fields: Any) -> dict[str, Any]:
        """Change one line (Taobao ORDER) of a trade, and its modified time."""
        with self.lock:
            lines = self.trades[key]["orders"]["order"]
            lines[index].update(fields)
            return self.change(key)

    def change_receiver(self, key: str, receiver: dict[str, str]) -> None:
        """The buyer changed the address: new masked values, a new oaid, new plaintext."""
        from platforms.standin.trades import receiver_fields

        with self.lock:
            trade = self.trades[key]
            trade.update(receiver_fields(self.platform, key, receiver, version=len(self.plain)))
            self.put(trade, receiver)
            self.change(key)

    def snapshot(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(t) for t in self.trades.values()]

    def renew_session(self, session: str) -> None:
        with self.lock:
            self.session = session
            self.faults.session_expired = False


def trade_key(platform: str, trade: dict[str, Any]) -> str:
    key = trade.get("tid") if platform == "taobao" else trade.get("order_sn")
    if key is None:
        raise ValueError("a stand-in trade needs its tid / order_sn")
    return str(key)
