"""Serving: an OpenAI-compatible API, task endpoints with abstention, a web page; auth, limits and an audit log."""

from ehrforge.core.serve.app import create_app
from ehrforge.core.serve.run import build_app, serve
from ehrforge.core.serve.settings import ServeSettings

__all__ = ["ServeSettings", "build_app", "create_app", "serve"]
