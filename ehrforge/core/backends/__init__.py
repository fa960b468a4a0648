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

from typing import Protocol, runtime_checkable

from ehrforge.core.types import Generation, Message
from ehrforge.errors import UnknownNameError, closest


@runtime_checkable
class Backend(Protocol):
    """Anything that can answer chat messages."""

    name: str

    def generate(
        self,
        batch: list[list[Message]],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
    ) -> list[Generation]:
        """One generation per conversation in ``batch``. ``temperature=0`` means greedy."""
        ...


BACKEND_KINDS = ("transformers", "openai", "fake", "bundled", "llamacpp", "vllm", "ct2")


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


def load_backend(spec: str, **options: object) -> Backend:
    """Build a backend from a spec string ``kind:target``.

    >>> load_backend("fake").name
    'fake'
    """
    kind, sep, target = spec.partition(":")
    if kind in ("http", "https"):  # a bare URL means an OpenAI-compatible endpoint
        kind, target = "openai", spec
    if kind == "fake":
        from ehrforge.core.backends.fake import FakeBackend

        return FakeBackend(responses=[r for r in target.split("|") if r] if target else None)
    if kind == "openai":
        from ehrforge.core.backends.openai_backend import OpenAIBackend

        url, _, model = target.partition("#")
        return OpenAIBackend(base_url=url, model=model or "default", **options)  # type: ignore[arg-type]
    if kind == "llamacpp":  # CPU serving of a GGUF file (optional extra: llama-cpp-python)
        from ehrforge.core.backends.llamacpp_backend import LlamaCppBackend

        return LlamaCppBackend(target, **options)  # type: ignore[arg-type]
    if kind == "vllm":  # GPU serving of a merged HF folder (optional extra: vllm)
        from ehrforge.core.backends.vllm_backend import VLLMBackend

        return VLLMBackend(target, **options)  # type: ignore[arg-type]
    if kind == "ct2":  # fast CPU generation (optional extra: ctranslate2); falls back to transformers
        from ehrforge.core.backends.ct2_backend import load_ct2_or_transformers
        from ehrforge.core.models import resolve_model

        return load_ct2_or_transformers(resolve_model(target or "bundled"), **options)
    if kind == "bundled":
        from ehrforge.core.backends.transformers_backend import TransformersBackend
        from ehrforge.core.models import resolve_model

        return TransformersBackend(resolve_model("bundled"), **options)  # type: ignore[arg-type]
    if is_local_model_spec(spec):  # transformers:<path>, or a bare path / model alias
        from ehrforge.core.backends.transformers_backend import TransformersBackend
        from ehrforge.core.models import resolve_model

        return TransformersBackend(resolve_model(target if sep else kind), **options)  # type: ignore[arg-type]
    raise UnknownNameError(f"unknown backend '{kind}'", closest(kind, BACKEND_KINDS))
