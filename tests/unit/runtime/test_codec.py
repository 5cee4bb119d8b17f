"""The payload codec: AES-256-GCM per payload, the key ring, rotation, refusals.

Pure codec tests first, then the key ring's sources (OMS_CODEC_KEYS, the key file
under OMS_HOME), the wrong-key check against the database, and the worker and CLI
refusing to start with a bad ring, as real subprocesses.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError

from models.settings import Settings
from runtime.codec import (
    ENCODING,
    KEY_ID_METADATA,
    AesGcmCodec,
    CodecConfigError,
    CodecKeyMissing,
    CodecTampered,
    KeyRing,
    check_ring,
    key_file,
    key_ring,
    new_key,
    parse_keys,
    rotate,
)
from runtime.temporal import data_converter
from tests.harness import ROOT

SECRET_TEXT = "张三 13812345678 文三路100号3幢501室"


def plain(text: str = SECRET_TEXT) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


def ring(*keys) -> KeyRing:
    return KeyRing(list(keys))


# ------------------------------------------------------------------- sealing


async def test_a_payload_is_sealed_whole_under_the_newest_key_and_opens_again():
    k1, k2 = new_key(), new_key()
    codec = AesGcmCodec(ring(k2, k1))
    [sealed] = await codec.encode([plain()])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID_METADATA] == k2.id.encode()
    assert set(sealed.metadata) == {"encoding", KEY_ID_METADATA}  # json/plain is inside
    assert SECRET_TEXT.encode() not in sealed.data
    assert b"13812345678" not in sealed.data
    [opened] = await codec.decode([sealed])
    assert opened == plain()


async def test_every_payload_gets_a_fresh_nonce():
    codec = AesGcmCodec(ring(new_key()))
    sealed = await codec.encode([plain(), plain(), plain()])
    nonces = {p.data[:12] for p in sealed}
    assert len(nonces) == 3
    assert len({p.data for p in sealed}) == 3


async def test_after_rotation_old_payloads_open_and_new_ones_use_the_new_key():
    k1 = new_key()
    [old] = await AesGcmCodec(ring(k1)).encode([plain()])
    k2 = new_key([k1.id])
    rotated = AesGcmCodec(ring(k2, k1))
    assert await rotated.decode([old]) == [plain()]
    [new] = await rotated.encode([plain()])
    assert new.metadata[KEY_ID_METADATA] == k2.id.encode()


async def test_a_payload_under_a_key_not_in_the_ring_is_an_error_naming_the_key():
    k1, k2 = new_key(), new_key()
    [sealed] = await AesGcmCodec(ring(k1)).encode([plain()])
    with pytest.raises(CodecKeyMissing) as caught:
        await AesGcmCodec(ring(k2)).decode([sealed])
    assert caught.value.key_id == k1.id
    assert repr(k1.id) in str(caught.value) and k2.id in str(caught.value)
    assert not isinstance(caught.value, ApplicationError)  # a workflow task retries; never fails the workflow


@pytest.mark.parametrize("where", ["ciphertext", "nonce", "key id", "truncated"])
async def test_a_tampered_payload_is_an_error_naming_the_key_never_plaintext(where):
    k1 = new_key()
    codec = AesGcmCodec(ring(k1))
    [sealed] = await codec.encode([plain()])
    data = bytearray(sealed.data)
    if where == "ciphertext":
        data[20] ^= 1
    elif where == "nonce":
        data[0] ^= 1
    elif where == "truncated":
        data = data[:20]
    sealed.data = bytes(data)
    if where == "key id":
        # the same material under another id: the id is authenticated with the ciphertext
        twin = type(k1)("other-id", k1.material)
        codec = AesGcmCodec(ring(k1, twin))
        sealed.metadata[KEY_ID_METADATA] = b"other-id"
    with pytest.raises(CodecTampered) as caught:
        await codec.decode([sealed])
    assert caught.value.key_id in (k1.id, "other-id")
    assert caught.value.key_id in str(caught.value)


async def test_a_wrong_key_under_the_right_id_fails_authentication():
    k1 = new_key()
    [sealed] = await AesGcmCodec(ring(k1)).encode([plain()])
    impostor = type(k1)(k1.id, os.urandom(32))
    with pytest.raises(CodecTampered, match=k1.id):
        await AesGcmCodec(ring(impostor)).decode([sealed])


async def test_payloads_that_were_never_encrypted_decode_as_they_are():
    codec = AesGcmCodec(ring(new_key()))
    legacy = [plain(), Payload(metadata={"encoding": b"binary/null"}), Payload()]
    assert await codec.decode(legacy) == legacy


async def test_failure_messages_and_stack_traces_are_sealed_too():
    converter = data_converter(Settings(codec_keys=SecretStr(new_key().text())))
    failure = Failure()
    try:
        raise ApplicationError(f"bad phone {SECRET_TEXT}", type="InvalidData")
    except ApplicationError as exc:
        await converter.encode_failure(exc, failure)
    assert failure.message == "Encoded failure"
    assert failure.stack_trace == ""
    assert failure.encoded_attributes.metadata["encoding"] == ENCODING
    assert SECRET_TEXT.encode() not in failure.SerializeToString()
    back = await converter.decode_failure(failure)
    assert SECRET_TEXT in str(back)


# ------------------------------------------------------------------ the ring


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "no codec key"),
        ("k1", "not of the form id:base64key"),
        ("k1:!!!", "not valid base64"),
        (f"k1:{base64.b64encode(b'x' * 16).decode()}", "16 bytes; AES-256 needs 32"),
        ("bad id:" + base64.b64encode(b"x" * 32).decode(), "key id 'bad id'"),
        ("k1:{0},k1:{0}".format(base64.b64encode(b"x" * 32).decode()), "appears twice"),
    ],
)
def test_a_malformed_ring_is_refused_with_the_reason_and_never_the_key(text, problem):
    with pytest.raises(CodecConfigError, match=problem) as caught:
        parse_keys(text, source="OMS_CODEC_KEYS")
    assert "OMS_CODEC_KEYS" in str(caught.value)
    assert base64.b64encode(b"x" * 32).decode() not in str(caught.value)


def test_oms_codec_keys_is_read_newest_first():
    k1, k2 = new_key(), new_key()
    loaded = key_ring(Settings(codec_keys=SecretStr(f"{k2.text()}, {k1.text()}")))
    assert loaded.ids == [k2.id, k1.id] and loaded.newest == k2
    assert loaded.source is None


def test_the_embedded_default_makes_a_0600_key_file_once_and_reuses_it(tmp_path: Path):
    settings = Settings(home=tmp_path / "home")
    first = key_ring(settings)
    path = key_file(settings.home)
    assert first.source == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key_ring(settings).keys == first.keys
    assert len(first.keys) == 1 and len(first.newest.material) == 32


def test_a_key_file_others_may_read_is_refused(tmp_path: Path):
    settings = Settings(home=tmp_path)
    key_ring(settings)
    key_file(tmp_path).chmod(0o644)
    with pytest.raises(CodecConfigError, match="chmod 600"):
        key_ring(settings)


async def test_rotating_the_key_file_adds_a_key_first_and_a_running_ring_picks_it_up(tmp_path: Path):
    settings = Settings(home=tmp_path)
    running = AesGcmCodec(key_ring(settings))  # a worker that started before the rotation
    [old] = await running.encode([plain()])
    rotation = rotate(settings)
    assert rotation.written == key_file(tmp_path)
    assert stat.S_IMODE(key_file(tmp_path).stat().st_mode) == 0o600
    after = AesGcmCodec(key_ring(settings))  # a CLI started after it
    assert after.ring.ids == [rotation.key.id, running.ring.newest.id]
    [new] = await after.encode([plain()])
    assert await after.decode([old, new]) == [plain(), plain()]
    # the running worker meets the new key id, re-reads the file and opens it
    assert await running.decode([new]) == [plain()]


def test_rotating_oms_codec_keys_writes_nothing_and_gives_the_new_value(tmp_path: Path):
    k1 = new_key()
    rotation = rotate(Settings(home=tmp_path, codec_keys=SecretStr(k1.text())))
    assert rotation.written is None and not key_file(tmp_path).exists()
    assert [k.id for k in parse_keys(rotation.env_value(), source="x")] == [rotation.key.id, k1.id]


def test_a_key_known_under_its_id_with_other_material_is_refused(factory):
    k1 = new_key()
    check_ring(ring(k1), factory)  # first seen: recorded (a fingerprint, not the key)
    check_ring(ring(k1), factory)  # the same key again: fine
    impostor = type(k1)(k1.id, os.urandom(32))
    with pytest.raises(CodecConfigError, match="fingerprint differs"):
        check_ring(ring(impostor), factory)


# ---------------------------------------------------- processes that refuse


def run(script: str, *args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OMS_", "TEMPORAL_"))}
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        env={**clean, "OMS_HOME": str(cwd / ".oms"), "TEMPORAL_ADDRESS": "127.0.0.1:1", **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OMS_CODEC_KEYS": "k1:not-a-key"}, "key 'k1' is not valid base64"),
        ({"OMS_CODEC_KEYS": "k1:" + base64.b64encode(b"short").decode()}, "has 5 bytes"),
        ({"OMS_WEBHOOK_URL": "http://127.0.0.1:9/hook"}, "OMS_WEBHOOK_SECRETS is not"),
        (
            {"OMS_WEBHOOK_URL": "http://127.0.0.1:9/hook", "OMS_WEBHOOK_SECRETS": "oms-dev-secret"},
            "secret #1 does not start with 'whsec_'",
        ),
    ],
)
def test_the_worker_refuses_to_start_with_a_bad_key_or_secret(tmp_path: Path, env, message):
    result = run("worker.py", env=env, cwd=tmp_path)
    assert result.returncode != 0
    assert "worker not started: " in result.stderr and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_the_worker_refuses_a_wrong_key_for_a_known_id(tmp_path: Path):
    k1 = new_key()
    db = f"sqlite:///{tmp_path / 'oms.db'}"
    from models.db import make_engine, migrate, session_factory

    migrate(db)
    engine = make_engine(db)
    check_ring(ring(k1), session_factory(engine))
    engine.dispose()
    impostor = type(k1)(k1.id, os.urandom(32))
    result = run("worker.py", env={"OMS_CODEC_KEYS": impostor.text(), "OMS_DATABASE_URL": db}, cwd=tmp_path)
    assert result.returncode != 0
    assert f"codec key {k1.id!r} is not the key" in result.stderr, result.stderr


def test_the_cli_names_a_malformed_ring_clearly(tmp_path: Path):
    result = run("starter.py", "keys", "rotate-codec", env={"OMS_CODEC_KEYS": "nonsense"}, cwd=tmp_path)
    assert result.returncode == 1
    assert "error: payload codec: OMS_CODEC_KEYS: key #1 is not of the form id:base64key" in result.stderr


def test_oms_keys_rotate_codec_on_the_embedded_default(tmp_path: Path):
    first = run("starter.py", "keys", "rotate-codec", "--json", env={}, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    answer = json.loads(first.stdout)
    assert answer["written"] == str(key_file(tmp_path / ".oms"))
    assert answer["keys"][0] == answer["new_key_id"] and len(answer["keys"]) == 2
    assert "OMS_CODEC_KEYS" not in answer
    second = json.loads(run("starter.py", "keys", "rotate-codec", "--json", env={}, cwd=tmp_path).stdout)
    assert second["keys"][1:] == answer["keys"]
