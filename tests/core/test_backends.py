"""Backends: the fake queue (prompt/parse tests), the local transformers model, and a real HTTP endpoint."""

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ehrforge.core.backends import load_backend
from ehrforge.core.backends.fake import FakeBackend
from ehrforge.core.backends.openai_backend import OpenAIBackend
from ehrforge.errors import BackendError, ModelError, UnknownNameError

MSG = [{"role": "user", "content": "How many patients?"}]


def test_fake_backend_queue_and_prompts():
    fake = FakeBackend(["SELECT 1", "null"])
    gens = fake.generate([MSG, MSG])
    assert [g.text for g in gens] == ["SELECT 1", "null"]
    assert fake.prompts == [MSG, MSG]


def test_unknown_backend_kind():
    with pytest.raises(UnknownNameError, match="did you mean 'openai'"):
        load_backend("opena:http://x")


def test_backends_come_from_one_registry_and_declare_what_they_can_do():
    """Every kind a spec can name is in BACKENDS; every backend class declares its capabilities as values of
    BackendCapability, and callers read them with supports() (no hasattr probing)."""
    import importlib

    from ehrforge.core.backends import BACKEND_KINDS, BACKENDS, BackendCapability, capabilities_of, supports

    assert BACKEND_KINDS == tuple(BACKENDS) and {"transformers", "ct2", "openai", "fake"} <= set(BACKENDS)
    classes = {"transformers_backend": "TransformersBackend", "ct2_backend": "CT2Backend", "openai_backend": "OpenAIBackend",
               "llamacpp_backend": "LlamaCppBackend", "vllm_backend": "VLLMBackend", "fake": "FakeBackend"}
    for module, name in classes.items():
        cls = getattr(importlib.import_module(f"ehrforge.core.backends.{module}"), name)
        assert cls.capabilities and all(isinstance(c, BackendCapability) for c in cls.capabilities), name
    from ehrforge.core.backends.llamacpp_backend import LlamaCppBackend
    from ehrforge.core.backends.transformers_backend import TransformersBackend

    assert BackendCapability.STREAM in LlamaCppBackend.capabilities and BackendCapability.STREAM not in FakeBackend.capabilities
    assert BackendCapability.LOCAL_WEIGHTS in TransformersBackend.capabilities
    assert supports(FakeBackend(), BackendCapability.LOGPROBS) and not supports(FakeBackend(), BackendCapability.SCORE)

    class Undeclared:  # has the method, declares nothing: not treated as a streamer
        def generate_stream(self):
            yield "x"

    assert capabilities_of(Undeclared()) == frozenset()


def test_missing_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="model not found"):
        load_backend(f"transformers:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a model folder"):
        load_backend(f"transformers:{tmp_path / 'empty'}")


def test_transformers_backend_logprobs_are_a_distribution(tiny_model_dir):
    backend = load_backend(f"transformers:{tiny_model_dir}")
    gens = backend.generate([MSG, [{"role": "user", "content": "a much longer question about admissions"}]], max_new_tokens=5)
    assert len(gens) == 2
    for g in gens:
        assert len(g.token_logprobs) == len(g.tokens) == len(g.token_entropies) <= 5
        assert all(lp <= 0 for lp in g.token_logprobs)
        vocab = len(backend.tokenizer)
        assert all(0 <= e <= math.log(vocab) + 1e-4 for e in g.token_entropies)
    # Greedy decoding is deterministic and batch-independent.
    again = backend.generate([MSG], max_new_tokens=5)[0]
    assert again.tokens == gens[0].tokens


class _Handler(BaseHTTPRequestHandler):
    calls: list = []
    fail_first = 0

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Handler.calls.append({"body": body, "auth": self.headers.get("Authorization")})
        if _Handler.fail_first > 0:
            _Handler.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            return
        reply = {
            "choices": [{
                "message": {"role": "assistant", "content": "SELECT COUNT(*) FROM patients"},
                "finish_reason": "stop",
                "logprobs": {"content": [
                    {"token": "SELECT", "logprob": math.log(0.9), "top_logprobs": [{"token": "SELECT", "logprob": math.log(0.9)}]},
                    {"token": " COUNT", "logprob": math.log(0.5), "top_logprobs": [{"token": " COUNT", "logprob": math.log(0.5)}, {"token": " *", "logprob": math.log(0.5)}]},
                ]},
            }],
            "usage": {"prompt_tokens": 12},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture()
def endpoint():
    _Handler.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_openai_backend_against_a_real_http_server(endpoint, monkeypatch):
    monkeypatch.setenv("EHRFORGE_API_KEY", "sekret")
    backend = load_backend(f"openai:{endpoint}#teacher-1")
    gen = backend.generate([MSG], max_new_tokens=20, temperature=0.0)[0]
    assert gen.text == "SELECT COUNT(*) FROM patients"
    assert gen.token_logprobs == pytest.approx([math.log(0.9), math.log(0.5)])
    assert gen.token_entropies[1] == pytest.approx(math.log(2))
    call = _Handler.calls[0]
    assert call["auth"] == "Bearer sekret"
    assert call["body"]["model"] == "teacher-1" and call["body"]["logprobs"] is True


def test_openai_backend_retries_then_fails_clearly(endpoint):
    _Handler.fail_first = 1
    backend = OpenAIBackend(endpoint, max_retries=2)
    assert backend.generate([MSG])[0].text.startswith("SELECT")
    assert len(_Handler.calls) == 2
    _Handler.fail_first = 10
    with pytest.raises(BackendError, match="failed after 2 attempts"):
        OpenAIBackend(endpoint, max_retries=1).generate([MSG])
    _Handler.fail_first = 0


def test_openai_backend_unreachable():
    with pytest.raises(BackendError, match="ConnectError"):
        OpenAIBackend("http://127.0.0.1:9", max_retries=0, timeout_s=2).generate([MSG])
