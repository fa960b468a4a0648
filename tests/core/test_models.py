import pytest

from ehrforge.core.models import BUNDLED_SHA256, bundled_gguf_path, convert_gguf, resolve_model, sha256_file
from ehrforge.errors import ModelError


def test_hf_folder_resolves_to_itself(tiny_model_dir):
    assert resolve_model(str(tiny_model_dir)) == tiny_model_dir


def test_checksum_mismatch_refuses_weights(tmp_path):
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"GGUF not really")
    with pytest.raises(ModelError, match="checksum mismatch"):
        convert_gguf(fake, tmp_path / "out", expected_sha256=BUNDLED_SHA256)
    assert not (tmp_path / "out").exists()


def test_bundled_weights_are_installed_and_verified():
    path = bundled_gguf_path()
    assert sha256_file(path) == BUNDLED_SHA256


@pytest.mark.slow
def test_bundled_model_converts_once_and_generates(tmp_path, monkeypatch):
    monkeypatch.setenv("EHRFORGE_HOME", str(tmp_path))
    from ehrforge.core.backends import load_backend

    backend = load_backend("bundled")
    assert (tmp_path / "models" / "smollm2-135m-instruct" / "config.json").exists()
    gen = backend.generate([[{"role": "user", "content": "Say hello."}]], max_new_tokens=8)[0]
    assert gen.text and len(gen.token_logprobs) == len(gen.tokens)
