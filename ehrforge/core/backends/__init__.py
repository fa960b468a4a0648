"""Model backends behind one small interface.

A backend turns chat messages into :class:`~ehrforge.core.types.Generation` objects (text plus per-token
log-probabilities where available). Three ship with ehrforge:

* ``transformers`` - a local model (HF folder, GGUF file, or the bundled default) on CPU or CUDA; exact per-token
  log-probs and entropies. Used for students and for local teachers.
* ``openai`` - any OpenAI-compatible HTTP endpoint (vLLM, llama.cpp server, a hosted teacher inside the hospital);
  API key from an environment variable; retries, timeout and rate limit.
* ``fake`` - a deterministic queue of canned answers, for unit tests of prompt/parse logic only.

``load_backend("transformers:/path/to/model")``, ``load_backend("openai:http://127.0.0.1:8000/v1#model-name")``,
``load_backend("bundled")`` pick one from a single string, so the CLI can take ``--teacher``/``--model`` values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ehrforge.core.backends.capabilities import BackendCapability, capabilities_of, supports
from ehrforge.core.types import DEFAULT_MAX_NEW_TOKENS, Generation, Message
from ehrforge.errors import UnknownNameError, closest

__all__ = ["BACKENDS", "BACKEND_KINDS", "Backend", "BackendCapability", "BackendKind", "capabilities_of", "load_backend",
           "supports"]


@runtime_checkable
class Backend(Protocol):
    """Anything that can answer chat messages."""

    name: str

    def generate(
        self,
        batch: list[list[Message]],
        *,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> list[Generation]:
        """One generation per conversation in ``batch``. ``temperature=0`` means greedy."""
        ...


@dataclass(frozen=True)
class BackendKind:
    """One registered backend kind: the ``kind:`` prefix of a spec, what it is, and how to build one."""

    name: str
    summary: str
    #: ``(target, options) -> Backend``; ``target`` is the spec after ``kind:``
    build: Callable[[str, dict[str, Any]], Any]


def _fake(target: str, options: dict[str, Any]) -> Any:
    from ehrforge.core.backends.fake import FakeBackend

    return FakeBackend(responses=[r for r in target.split("|") if r] if target else None)


def _openai(target: str, options: dict[str, Any]) -> Any:
    from ehrforge.core.backends.openai_backend import OpenAIBackend

    url, _, model = target.partition("#")
    return OpenAIBackend(base_url=url, model=model or "default", **options)


def _llamacpp(target: str, options: dict[str, Any]) -> Any:
    from ehrforge.core.backends.llamacpp_backend import LlamaCppBackend

    return LlamaCppBackend(target, **options)


def _vllm(target: str, options: dict[str, Any]) -> Any:
    from ehrforge.core.backends.vllm_backend import VLLMBackend

    return VLLMBackend(target, **options)


def _ct2(target: str, options: dict[str, Any]) -> Any:
    from ehrforge.core.backends.ct2_backend import load_ct2_or_transformers
    from ehrforge.core.models import resolve_model

    return load_ct2_or_transformers(resolve_model(target or "bundled"), **options)


def _transformers(target: str, options: dict[str, Any]) -> Any:
    from ehrforge.core.backends.transformers_backend import TransformersBackend
    from ehrforge.core.models import resolve_model

    return TransformersBackend(resolve_model(target or "bundled"), **options)


#: the one registry of backend kinds, in the order ``ehrforge`` lists them
BACKENDS: dict[str, BackendKind] = {kind.name: kind for kind in [
    BackendKind("transformers", "a local model (HF folder, adapter folder, GGUF, bundled) on CPU or CUDA", _transformers),
    BackendKind("bundled", "the bundled small model, run by transformers", lambda target, options: _transformers("bundled", options)),
    BackendKind("ct2", "a local model run by CTranslate2 int8 on CPU (optional extra; falls back to transformers)", _ct2),
    BackendKind("openai", "any OpenAI-compatible HTTP endpoint (vLLM, llama.cpp server, a teacher inside the hospital)", _openai),
    BackendKind("llamacpp", "a GGUF file run by llama-cpp-python on CPU (optional extra)", _llamacpp),
    BackendKind("vllm", "a merged HF folder run by vLLM on a GPU (optional extra)", _vllm),
    BackendKind("fake", "canned answers, for prompt/parse unit tests only", _fake),
]}
BACKEND_KINDS = tuple(BACKENDS)


def is_local_model_spec(spec: str) -> bool:
    """True when ``spec`` loads a local transformers model: ``bundled``, ``transformers:<path>``, or a bare path or
    model alias (no ``kind:``), so callers can pass local-only options (device, dtype, batch size).

    >>> [is_local_model_spec(s) for s in ("bundled", "runs/sql", "transformers:/m", "openai:http://h/v1", "fake")]
    [True, True, True, False, False]
    """
    kind, sep, _ = spec.partition(":")
    return kind in ("transformers", "bundled") or (not sep and kind not in BACKEND_KINDS)


def default_inference_kind() -> str:
    """The backend kind for local evaluation and serving: ``ct2`` on a CPU-only machine with CTranslate2
    installed (several times faster, int8), else ``transformers`` (the reference, and the one for CUDA)."""
    import importlib.util

    if importlib.util.find_spec("ctranslate2") is None:
        return "transformers"
    from ehrforge.core.backends.transformers_backend import pick_device

    return "ct2" if pick_device("auto") == "cpu" else "transformers"


def load_backend(spec: str, **options: Any) -> Backend:
    """Build a backend from a spec string ``kind:target``; a bare path or model alias is a local transformers model
    and a bare ``http(s)://`` URL an OpenAI-compatible endpoint.

    >>> load_backend("fake").name
    'fake'
    """
    kind, sep, target = spec.partition(":")
    if kind in ("http", "https"):
        kind, target = "openai", spec
    elif kind not in BACKENDS and is_local_model_spec(spec):
        kind, target = "transformers", spec
    if kind not in BACKENDS:
        raise UnknownNameError(f"unknown backend '{kind}'", closest(kind, BACKEND_KINDS))
    return BACKENDS[kind].build(target, dict(options))
