"""Serving: an OpenAI-compatible API, task endpoints with abstention, a web page; auth, limits and an audit log."""

from ehrforge.serve.app import create_app
from ehrforge.serve.run import build_app, serve
from ehrforge.serve.settings import ServeSettings

__all__ = ["ServeSettings", "build_app", "create_app", "serve"]
