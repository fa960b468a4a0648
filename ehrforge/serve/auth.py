"""Bearer-token authentication.

Tokens come from a file (one ``name:token`` or bare ``token`` per line, ``#`` comments), from an environment variable
(comma-separated ``name:token``), or from code. The *name* identifies the caller in the audit log and keys the rate
limit; the token itself is never logged or echoed. Comparison is constant-time so response timing leaks nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from ehrforge.errors import ServeError

#: shorter secrets are guessable; refuse them at start-up
MIN_TOKEN_LENGTH = 16


def generate_token() -> str:
    """A fresh random bearer token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def _parse_entry(entry: str, default_name: str) -> tuple[str, str]:
    name, sep, token = entry.strip().partition(":")
    if not sep:  # a bare token: name it by a hash prefix, never by the token itself
        token = name
        name = default_name + "-" + hashlib.sha256(token.encode()).hexdigest()[:8]
    return name.strip(), token.strip()


def read_tokens(tokens_file: Path | None = None, tokens_env: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Collect ``{name: token}`` from every configured source; raise :class:`ServeError` on a bad entry.

    >>> import os; os.environ["EHRFORGE_DOCTEST_TOKENS"] = "ward7:aaaaaaaaaaaaaaaaaaaa"
    >>> read_tokens(tokens_env="EHRFORGE_DOCTEST_TOKENS")
    {'ward7': 'aaaaaaaaaaaaaaaaaaaa'}
    """
    entries: list[tuple[str, str, str]] = []  # (name, token, where)
    if tokens_file is not None:
        try:
            lines = Path(tokens_file).read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise ServeError(f"cannot read tokens file {tokens_file}: {type(exc).__name__}", "check the path and permissions") from None
        except UnicodeDecodeError:
            raise ServeError(f"tokens file {tokens_file} is not UTF-8 text", "write one name:token per line") from None
        before = len(entries)
        for lineno, line in enumerate(lines, start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                entries.append((*_parse_entry(line, "token"), f"{tokens_file} line {lineno}"))
        if len(entries) == before:
            # An operator who passed a tokens file meant to issue tokens; silently serving with a one-off token (or
            # only the environment's) would hide the mistake until the ward cannot log in.
            raise ServeError(f"tokens file {tokens_file} holds no tokens (only blank lines or comments)",
                             "add one name:token per line, e.g. ward7:$(python -c 'import secrets; print(secrets.token_urlsafe(32))')")
    if tokens_env and os.environ.get(tokens_env):
        for i, part in enumerate(os.environ[tokens_env].split(","), start=1):
            if part.strip():
                entries.append((*_parse_entry(part, "env"), f"${tokens_env} entry {i}"))
    for name, token in (extra or {}).items():
        entries.append((name, token, "settings"))
    tokens: dict[str, str] = {}
    for name, token, where in entries:
        if len(token) < MIN_TOKEN_LENGTH:
            raise ServeError(f"bearer token too short at {where} (< {MIN_TOKEN_LENGTH} characters)",
                             "use `python -c 'import secrets; print(secrets.token_urlsafe(32))'` to make one")
        if not name or any(c.isspace() for c in name):
            raise ServeError(f"bad token name at {where}", "write entries as name:token, name without spaces")
        if name in tokens and tokens[name] != token:
            raise ServeError(f"token name '{name}' is defined twice ({where})", "give each token its own name")
        tokens[name] = token
    return tokens


@dataclass
class TokenAuth:
    tokens: dict[str, str]

    def identify(self, authorization: str | None) -> str | None:
        """The caller's token name for an ``Authorization: Bearer <token>`` header, or None.

        >>> auth = TokenAuth({"ward7": "s3cret-s3cret-s3cret"})
        >>> auth.identify("Bearer s3cret-s3cret-s3cret"), auth.identify("Bearer wrong"), auth.identify(None)
        ('ward7', None, None)
        """
        if not authorization:
            return None
        scheme, _, presented = authorization.partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return None
        presented_b = presented.strip().encode()
        found = None
        for name, token in self.tokens.items():
            # compare against every token (no early exit) so timing does not reveal which prefix matched
            if hmac.compare_digest(presented_b, token.encode()):
                found = name
        return found
