"""Server settings: one typed object, validated up front so a bad deployment fails before it listens.

Defaults suit one clinician team on one machine: loopback only, bearer tokens required, small request bodies, a
per-token rate limit, a short bounded queue in front of the model (overload answers 503 instead of piling up
memory), CORS off, and no question text in any log.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

from ehrforge.core.types import DEFAULT_MAX_NEW_TOKENS
from ehrforge.errors import ConfigError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach.

    >>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0"), is_loopback("localhost")
    (True, False, True)
    """
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _unwritable(path: Path) -> str | None:
    """Why the audit log ``path`` cannot be appended to, or None. Checked by opening it (the server would create it
    a moment later anyway, mode 0600), because permission bits say nothing about /proc, read-only mounts or root.

    >>> _unwritable(Path("/proc/nope/a.jsonl"))
    'cannot be created (FileNotFoundError): /proc/nope/a.jsonl'
    """
    if path.is_dir():
        return f"must be a file path, got a folder: {path}"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600))
    except OSError as exc:
        return f"cannot be created ({type(exc).__name__}): {path}"
    if path.stat().st_mode & 0o077:
        # an existing file keeps its mode when appended to: one readable by others would leak who asked what
        try:
            os.chmod(path, 0o600)
        except OSError:
            return f"is readable by other users and its mode cannot be set to 0600: {path}"
    return None


@dataclass
class ServeSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    #: the id clients see in ``/v1/models`` and must (or may) send as ``model``
    model_name: str = "ehrforge"
    #: file of bearer tokens, one ``name:token`` (or bare ``token``) per line; ``#`` starts a comment
    tokens_file: Path | None = None
    #: environment variable holding comma-separated ``name:token`` entries
    tokens_env: str = "EHRFORGE_SERVE_TOKENS"
    #: extra tokens given in code (``serve()`` puts a generated one-off token here when none is configured)
    tokens: dict[str, str] = field(default_factory=dict)
    #: largest accepted request body; larger ones get 413 before the body is read
    max_body_bytes: int = 64 * 1024
    #: per-token (per-IP for unauthenticated attempts) token bucket: sustained rate and burst size
    rate_per_minute: float = 120.0
    rate_burst: int = 20
    #: model calls running at once (a local CPU model gains nothing from more than one)
    workers: int = 1
    #: requests allowed to wait for a worker; more answer 503 at once so memory stays bounded
    queue_size: int = 64
    #: a request that waited this long for a worker answers 503 instead of running late
    queue_timeout_s: float = 60.0
    #: chat requests with identical generation settings waiting together are sent to the model as one batch
    max_batch: int = 8
    #: ceiling on ``max_tokens`` a client may request, and the default when it sends none
    max_new_tokens_cap: int = 512
    default_max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    #: browser origins allowed to call the API cross-site; empty = CORS off
    cors_origins: list[str] = field(default_factory=list)
    #: JSONL audit log (who, when, endpoint, sha256 of the question); None = no audit log
    audit_log: Path | None = None
    #: write the question text itself into the audit log (off: only its sha256)
    log_patient_text: bool = False
    #: open connections in all; more are refused with a JSON 503 and an audit line (serve/connections.py)
    max_connections: int = 1024
    #: reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses); empty = none: the
    #: lock-out, rate limits and audit log key on the socket's peer address, which a client cannot forge
    trusted_proxies: list[str] = field(default_factory=list)
    #: seconds a connection may take to send its request headers, or sit idle between requests, before it is closed
    header_timeout_s: float = 10.0
    #: open connections one client address may hold; more are refused with a JSON 503 (serve/connections.py)
    connections_per_client: int = 64
    #: the task the web page selects first (the one the server was started for); None = sql if served, else the first
    default_task: str | None = None

    def __post_init__(self) -> None:
        self.tokens_file = Path(self.tokens_file) if self.tokens_file else None
        self.audit_log = Path(self.audit_log) if self.audit_log else None
        self.validate()

    def validate(self) -> None:
        """Raise one :class:`ConfigError` listing every problem."""
        problems: list[str] = []
        if not (0 <= self.port <= 65535):
            problems.append(f"port must be 0..65535, got {self.port}")
        positive_ints = ("max_body_bytes", "rate_burst", "workers", "max_batch", "max_new_tokens_cap",
                         "default_max_new_tokens", "max_connections", "connections_per_client")
        for name in positive_ints:
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                problems.append(f"{name} must be a positive integer, got {getattr(self, name)!r}")
        if not isinstance(self.queue_size, int) or self.queue_size < 0:
            problems.append(f"queue_size must be >= 0, got {self.queue_size!r}")
        if self.rate_per_minute <= 0:
            problems.append(f"rate_per_minute must be > 0, got {self.rate_per_minute}")
        if self.queue_timeout_s <= 0:
            problems.append(f"queue_timeout_s must be > 0, got {self.queue_timeout_s}")
        if isinstance(self.default_max_new_tokens, int) and isinstance(self.max_new_tokens_cap, int) \
                and self.default_max_new_tokens > self.max_new_tokens_cap:
            problems.append("default_max_new_tokens must not exceed max_new_tokens_cap")
        if self.tokens_file is not None and not self.tokens_file.is_file():
            problems.append(f"tokens_file not found: {self.tokens_file}")
        if "*" in self.cors_origins:
            problems.append("cors_origins must list explicit origins, not '*' (the API carries patient data)")
        for origin in self.cors_origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                problems.append(f"cors origin must start with http:// or https://, got {origin!r}")
        if self.audit_log is not None:
            problem = _unwritable(self.audit_log)
            if problem:
                problems.append(f"audit_log {problem}")
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                problems.append(f"trusted proxy must be an IP address or network, got {proxy!r}")
        if not (0 < self.header_timeout_s <= 600):
            problems.append(f"header_timeout_s must be in (0, 600], got {self.header_timeout_s}")
        if self.default_task is not None and not isinstance(self.default_task, str):
            problems.append(f"default_task must be a task name, got {self.default_task!r}")
        if problems:
            raise ConfigError(problems, "fix the listed serve settings (see `ehrforge serve --help`)")

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]
