"""Any OpenAI-compatible ``/v1/chat/completions`` endpoint: the teacher, or a model served by vLLM/llama.cpp.

The API key is read from an environment variable (default ``EHRFORGE_API_KEY``), never from config files.
Requests are retried with exponential backoff on timeouts, 429 and 5xx; a minimum interval between requests
enforces a simple rate limit. Log-probs are requested and used when the server returns them.
"""

from __future__ import annotations

import math
import os
import threading
import time
from typing import Any

from ehrforge.core.types import DEFAULT_MAX_NEW_TOKENS, Generation, Message
from ehrforge.core.backends.capabilities import BackendCapability
from ehrforge.errors import BackendError

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}


def entropy_from_top_logprobs(top: list[dict[str, Any]]) -> float:
    """Entropy (nats) of a next-token distribution known only by its top-k log-probs; the unseen tail mass is
    counted as one extra outcome, so this is a lower bound on the true entropy.

    >>> round(entropy_from_top_logprobs([{"logprob": math.log(0.5)}, {"logprob": math.log(0.5)}]), 4)
    0.6931
    """
    probs = [math.exp(t["logprob"]) for t in top]
    tail = max(0.0, 1.0 - sum(probs))
    return -sum(p * math.log(p) for p in probs + [tail] if p > 0)


class OpenAIBackend:
    name = "openai"
    capabilities = frozenset({BackendCapability.LOGPROBS})

    def __init__(
        self,
        base_url: str,
        model: str = "default",
        *,
        api_key_env: str = "EHRFORGE_API_KEY",
        timeout_s: float = 60.0,
        max_retries: int = 3,
        min_interval_s: float = 0.0,
        logprobs: bool = True,
        top_logprobs: int = 5,
    ) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        self.model = model
        key = os.environ.get(api_key_env, "")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.client = httpx.Client(timeout=timeout_s, headers=headers)
        self.max_retries = max_retries
        self.min_interval_s = min_interval_s
        self.logprobs = logprobs
        self.top_logprobs = top_logprobs
        self._last_request = 0.0
        self._lock = threading.Lock()

    def _wait_turn(self) -> None:
        with self._lock:
            delay = self._last_request + self.min_interval_s - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._last_request = time.monotonic()

    def _post(self, payload: dict[str, Any]) -> dict[str, Any]:
        import httpx

        last = "no attempt"
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(min(8.0, 0.25 * 2**attempt))
            self._wait_turn()
            try:
                resp = self.client.post(f"{self.base_url}/chat/completions", json=payload)
            except httpx.HTTPError as exc:
                last = type(exc).__name__
                continue
            if resp.status_code in RETRYABLE_STATUS:
                last = f"HTTP {resp.status_code}"
                continue
            if resp.status_code >= 400:
                raise BackendError(f"endpoint refused the request: HTTP {resp.status_code}", "check the URL, model name and API key", url=self.base_url)
            try:
                data = resp.json()
                data["choices"][0]["message"]
            except (ValueError, KeyError, IndexError, TypeError):
                last = "malformed response"
                continue
            return data
        raise BackendError(f"endpoint failed after {self.max_retries + 1} attempts ({last})", "check the server is up, or raise --retries/--timeout", url=self.base_url)

    def generate(
        self,
        batch: list[list[Message]],
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> list[Generation]:
        out = []
        for messages in batch:
            payload: dict[str, Any] = {
                "model": self.model,
                "messages": messages,
                "max_tokens": max_new_tokens,
                "temperature": temperature,
            }
            if seed is not None:
                payload["seed"] = seed
            if self.logprobs:
                payload["logprobs"] = True
                payload["top_logprobs"] = self.top_logprobs
            data = self._post(payload)
            choice = data["choices"][0]
            text = choice["message"].get("content") or ""
            tokens: list[str] = []
            lps: list[float] | None = None
            ents: list[float] | None = None
            content = (choice.get("logprobs") or {}).get("content")
            if content:
                tokens = [c.get("token", "") for c in content]
                lps = [float(c["logprob"]) for c in content]
                if all(c.get("top_logprobs") for c in content):
                    ents = [entropy_from_top_logprobs(c["top_logprobs"]) for c in content]
            usage = data.get("usage") or {}
            out.append(
                Generation(
                    text=text.strip(),
                    tokens=tokens,
                    token_logprobs=lps,
                    token_entropies=ents,
                    prompt_tokens=int(usage.get("prompt_tokens", 0)),
                    finish_reason=choice.get("finish_reason") or "stop",
                )
            )
        return out
