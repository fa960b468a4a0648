"""The probe suite's helpers live beside it (probe_kit.py and the tables); put this folder on sys.path, as the
serve tests do, because tests/ is not a package and pytest runs in importlib mode."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "serve"))  # serve_helpers: the real uvicorn LiveServer
