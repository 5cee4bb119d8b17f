"""A shop's app secret and session token, sealed under the payload codec's key ring.

The same keys and cipher as the payload codec (`runtime.codec.KeyRing`, AES-256-GCM, passed
in by the caller: this domain package sits below the runtime):
a rotation of the codec keys (`oms keys rotate-codec`) covers these too, since every key
of the ring opens and the newest seals. A sealed value reads
``v1:<key id>:<base64 nonce + ciphertext>``; the shop's name and the field are bound in
as associated data, so a value copied to another shop or field does not open.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag

from models.errors import OmsError

if TYPE_CHECKING:
    from runtime.codec import KeyRing

PREFIX = "v1"
NONCE_BYTES = 12  # AES-GCM's 96-bit nonce, as the payload codec uses


class SealedValueError(OmsError):
    """A sealed credential cannot be opened (wrong key ring, altered, or not sealed)."""


def _aad(shop: str, field: str) -> bytes:
    return f"oms-shop-credential-v1:{shop}:{field}".encode()


def seal(ring: KeyRing, value: str, *, shop: str, field: str) -> str:
    key = ring.newest
    cipher = ring.cipher(key.id)
    assert cipher is not None
    nonce = os.urandom(NONCE_BYTES)
    data = cipher.encrypt(nonce, value.encode(), _aad(shop, field))
    return f"{PREFIX}:{key.id}:{base64.b64encode(nonce + data).decode()}"


def open_sealed(ring: KeyRing, sealed: str, *, shop: str, field: str) -> str:
    prefix, _, rest = sealed.partition(":")
    key_id, _, body = rest.partition(":")
    if prefix != PREFIX or not key_id or not body:
        raise SealedValueError(f"shop {shop!r}: the stored {field} is not a sealed value")
    cipher = ring.cipher(key_id)
    if cipher is None:
        raise SealedValueError(
            f"shop {shop!r}: the {field} is sealed with codec key {key_id!r}, which is not in "
            "this process's key ring"
        )
    try:
        raw = base64.b64decode(body, validate=True)
        return cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(shop, field)).decode()
    except (binascii.Error, InvalidTag, ValueError):
        raise SealedValueError(f"shop {shop!r}: the stored {field} does not open") from None
