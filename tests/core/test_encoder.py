"""The bundled sentence encoder: real MiniLM weights from the installed package, unit vectors, same meaning close."""

import numpy as np
import pytest

from ehrforge.core.encoder import SentenceEncoder, bundled_encoder_path, resolve_encoder_path
from ehrforge.errors import ModelError


def test_embeddings_are_unit_vectors_and_put_paraphrases_closest():
    enc = SentenceEncoder()
    vecs = enc.embed(["how many patients were admitted", "count the admitted patients", "the weather is sunny"])
    assert vecs.shape == (3, enc.model.config.hidden_size) and vecs.dtype == np.float32
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.2
    assert enc.embed([]).shape == (0, enc.model.config.hidden_size)


def test_batches_do_not_change_an_embedding():
    enc = SentenceEncoder(batch_size=2)
    texts = ["a short one", "a much longer sentence that pads the others in its batch", "third"]
    one_by_one = np.concatenate([enc.embed([t]) for t in texts])
    assert np.allclose(enc.embed(texts), one_by_one, atol=1e-5)


def test_aliases_mean_the_bundled_folder_and_a_bad_folder_says_what_to_pass(tmp_path):
    assert resolve_encoder_path(None) == resolve_encoder_path("minilm") == bundled_encoder_path()
    with pytest.raises(ModelError, match="not an encoder model folder"):
        resolve_encoder_path(tmp_path)
