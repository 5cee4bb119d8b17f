"""The catalog fixture of the intake rules' tests."""

from __future__ import annotations

import pytest

from models.types import CatalogEntry
from tests.harness.rules import CATALOG


@pytest.fixture
def catalog() -> dict[str, CatalogEntry]:
    return dict(CATALOG)

