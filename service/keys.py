"""API keys (`oms keys create|list|revoke`) and what each role may do.

A key is 24 random bytes (192 bits) from `secrets`, shown once; the database keeps only its
SHA-256. A key is high-entropy, so a fast hash is enough: nobody can guess keys to try
against it, and a lookup costs one indexed read per request. Several copies of the service
share the one table, so a key made or revoked anywhere holds everywhere at once.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from models.errors import OmsError
from models.tables import ApiKey, to_utc, utcnow

ROLES = ("platform", "warehouse", "clerk", "admin")
KEY_PREFIX = "oms_"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$")

# What each kind of route needs. SPEC §5.6: platform submits and reads orders; warehouse
# reports warehouse events, restocks, reports transfer arrivals and reads orders and stock;
# clerk does everything an operator does and reads everything; admin is clerk + keys +
# reference data.
PERMISSIONS: dict[str, frozenset[str]] = {
    "submit": frozenset({"platform", "clerk", "admin"}),
    "read_orders": frozenset({"platform", "warehouse", "clerk", "admin"}),
    "read_stock": frozenset({"warehouse", "clerk", "admin"}),
    "read_events": frozenset({"clerk", "admin"}),
    "operator_action": frozenset({"clerk", "admin"}),
    "warehouse_action": frozenset({"warehouse", "clerk", "admin"}),
    "restock": frozenset({"warehouse", "clerk", "admin"}),
    "transfer": frozenset({"warehouse", "clerk", "admin"}),
    "codec": frozenset({"clerk", "admin"}),
    "metrics": frozenset({"clerk", "admin"}),
    "console": frozenset({"clerk", "admin"}),
    "keys": frozenset({"admin"}),
    "reference": frozenset({"admin"}),
    "shops": frozenset({"admin"}),  # issue 19: platform shops and their credentials
}


class KeyProblem(OmsError, ValueError):
    """A key that cannot be made or revoked as asked (message for the operator)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name and role (never the key)."""

    name: str
    role: str
    key_hash: str

    def may(self, permission: str) -> bool:
        return self.role in PERMISSIONS[permission]


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(24)


def create_key(session: Session, *, name: str, role: str) -> str:
    """Make a key; return it (the only time it is seen). A revoked key's name may be reused."""
    if role not in ROLES:
        raise KeyProblem(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if not NAME_RE.match(name):
        raise KeyProblem(
            "name must be 1-64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit"
        )
    row = session.get(ApiKey, name, with_for_update=True)
    if row is not None and row.revoked_at is None:
        raise KeyProblem(f"a key named {name!r} exists; revoke it first or pick another name")
    key = new_key()
    values = {"role": role, "key_hash": hash_key(key), "prefix": key[: len(KEY_PREFIX) + 4],
              "created_at": utcnow(), "revoked_at": None}
    if row is None:
        session.add(ApiKey(name=name, **values))
    else:
        for field, value in values.items():
            setattr(row, field, value)
        session.add(row)
    session.flush()
    return key


def list_keys(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.name)).scalars()
    return [
        {
            "name": r.name,
            "role": r.role,
            "prefix": r.prefix,
            "created_at": to_utc(r.created_at).isoformat(),
            "revoked_at": to_utc(r.revoked_at).isoformat() if r.revoked_at else None,
        }
        for r in rows
    ]


def revoke_key(session: Session, name: str) -> None:
    row = session.get(ApiKey, name, with_for_update=True)
    if row is None:
        raise KeyProblem(f"no key named {name!r}")
    if row.revoked_at is not None:
        raise KeyProblem(f"the key {name!r} is already revoked")
    row.revoked_at = utcnow()
    session.add(row)
    session.flush()


def find_key(session: Session, key: str) -> Principal | None:
    """The principal of an active key, or None (unknown, malformed or revoked)."""
    if not key.startswith(KEY_PREFIX) or len(key) > 100:
        return None
    row = session.execute(
        select(ApiKey.name, ApiKey.role, ApiKey.key_hash, ApiKey.revoked_at).where(
            ApiKey.key_hash == hash_key(key)
        )
    ).first()
    if row is None or row.revoked_at is not None:
        return None
    return Principal(name=row.name, role=row.role, key_hash=row.key_hash)


def find_by_name(session: Session, name: str, key_hash: str) -> Principal | None:
    """The principal of a console session: its key still active, and still the same key."""
    row = session.get(ApiKey, name)
    if row is None or row.revoked_at is not None or row.key_hash != key_hash:
        return None
    return Principal(name=row.name, role=row.role, key_hash=row.key_hash)
