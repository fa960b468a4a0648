"""CPU serving of a GGUF export with llama.cpp (``pip install llama-cpp-python``; optional, builds from source).

The decode loop is ours rather than ``create_chat_completion``: llama.cpp only returns log-probs when every
position's logits are kept (``logits_all``, n_ctx × vocab floats), while reading the last position's logits each
step gives the same per-token log-probs and entropies as the transformers backend at no memory cost — and the
abstention policies need them. Greedy decoding here matches the transformers backend on the same weights.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ehrforge.core.types import DEFAULT_MAX_NEW_TOKENS, Generation, Message
from ehrforge.core.backends.capabilities import BackendCapability
from ehrforge.errors import BackendError, ModelError

INSTALL_HINT = "install it with `CMAKE_ARGS=\"-DLLAVA_BUILD=OFF\" pip install llama-cpp-python` (builds llama.cpp, ~5 min)"
# transformers' chat templates may mark assistant spans for training; plain Jinja does not know the tag
_GENERATION_TAGS = re.compile(r"{%-?\s*(end)?generation\s*-?%}")


def render_chat(template: str, messages: list[Message], *, bos_token: str = "", eos_token: str = "") -> str:
    """Render a chat template (sandboxed Jinja, as transformers does) with the generation prompt appended.

    >>> render_chat("{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}",
    ...             [{"role": "user", "content": "hi"}])
    '<user>hi<assistant>'
    """
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(_GENERATION_TAGS.sub("", template)).render(
        messages=messages, add_generation_prompt=True, bos_token=bos_token, eos_token=eos_token)


class LlamaCppBackend:
    name = "llamacpp"
    capabilities = frozenset({BackendCapability.LOGPROBS, BackendCapability.STREAM})

    def __init__(self, path: str | os.PathLike, *, n_ctx: int = 0, n_threads: int | None = None, **_: Any) -> None:
        try:
            import llama_cpp
        except ImportError:
            raise BackendError("the llama.cpp backend needs the 'llama-cpp-python' package", INSTALL_HINT) from None
        self.path = Path(path)
        if not self.path.is_file() or self.path.suffix != ".gguf":
            raise ModelError(f"not a GGUF file: {self.path}", "export one with `ehrforge export --gguf OUT.gguf --model DIR`")
        self._llama_cpp = llama_cpp
        try:
            threads = n_threads or os.cpu_count()
            # n_threads_batch too: left alone it uses every core for the prompt, which on a busy machine makes
            # the prompt slower than the whole answer (threads spin at barriers waiting for a core)
            self.llm = llama_cpp.Llama(str(self.path), n_ctx=n_ctx, n_threads=threads, n_threads_batch=threads,
                                       logits_all=False, verbose=False)
        except ValueError:
            raise ModelError(f"llama.cpp cannot load {self.path.name}", "re-export it with `ehrforge export --gguf`") from None
        self.template = self.llm.metadata.get("tokenizer.chat_template")
        if not self.template:
            raise ModelError(f"{self.path.name} has no chat template", "export from a chat model (its tokenizer has a chat_template)")
        self.n_vocab = self.llm.n_vocab()
        self.stop_ids = {self.llm.token_eos()}
        im_end = self.llm.tokenize(b"<|im_end|>", add_bos=False, special=True)
        if len(im_end) == 1:
            self.stop_ids.add(im_end[0])
        # n_ctx=0: the context length the model was trained with
        self._lock = threading.Lock()  # one llama.cpp context: one conversation at a time

    def render(self, messages: list[Message]) -> str:
        return render_chat(self.template, messages)

    def _decode(self, messages: list[Message], max_new_tokens: int, temperature: float, seed: int | None) -> Iterator[tuple[int, float, float]]:
        """Yield (token id, log-prob, entropy) per generated token, stopping at an end-of-turn token."""
        import numpy as np

        prompt = self.llm.tokenize(self.render(messages).encode("utf-8"), add_bos=False, special=True)
        if len(prompt) + max_new_tokens > self.llm.n_ctx():
            raise BackendError(f"prompt of {len(prompt)} tokens + {max_new_tokens} new exceeds the context ({self.llm.n_ctx()})",
                               "shorten the prompt or load the backend with a larger n_ctx")
        rng = np.random.default_rng(seed)
        self.llm.reset()
        self.llm.eval(prompt)
        self._prompt_tokens = len(prompt)
        for _ in range(max_new_tokens):
            ptr = self._llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
            logits = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,)).astype(np.float64)
            logp = logits - logits.max()
            logp -= np.log(np.exp(logp).sum())
            probs = np.exp(logp)
            if temperature > 0:
                scaled = np.exp((logits - logits.max()) / temperature)
                token = int(rng.choice(self.n_vocab, p=scaled / scaled.sum()))
            else:
                token = int(np.argmax(logits))
            yield token, float(logp[token]), float(-(probs * logp).sum())
            if token in self.stop_ids:
                return
            self.llm.eval([token])

    def generate(self, batch: list[list[Message]], *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, temperature: float = 0.0, seed: int | None = None) -> list[Generation]:
        out = []
        for messages in batch:
            with self._lock:
                steps = list(self._decode(messages, max_new_tokens, temperature, seed))
                prompt_tokens = self._prompt_tokens
            finish = "stop" if steps and steps[-1][0] in self.stop_ids else "length"
            kept = steps[:-1] if finish == "stop" else steps
            ids = [t for t, _, _ in kept]
            out.append(Generation(
                text=self.llm.detokenize(ids).decode("utf-8", errors="replace").strip(),
                tokens=[self.llm.detokenize([t]).decode("utf-8", errors="replace") for t in ids],
                token_logprobs=[lp for _, lp, _ in kept],
                token_entropies=[h for _, _, h in kept],
                prompt_tokens=prompt_tokens,
                finish_reason=finish,
            ))
        return out

    def generate_stream(self, messages: list[Message], *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, temperature: float = 0.0, seed: int | None = None) -> Iterator[str]:
        """Text pieces as they are decoded (the server's ``stream=true`` path). Multi-byte characters split across
        tokens are held back until complete."""
        with self._lock:
            ids: list[int] = []
            sent = ""
            for token, _, _ in self._decode(messages, max_new_tokens, temperature, seed):
                if token in self.stop_ids:
                    break
                ids.append(token)
                text = self.llm.detokenize(ids).decode("utf-8", errors="ignore")
                if len(text) > len(sent) and not text.endswith("\ufffd"):
                    yield text[len(sent):]
                    sent = text

    def close(self) -> None:
        self.llm.close()
