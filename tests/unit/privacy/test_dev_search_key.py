"""`--dev` and the demo keep a search key under OMS_HOME; a set OMS_SEARCH_KEY always wins."""

from __future__ import annotations

import stat

from pydantic import SecretStr

from models.settings import Settings
from privacy.search_keys import KEY_FILE, secret_of, with_dev_search_key


def test_without_a_key_dev_makes_one_once_under_the_home_readable_by_its_owner_only(tmp_path):
    settings = Settings(home=tmp_path, search_key=None)
    first = with_dev_search_key(settings)
    again = with_dev_search_key(Settings(home=tmp_path, search_key=None))
    assert secret_of(settings) is None  # the settings given are not changed
    assert secret_of(first) is not None and len(secret_of(first)) >= 32
    assert secret_of(again) == secret_of(first)  # the same key on the next start: hashes still match
    mode = stat.S_IMODE((tmp_path / KEY_FILE).stat().st_mode)
    assert mode == 0o600


def test_a_set_key_is_kept_and_nothing_is_written(tmp_path):
    settings = Settings(home=tmp_path, search_key=SecretStr("k" * 40))
    assert secret_of(with_dev_search_key(settings)) == b"k" * 40
    assert not (tmp_path / KEY_FILE).exists()
