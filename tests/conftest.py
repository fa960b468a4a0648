"""Shared fixtures: a tiny real transformer, built locally once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Keep tests on 2 cores predictable and never let a library reach for a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_POSTGRES = None


def pytest_configure(config: pytest.Config) -> None:
    """Start a throw-away PostgreSQL for the real-server tests unless one is named already (tests/throwaway_postgres.py)."""
    global _POSTGRES
    if os.environ.get("EHRFORGE_TEST_POSTGRES_URL") or hasattr(config, "workerinput"):
        return
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from throwaway_postgres import ThrowawayPostgres

    _POSTGRES = ThrowawayPostgres()
    url = _POSTGRES.start()
    if url:
        os.environ["EHRFORGE_TEST_POSTGRES_URL"] = url


def pytest_unconfigure(config: pytest.Config) -> None:
    if _POSTGRES is not None:
        _POSTGRES.stop()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ehrforge.core.tiny import make_tiny_chat_model

    return make_tiny_chat_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the repo (developer machines and CI); tests that need it skip elsewhere."""
    if not SHARED.exists():
        pytest.skip("../shared/data is not available on this machine")
    return SHARED


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # Converted bundled models are cached per user; keep a test's writes away from the real cache unless a test
    # opts into the shared one (the bundled-model tests are slow and reuse it deliberately).
    if "EHRFORGE_HOME" not in os.environ:
        monkeypatch.setenv("EHRFORGE_HOME", str(tmp_path_factory.getbasetemp() / "ehrforge-home"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    for item in items:
        if "gpu" in item.keywords and not has_cuda:
            item.add_marker(skip_gpu)
