"""Payload encryption for everything the OMS hands to Temporal (SPEC §5.8).

`AesGcmCodec` is a Temporal payload codec: every payload leaving the process
(workflow and activity inputs and results, signals, updates, queries, memo,
encoded failure attributes) is serialised whole and sealed with AES-256-GCM
under a fresh random 96-bit nonce. The sealed payload says only
``encoding: binary/encrypted`` and ``encryption-key-id: <id>`` in its metadata;
its original metadata (e.g. ``json/plain``) is inside the ciphertext. Search
attributes never pass through a codec (the SDK skips them): they stay
plaintext, and carry no PII.

Keys come from a `KeyRing`: ``OMS_CODEC_KEYS`` (``id:base64key`` pairs,
comma-separated, newest first), or, when that is unset, the embedded default,
a key file under ``OMS_HOME`` (``codec-keys``, mode 0600) made on first use and
reused after. The first key seals; every key opens. Rotation (`rotate`) puts
a new key first and keeps the old ones, so histories sealed under them still
decode.

Decoding is strict: a payload sealed with a key not in the ring, or one that
fails authentication (altered, or the key's material is not the key it was
sealed with), raises `CodecKeyMissing` / `CodecTampered`, naming the key id.
Neither is an ``ApplicationError``: in a workflow task the SDK fails the task,
and the server retries it until the key is back, so no data is lost. A payload
that was never encrypted (histories recorded before the codec) decodes as it
is; it is never the result of a failed decryption.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import stat
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from models.errors import OmsError

log = structlog.get_logger()

ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = 32  # AES-256
KEY_FILE = "codec-keys"
_AAD_PREFIX = b"oms-payload-v1:"  # the key id is authenticated with the ciphertext
_KEY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_CHECK_LABEL = b"oms-codec-key-check-v1"


class CodecConfigError(OmsError):
    """The key ring cannot be used (malformed, wrong, unreadable): nothing may start with it."""


class CodecKeyMissing(OmsError):
    """A payload was sealed with a key that is not in this process's key ring."""

    def __init__(self, key_id: str, ring: Iterable[str]) -> None:
        self.key_id = key_id
        known = ", ".join(ring) or "none"
        super().__init__(
            f"payload encrypted with codec key {key_id!r}, which is not in this process's key "
            f"ring (keys: {known}); put {key_id!r} back into OMS_CODEC_KEYS (or the key file "
            "under OMS_HOME): the workflow task retries until it can be decoded"
        )


class CodecTampered(OmsError):
    """A sealed payload failed authentication: it was altered, or the key is not the right one."""

    def __init__(self, key_id: str, why: str = "it was altered, or key material differs") -> None:
        self.key_id = key_id
        super().__init__(
            f"payload sealed with codec key {key_id!r} failed authentication ({why}); "
            "it is not decoded and not passed on"
        )


# ------------------------------------------------------------------------ keys


@dataclass(frozen=True)
class CodecKey:
    id: str
    material: bytes

    def __repr__(self) -> str:  # never print key material
        return f"CodecKey({self.id!r})"

    @property
    def fingerprint(self) -> str:
        """A short value that identifies the key without revealing it (HMAC of a label)."""
        return hmac.new(self.material, _CHECK_LABEL, hashlib.sha256).hexdigest()[:32]

    def text(self) -> str:
        return f"{self.id}:{base64.b64encode(self.material).decode('ascii')}"


def new_key(taken: Iterable[str] = ()) -> CodecKey:
    """A fresh random key under a new id (``YYYYMMDD-<hex>``), distinct from `taken`."""
    taken = set(taken)
    while True:
        key_id = f"{datetime.now(UTC):%Y%m%d}-{secrets.token_hex(3)}"
        if key_id not in taken:
            return CodecKey(key_id, secrets.token_bytes(KEY_BYTES))


