"""Fixtures of the filter tests."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.filter.corpus import write_store


@pytest.fixture()
def make_store(tmp_path: Path):
    counter = iter(range(1000))

    def make(shards: list[list[Mapping[str, Any]]]) -> Path:
        return write_store(tmp_path / f"in{next(counter)}", shards)

    return make
