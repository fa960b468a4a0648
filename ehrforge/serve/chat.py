"""The OpenAI-compatible chat endpoint: ``POST /v1/chat/completions``, whole or streamed as Server-Sent Events."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from ehrforge.core.backends.capabilities import BackendCapability, supports
from ehrforge.core.types import Generation
from ehrforge.serve.audit import note_audit
from ehrforge.serve.scheduler import Overloaded

if TYPE_CHECKING:
    from ehrforge.serve.app import Server

log = logging.getLogger("ehrforge.serve")
#: the largest seed every backend accepts (torch takes unsigned 64-bit; llama.cpp and OpenAI clients signed 64-bit)
MAX_SEED = 2**63 - 1


def _valid_text(value: str) -> str:
    """Text that can be sent back and logged: a lone surrogate (valid JSON, not valid UTF-8) is refused with 400
    instead of failing mid-response."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid UTF-8 text (a lone surrogate)") from None
    return value


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    #: required, as OpenAI's API requires it for these roles: a message without content is a client mistake
    content: str | list[dict[str, Any]]

    @field_validator("content")
    @classmethod
    def _utf8(cls, value: Any) -> Any:
        if isinstance(value, str):
            return _valid_text(value)
        for part in value:
            if isinstance(part.get("text"), str):
                _valid_text(part["text"])
        return value

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        # OpenAI content parts: keep the text ones
        return "".join(str(p.get("text", "")) for p in self.content if p.get("type") == "text")


#: OpenAI request fields this server cannot honour: sent with a value, they are refused (400 naming the field)
#: rather than silently ignored, since a client relying on them would misread the answer
UNSUPPORTED_CHAT_FIELDS = ("tools", "tool_choice", "functions", "function_call", "response_format")


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    messages: list[ChatMessageIn] = Field(min_length=1, max_length=64)
    max_tokens: StrictInt | None = Field(default=None, ge=1, le=1_000_000)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1, le=1_000_000)
    top_logprobs: StrictInt | None = Field(default=None, ge=0, le=20)  # OpenAI's range; alternatives come back empty
    tools: Any = None
    tool_choice: Any = None
    functions: Any = None
    function_call: Any = None
    response_format: Any = None

    @model_validator(mode="after")
    def _supported(self) -> "ChatRequest":
        sent = [name for name in UNSUPPORTED_CHAT_FIELDS if getattr(self, name) not in (None, [], {}, {"type": "text"}, "none")]
        if sent:
            raise ValueError(f"not supported by this server: {', '.join(sent)}")
        return self
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, allow_inf_nan=False)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    stream: bool = False
    logprobs: bool = False
    n: int = Field(default=1, ge=1, le=1)
    stop: str | list[str] | None = Field(default=None, max_length=16)