def parse_keys(text: str, *, source: str) -> list[CodecKey]:
    """``id:base64key`` pairs (commas or new lines between them), newest first."""
    keys: list[CodecKey] = []
    items = [item.strip() for item in re.split(r"[,\n]", text) if item.strip()]
    if not items:
        raise CodecConfigError(f"{source}: no codec key; expected id:base64key pairs, newest first")
    for n, item in enumerate(items, start=1):
        key_id, sep, encoded = item.partition(":")
        key_id = key_id.strip()
        if not sep or not key_id:
            raise CodecConfigError(f"{source}: key #{n} is not of the form id:base64key")
        if not _KEY_ID.match(key_id):
            raise CodecConfigError(
                f"{source}: key id {key_id!r} must be 1-64 letters, digits, '.', '_' or '-'"
            )
        try:
            material = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise CodecConfigError(f"{source}: key {key_id!r} is not valid base64") from None
        if len(material) != KEY_BYTES:
            raise CodecConfigError(
                f"{source}: key {key_id!r} has {len(material)} bytes; AES-256 needs {KEY_BYTES}"
            )
        if any(k.id == key_id for k in keys):
            raise CodecConfigError(f"{source}: key id {key_id!r} appears twice")
        keys.append(CodecKey(key_id, material))
    return keys


class KeyRing:
    """The keys of one process: the first seals, every one opens.

    A ring read from the key file under OMS_HOME re-reads that file when it meets a
    key id it does not know (a rotation by `oms keys rotate-codec` while it runs).
    """

    def __init__(self, keys: Sequence[CodecKey], *, source: Path | None = None) -> None:
        if not keys:
            raise CodecConfigError("a codec key ring needs at least one key")
        self._set(keys)
        self.source = source
        self._mtime = _mtime(source)

    def _set(self, keys: Sequence[CodecKey]) -> None:
        self.keys: tuple[CodecKey, ...] = tuple(keys)
        self._by_id = {k.id: k for k in self.keys}
        self._ciphers = {k.id: AESGCM(k.material) for k in self.keys}

    @property
    def newest(self) -> CodecKey:
        return self.keys[0]

    @property
    def ids(self) -> list[str]:
        return [k.id for k in self.keys]

    def cipher(self, key_id: str) -> AESGCM | None:
        found = self._ciphers.get(key_id)
        if found is None and self._reload():
            found = self._ciphers.get(key_id)
        return found

    def _reload(self) -> bool:
        if self.source is None:
            return False
        mtime = _mtime(self.source)
        if mtime == self._mtime:
            return False
        try:
            keys = parse_keys(_read_key_file(self.source), source=str(self.source))
        except (CodecConfigError, OSError) as exc:
            log.error("codec key file unreadable; keeping the ring", error=str(exc))
            return False
        self._set(keys)
        self._mtime = mtime
        log.info("codec key ring reloaded", keys=self.ids)
        return True


def _mtime(path: Path | None) -> float | None:
    if path is None:
        return None
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def key_file(home: Path) -> Path:
    return home.resolve() / KEY_FILE


def _read_key_file(path: Path) -> str:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CodecConfigError(
            f"{path} may be read by other users (mode {stat.S_IMODE(mode):o}); "
            f"`chmod 600 {path}` and start again"
        )
    return path.read_text(encoding="ascii")


