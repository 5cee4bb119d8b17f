"""The payload-codec key ring of this test session, made when the tests start.

Every Temporal client, worker and `Replayer` in the tests uses `converter()`,
the OMS's own converter (`runtime.temporal.data_converter`) with this ring;
subprocesses (worker.py, starter.py) get the same ring through `ENV`
(``OMS_CODEC_KEYS``), so whatever one part seals, every other part opens.
"""

from __future__ import annotations

from functools import lru_cache

from pydantic import SecretStr
from temporalio.converter import DataConverter

from models.settings import Settings
from runtime.codec import new_key
from runtime.temporal import data_converter

KEY = new_key()
CODEC_KEYS = KEY.text()
ENV = {"OMS_CODEC_KEYS": CODEC_KEYS}


def settings(**values: object) -> Settings:
    """Settings with this session's key ring (and anything else given)."""
    return Settings(codec_keys=SecretStr(CODEC_KEYS), **values)


@lru_cache(maxsize=1)
def converter() -> DataConverter:
    return data_converter(settings())