def apply_stop(text: str, stop: str | list[str] | None) -> tuple[str, bool]:
    """Cut ``text`` at the first stop sequence.

    >>> apply_stop("SELECT 1; DROP", [";"])
    ('SELECT 1', True)
    """
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    cut = min((i for s in stops if s and (i := text.find(s)) >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def generation_confidence(gen: Generation) -> float | None:
    """Geometric-mean token probability in [0, 1] (None when the backend gives no log-probs)."""
    lp = gen.mean_logprob()
    return None if lp is None else round(math.exp(lp), 4)


def add_chat_routes(app: FastAPI, server: Server) -> None:
    """``POST /v1/chat/completions`` for the served model (any OpenAI client can use it)."""

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest, request: Request, who: str = Depends(server.caller)) -> Any:
        if body.model not in (None, "", "default", server.settings.model_name):
            raise HTTPException(404, f"model not served here; this server serves '{server.settings.model_name}'")
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in body.messages]
        max_new = min(body.max_completion_tokens or body.max_tokens or server.settings.default_max_new_tokens, server.settings.max_new_tokens_cap)
        last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        t0 = time.perf_counter()
        completion_id = "chatcmpl-" + uuid.uuid4().hex
        note_audit(request.scope, question=last_user)
        if body.stream:
            note_audit(request.scope, stream=True)
            return StreamingResponse(sse_chat(server, completion_id, messages, max_new, body, request.scope), media_type="text/event-stream",
                                     headers={"X-Accel-Buffering": "no"})
        gen = await server.scheduler.generate(messages, max_new_tokens=max_new, temperature=body.temperature, seed=body.seed)
        text, stopped = apply_stop(gen.text, body.stop)
        finish = "stop" if stopped else gen.finish_reason
        choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish,
                                  "logprobs": None}
        if body.logprobs and gen.token_logprobs is not None:
            choice["logprobs"] = {"content": [{"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []}
                                              for t, lp in zip(gen.tokens, gen.token_logprobs)]}
        note_audit(request.scope, completion_tokens=gen.completion_tokens, latency_ms=round(1000 * (time.perf_counter() - t0), 1))
        return {"id": completion_id, "object": "chat.completion", "created": int(time.time()), "model": server.settings.model_name,
                "choices": [choice],
                "usage": {"prompt_tokens": gen.prompt_tokens, "completion_tokens": gen.completion_tokens,
                          "total_tokens": gen.prompt_tokens + gen.completion_tokens},
                "ehrforge": {"confidence": generation_confidence(gen)}}


async def sse_chat(server: Server, completion_id: str, messages: list[dict[str, str]], max_new: int, body: ChatRequest,
                   scope: dict) -> AsyncIterator[str]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return "data: " + json.dumps({"id": completion_id, "object": "chat.completion.chunk", "created": created,
                                      "model": server.settings.model_name,
                                      "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"

    yield chunk({"role": "assistant", "content": ""})
    try:
        finish = "stop"
        async for piece, finish_reason in backend_pieces(server, messages, max_new, body):
            if piece:
                yield chunk({"content": piece})
            if finish_reason:
                finish = finish_reason
        yield chunk({}, finish)
    except Overloaded as exc:
        # the 200 header is already sent: the audit line records the status the client got in-band
        note_audit(scope, error="Overloaded", stream_status=503)
        yield "data: " + json.dumps({"error": {"message": exc.reason, "type": "server_overloaded", "code": 503}}) + "\n\n"
    except Exception as exc:  # noqa: BLE001 - headers are sent; the error must travel in-band
        log.error("stream %s failed: %s", completion_id, type(exc).__name__)
        note_audit(scope, error=type(exc).__name__, stream_status=500)
        yield "data: " + json.dumps({"error": {"message": "generation failed", "type": "internal_error", "code": 500}}) + "\n\n"
    yield "data: [DONE]\n\n"


async def backend_pieces(server: Server, messages: list[dict[str, str]], max_new: int, body: ChatRequest) -> AsyncIterator[tuple[str, str | None]]:
    """Text pieces as the backend produces them (true streaming where it declares ``STREAM``)."""
    if not supports(server.backend, BackendCapability.STREAM):
        gen = await server.scheduler.generate(messages, max_new_tokens=max_new, temperature=body.temperature, seed=body.seed)
        text, stopped = apply_stop(gen.text, body.stop)
        # No incremental API: send the finished text token by token so clients parse it the same way.
        pieces = gen.tokens if "".join(gen.tokens).strip() == gen.text and not stopped else [text]
        for piece in pieces:
            yield piece, None
        yield "", "stop" if stopped else gen.finish_reason
        return
    stream_fn = server.backend.generate_stream
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancelled = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for piece in stream_fn(messages, max_new_tokens=max_new, temperature=body.temperature, seed=body.seed):
                if cancelled.is_set():
                    break  # the client left: stop spending model time on it
                loop.call_soon_threadsafe(queue.put_nowait, piece)
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, done)

    job = asyncio.ensure_future(server.scheduler.call(produce))
    emitted = ""
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, job}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                job.result()  # raises Overloaded or the backend's error
                continue
            piece = getter.result()
            if piece is done:
                break
            emitted += piece
            cut, stopped = apply_stop(emitted, body.stop)
            if stopped:
                yield cut[len(emitted) - len(piece):], "stop"
                return
            yield piece, None
        await job
        yield "", "stop"
    finally:
        cancelled.set()