def _write_key_file(path: Path, keys: Sequence[CodecKey], *, replace: bool) -> bool:
    """Write the ring atomically with mode 0600; when not `replace`, only if there is none yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{k.text()}\n" for k in keys)
    fd, tmp = tempfile.mkstemp(prefix=".codec-keys-", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(tmp, path)
            return True
        try:
            os.link(tmp, path)  # atomic "create if absent": a racing process keeps its own
        except FileExistsError:
            return False
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def key_ring(settings: Any) -> KeyRing:
    """The ring from ``OMS_CODEC_KEYS``, else the embedded default under ``OMS_HOME``."""
    configured = settings.codec_keys.get_secret_value() if settings.codec_keys else None
    if configured is not None:
        return KeyRing(parse_keys(configured, source="OMS_CODEC_KEYS"))
    path = key_file(Path(settings.home))
    if not path.exists():
        key = new_key()
        if _write_key_file(path, [key], replace=False):
            log.info("codec key made", key_id=key.id, file=str(path))
    try:
        text = _read_key_file(path)
    except OSError as exc:
        raise CodecConfigError(f"cannot read the codec key file {path}: {exc}") from exc
    return KeyRing(parse_keys(text, source=str(path)), source=path)


@dataclass
class Rotation:
    key: CodecKey
    ring: list[CodecKey]
    written: Path | None  # the key file, when the embedded default was rotated

    def env_value(self) -> str:
        return ",".join(k.text() for k in self.ring)


def rotate(settings: Any) -> Rotation:
    """A new key, newest first; the old ones stay to open what they sealed.

    Embedded default: the key file under OMS_HOME is rewritten (running workers pick the
    new key up when they first meet it). ``OMS_CODEC_KEYS`` deployments: nothing is
    written; the caller shows the new value to roll out (README: "Rotating the codec key").
    """
    ring = key_ring(settings)
    key = new_key(ring.ids)
    keys = [key, *ring.keys]
    if ring.source is None:
        return Rotation(key=key, ring=keys, written=None)
    _write_key_file(ring.source, keys, replace=True)
    log.info("codec key rotated", key_id=key.id, file=str(ring.source))
    return Rotation(key=key, ring=keys, written=ring.source)


def check_ring(ring: KeyRing, factory: Any) -> None:
    """Refuse a key whose id this installation knows with other material (a wrong key).

    The database keeps each key id's fingerprint (never the key). A key id seen for the
    first time is recorded; one recorded with another fingerprint raises
    `CodecConfigError`, before anything is sealed or opened with it.
    """
    from models.db import transaction
    from models.tables import CodecKeyCheck, utcnow

    with transaction(factory) as session:
        for key in ring.keys:
            row = session.get(CodecKeyCheck, key.id)
            if row is None:
                session.add(CodecKeyCheck(key_id=key.id, fingerprint=key.fingerprint, first_seen=utcnow()))
            elif not hmac.compare_digest(row.fingerprint, key.fingerprint):
                raise CodecConfigError(
                    f"codec key {key.id!r} is not the key {key.id!r} this installation has used "
                    "(its fingerprint differs): payloads sealed with it would not open; "
                    "correct OMS_CODEC_KEYS"
                )


# ----------------------------------------------------------------------- codec


class AesGcmCodec(PayloadCodec):
    """AES-256-GCM over each whole payload; the key id in the metadata.

    No serialization context is used (it does not implement ``WithSerializationContext``):
    the same codec serves every workflow and activity, which keeps the worker's
    context-free sandbox runner (`runtime.worker.context_free`).
    """

    def __init__(self, ring: KeyRing) -> None:
        self.ring = ring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(p) for p in payloads]

    def seal(self, payload: Payload) -> Payload:
        key = self.ring.newest
        cipher = self.ring.cipher(key.id)
        assert cipher is not None
        nonce = os.urandom(NONCE_BYTES)
        sealed = cipher.encrypt(nonce, payload.SerializeToString(), _AAD_PREFIX + key.id.encode())
        return Payload(
            metadata={"encoding": ENCODING, KEY_ID_METADATA: key.id.encode()},
            data=nonce + sealed,
        )

    def open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # never encrypted (recorded before the codec): as it is
        raw_id = payload.metadata.get(KEY_ID_METADATA)
        if not raw_id:
            raise CodecTampered("?", "the payload names no key id")
        key_id = raw_id.decode("utf-8", errors="replace")
        cipher = self.ring.cipher(key_id)
        if cipher is None:
            raise CodecKeyMissing(key_id, self.ring.ids)
        data = payload.data
        if len(data) < NONCE_BYTES + 16:
            raise CodecTampered(key_id, "the ciphertext is truncated")
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], _AAD_PREFIX + raw_id)
        except InvalidTag:
            raise CodecTampered(key_id) from None
        return Payload.FromString(plain)
