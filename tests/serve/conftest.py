"""Fixtures for the serve tests (helpers live in serve_helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sys

# The serve tests share serve_helpers.py; under --import-mode=importlib its folder is not on sys.path by itself.
sys.path.insert(0, str(Path(__file__).parent))

from serve_helpers import make_ehr_db  # noqa: E402


@pytest.fixture()
def ehr_db(tmp_path: Path) -> Path:
    return make_ehr_db(tmp_path / "ehr.sqlite")
