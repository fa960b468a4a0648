"""Fixtures for the serve tests (helpers live in serve_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from serve_helpers import make_ehr_db


@pytest.fixture()
def ehr_db(tmp_path: Path) -> Path:
    return make_ehr_db(tmp_path / "ehr.sqlite")
