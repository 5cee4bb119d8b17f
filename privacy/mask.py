"""The one PII masker (SPEC §5.5, §8 invariant 7): the same rules wherever buyer data is shown,
logged or stored beside the order. Pure: no I/O, so the workflow uses it too.

* `mask_phone` ``13812345678`` → ``138****5678``; `mask_name` ``张三丰`` → ``张**``;
  `mask_address` keeps the first three characters of an address detail: ``文三路***``.
* `scrub_phones`: every phone-like digit run inside free text.
* `mask_field`: a value under a buyer-data key (phone or address detail) masked by its kind;
  what every log line applies. `mask_correction`: the workflow's variant for corrections (it
  says why it differs).
* `scrub` with `Known`: what the workflow's state writer (`orders.store.write_state`) applies
  to timeline entries and finding messages before they are written: values under a phone or
  address-detail key are masked, and the order's own phone and address detail are masked
  wherever they appear inside a text. The order row's document keeps the real values (the
  warehouse ships to them) until it is purged (`privacy.purge`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# A run of digits, possibly broken by spaces or dashes, long enough to be a phone number.
_PHONE_LIKE = re.compile(r"\+?\d[\d \-]{5,}\d")

PHONE_KEYS = frozenset({"phone", "buyer_phone"})
DETAIL_KEYS = frozenset({"detail", "address_detail"})
FREE_TEXT_KEYS = frozenset({"remarks", "text", "note"})


def mask_phone(value: str | None) -> str:
    """Mask the middle of a phone number: ``13812345678`` -> ``138****5678``.

    Works on any spelling (``+86 138-1234-5678``, ``0571-88888888``); the
    country prefix 86 is dropped from Chinese numbers. Short numbers keep at
    most their last two digits so the mask never reveals the whole number.
    """
    if not value:
        return ""
    digits = "".join(ch for ch in value if ch.isdigit() and ch.isascii())
    if not digits:
        return "***"
    if len(digits) == 13 and digits.startswith("86"):
        digits = digits[2:]
    n = len(digits)
    if n >= 10:
        return f"{digits[:3]}****{digits[-4:]}"
    if n >= 7:
        return f"{digits[:2]}****{digits[-2:]}"
    if n > 2:
        return "****" + digits[-2:]
    return "**"


def mask_address(detail: str | None) -> str:
    """Keep the first three characters of an address detail: ``文三路***``."""
    if not detail:
        return ""
    text = detail.strip()
    keep = text[:3] if len(text) > 3 else text[:1]
    return keep + "***"


def mask_name(name: str | None) -> str:
    """``张三丰`` -> ``张**``; used where a clerk needs to address the buyer."""
    if not name:
        return ""
    text = name.strip()
    return text[:1] + "*" * min(max(len(text) - 1, 1), 3)


def scrub_phones(text: str) -> str:
    """Mask every phone-like digit run inside free text (an address, a remark)."""

    def _mask(match: re.Match[str]) -> str:
        digits = sum(ch.isdigit() for ch in match.group(0))
        return mask_phone(match.group(0)) if digits >= 7 else match.group(0)

    return _PHONE_LIKE.sub(_mask, text)


def mask_correction(value: Any) -> Any:
    """The workflow's variant, for a correction shown old → new in the timeline: the middle starred
    out, a quarter kept at each end (``文*****侧``). It must differ from `mask_address`, which keeps
    only the first three characters: a corrected door number would read ``文三路***`` → ``文三路***``,
    hiding the very change the clerk looks for, while the ends show that something changed."""
    if not isinstance(value, str) or len(value) < 4:
        return value
    keep = max(1, len(value) // 4)
    return value[:keep] + "*" * (len(value) - 2 * keep) + value[-keep:]


def mask_field(key: str, value: Any) -> Any:
    """A value under a buyer-data key masked by its kind (a phone, or an address detail);
    anything else, or a value masked already, as it is."""
    if not isinstance(value, str) or not value or "*" in value:
        return value
    if key in PHONE_KEYS:
        return mask_phone(value)
    if key in DETAIL_KEYS:
        return mask_address(value)
    return value


@dataclass(frozen=True)
class Known:
    """The buyer's values to find in texts, with what each is replaced by."""

    pairs: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, document: Mapping[str, Any] | None, *, name: bool = False) -> Known:
        doc = document or {}
        buyer = doc.get("buyer") or {}
        address = doc.get("address") or {}
        return cls.values(
            phone=buyer.get("phone"),
            detail=address.get("detail"),
            name=buyer.get("name") if name else None,
        )

    @classmethod
    def values(cls, *, phone: Any, detail: Any, name: Any = None) -> Known:
        pairs: list[tuple[str, str]] = []
        if isinstance(phone, str) and phone.strip():
            pairs.append((phone.strip(), mask_phone(phone)))
            digits = "".join(ch for ch in phone if ch.isascii() and ch.isdigit())
            if len(digits) >= 7 and digits != phone.strip():
                pairs.append((digits, mask_phone(digits)))
        if isinstance(detail, str) and len(detail.strip()) > 3:
            pairs.append((detail.strip(), mask_address(detail)))
        if isinstance(name, str) and name.strip():
            pairs.append((name.strip(), mask_name(name)))
        # Longest first: a detail that contains the phone is replaced whole.
        pairs.sort(key=lambda pair: len(pair[0]), reverse=True)
        return cls(tuple(pairs))

    def text(self, value: str) -> str:
        for real, masked in self.pairs:
            if real in value:
                value = value.replace(real, masked)
        return value


def scrub(value: Any, known: Known, *, key: str | None = None, phones_in_text: bool = False) -> Any:
    """A copy of `value` (JSON-like) with phones and address details masked (see module doc)."""
    if isinstance(value, dict):
        return {k: scrub(v, known, key=str(k), phones_in_text=phones_in_text) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v, known, key=key, phones_in_text=phones_in_text) for v in value]
    if not isinstance(value, str) or not value:
        return value
    if key in PHONE_KEYS or key in DETAIL_KEYS:
        return mask_field(key, value)  # one masked already (the workflow's timeline) stays
    value = known.text(value)
    if phones_in_text and key in FREE_TEXT_KEYS:
        value = scrub_phones(value)
    return value
