"""`ServingModel` implementation over a `serving/` directory (numpy hot path).

`encode_user` and `rank` are numpy only (no autograd, no thread pool), so one
request costs well under a millisecond plus the feature work; `encode_news` runs
the torch news tower once for a cold-start article.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from datetime import datetime
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import load_file
from threadpoolctl import threadpool_limits

from newsrec.atomic import is_sealed, verify
from newsrec.data.types import NewsArticle
from newsrec.errors import DataError, InvalidInput
from newsrec.linalg import matmul
from newsrec.models.als import ALSModel
from newsrec.models.cooc import CoClick, RecencyState
from newsrec.models.ranker import FEATURES, NewsTable, extend_table, numpy_mlp, ranker_features, unit_rows
from newsrec.models.towers import ModelConfig, NewsTower

TEXT_VECTORS = "text_vectors.npy"
COCLICK = "coclick.safetensors"
RECENCY = "recency.safetensors"
ALS = "als.safetensors"
REQUIRED = ("config.json", "towers.safetensors", "news_ids.json", "news_vectors.npy", "news_meta.json")
SERVING_KIND = "serving"


def verify_serving(directory: str | Path) -> None:
    """Recompute the manifest of a serving dir (written by `export.seal_serving`); DataError
    names the first file of a partial, mixed, or hand-edited artifact."""
    d = Path(directory)
    if not d.is_dir():
        raise DataError(f"{d}: serving directory not found")
    if not is_sealed(d):
        from newsrec.registry import verify_artifact_dir

        if verify_artifact_dir(d):  # published before serving dirs were sealed: the registry's sums
            return
    verify(d, SERVING_KIND)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: unreadable JSON ({exc})") from exc


class ArtifactModel:
    """Loaded serving artifact; satisfies `newsrec.models.serving.ServingModel`."""

    def __init__(self, directory: str | Path, with_ranker: bool = True) -> None:
        d = Path(directory)
        verify_serving(d)  # before reading anything: never load a mix of two runs
        for name in REQUIRED:
            if not (d / name).is_file():
                raise DataError(f"{d / name}: missing (not a serving directory?)")
        self.directory = d
        self.config = _read_json(d / "config.json")
        self.model_version: str = self.config["model_version"]
        self.dim: int = int(self.config["dim"])
        self.model_config = ModelConfig.model_validate(self.config["model"])
        self._ids: list[str] = list(_read_json(d / "news_ids.json"))
        vectors = np.load(d / "news_vectors.npy", allow_pickle=False).astype(np.float32)
        meta = _read_json(d / "news_meta.json")
        self._row = {n: i for i, n in enumerate(self._ids)}
        if (d / "entity_ids.json").is_file():
            self.entity_ids: list[str] = list(_read_json(d / "entity_ids.json"))
            self.entity_vectors = np.load(d / "entity_vectors.npy", allow_pickle=False).astype(np.float32)
        else:
            self.entity_ids = sorted({e for ents in meta["entities"] for e in ents})
            self.entity_vectors = np.zeros((len(self.entity_ids), self.dim), dtype=np.float32)
        self._ent_row = {e: i for i, e in enumerate(self.entity_ids)}
        self.categories: list[str] = sorted(set(meta["category"]))
        n_meta = len(meta["category"])
        # Display metadata; absent from artifacts exported before it was added.
        self._titles: list[str] = [str(t) for t in meta.get("title") or [""] * n_meta]
        self._subcategories: list[str] = [str(t) for t in meta.get("subcategory") or [""] * n_meta]
        if not len(self._titles) == len(self._subcategories) == n_meta == len(self._ids):
            raise DataError(f"{d / 'news_meta.json'}: per-article lists differ in length from news_ids.json")
        self._cat_row = {c: i for i, c in enumerate(self.categories)}
        m = self.model_config.max_entities_per_article
        n = len(self._ids)
        self.table = NewsTable(
            vectors=vectors,
            category=np.array([self._cat_row[c] for c in meta["category"]], dtype=np.int64),
            ent_idx=np.array(
                [self._entity_rows(ents, m) for ents in meta["entities"]], dtype=np.int64
            ).reshape(n, m),
            popularity=np.load(d / "popularity.npy", allow_pickle=False).astype(np.float32),
            first_seen=np.array([np.nan if t is None else t for t in meta["first_seen"]], dtype=np.float64),
            known=np.array(meta["known"], dtype=bool),
            **_collaborative_arrays(d),
        )
        self._weights_path = d / "modality_weights.npy"
        self.data_clock: float | None = self.config.get("data_clock")
        tower = load_file(str(d / "towers.safetensors"))
        self._user = {k[len("user.") :]: v for k, v in tower.items() if k.startswith("user.")}
        self._news_state = {k[len("news.") :]: v for k, v in tower.items() if k.startswith("news.")}
        self._news_tower: NewsTower | None = None
        self._add_lock = threading.Lock()
        self.ranker: dict[str, np.ndarray] | None = None
        # `with_ranker=False`: ranker training replaces the old one, which may read other FEATURES
        if with_ranker and self.config.get("ranker") and (d / "ranker.safetensors").is_file():
            if list(self.config["ranker"]["features"]) != list(FEATURES):
                raise DataError(f"{d / 'config.json'}: ranker features differ from this code's FEATURES")
            self.ranker = load_file(str(d / "ranker.safetensors"))

    # --- protocol -------------------------------------------------------------------
    def news_ids(self) -> list[str]:
        return list(self._ids)

    def news_vectors(self) -> np.ndarray:
        return self.table.vectors

    def encode_user(self, history: Sequence[str]) -> tuple[np.ndarray, int]:
        rows = self._rows_of(history)
        known = rows[rows >= 0]
        return self.encode_user_rows(known[-self.model_config.max_history :]), len(rows) - len(known)

    def rank(
        self,
        user_vector: np.ndarray,
        history: Sequence[str],
        candidates: Sequence[str],
        now: datetime | float | None = None,
    ) -> np.ndarray:
        """Ranker scores; without a trained ranker, the two-tower dot product. `now` is the
        request time for freshness (default: the artifact's data clock, the latest
        first-seen time in its data). Unknown candidates get a zero vector and no metadata."""
        hist = self._rows_of(history)
        hist = hist[hist >= 0][-self.model_config.max_history :]
        cands = self._rows_of(candidates)
        ts = now.timestamp() if isinstance(now, datetime) else now
        return self.score_rows(np.asarray(user_vector, dtype=np.float32), hist, cands, ts)

    def encode_news(self, article: NewsArticle, text_vector: np.ndarray) -> np.ndarray:
        tower = self._tower()
        cfg = self.model_config
        text = torch.from_numpy(np.asarray(text_vector, dtype=np.float32).reshape(1, -1))
        if cfg.use_llm and text.shape[1] != cfg.text_dim:
            raise InvalidInput(f"text vector has dim {text.shape[1]}, model expects {cfg.text_dim}")
        ent = torch.tensor([self._entity_rows(article.entity_ids(), cfg.max_entities_per_article)])
        with torch.inference_mode():
            vec, _ = tower(torch.zeros(1, dtype=torch.long), text, ent, torch.from_numpy(self.entity_vectors))
        return vec[0].numpy().astype(np.float32)

    # --- extensions -----------------------------------------------------------------
    def add_news(
        self,
        article: NewsArticle,
        vector: np.ndarray,
        first_seen: datetime | None = None,
        text_vector: np.ndarray | None = None,
    ) -> None:
        """Make a cold-start article rankable from its content: vector (usually from
        `encode_news`), category, entities, first-seen time and raw text vector (the ranker's
        text-kNN features; without it they read 0). Its row is published last, so a
        concurrent `rank` sees either no row or a complete one; writers take turns (the
        table's arrays grow in place, `extend_table`)."""
        with self._add_lock:
            self._add_news(article, vector, first_seen, text_vector)

    def _add_news(
        self,
        article: NewsArticle,
        vector: np.ndarray,
        first_seen: datetime | None,
        text_vector: np.ndarray | None,
    ) -> None:
        m = self.model_config.max_entities_per_article
        row = self._row.get(article.news_id)
        t = self.table
        cat = self._cat_row.get(article.category, -1)
        fs = np.nan if first_seen is None else first_seen.timestamp()
        ents = np.array(self._entity_rows(article.entity_ids(), m), dtype=np.int64)
        vec = np.asarray(vector, dtype=np.float32).reshape(1, -1)
        text = None if text_vector is None else np.asarray(text_vector, dtype=np.float32).reshape(1, -1)
        if row is not None:
            t.vectors[row], t.category[row], t.ent_idx[row], t.first_seen[row] = vec[0], cat, ents, fs
            if (
                t.text is not None
                and text is not None
                and row < len(t.text)
                and text.shape[1] == t.text.shape[1]
            ):
                t.text[row] = unit_rows(text)[0]
            self._titles[row], self._subcategories[row] = article.title, article.subcategory
            return
        extend_table(t, vec, np.array([cat]), ents[None, :], np.array([fs]), text)
        self._titles.append(article.title)
        self._subcategories.append(article.subcategory)
        self._ids.append(article.news_id)
        self._row[article.news_id] = len(self._ids) - 1

    def news_metadata(self, news_id: str) -> dict[str, Any] | None:
        """Title, category, subcategory, entities, train clicks, first-seen time of a known article."""
        row = self._row.get(news_id)
        if row is None:
            return None
        t = self.table
        fs = float(t.first_seen[row])
        return {
            "title": self._titles[row],
            "category": self.categories[t.category[row]] if t.category[row] >= 0 else "",
            "subcategory": self._subcategories[row],
            "entities": [self.entity_ids[e] for e in t.ent_idx[row] if e >= 0],
            "popularity": float(t.popularity[row]),
            "first_seen": None if math.isnan(fs) else fs,
            "known": bool(t.known[row]),
        }

    def modality_weights(self) -> np.ndarray | None:
        """(N, M) fusion weights of the precomputed articles, modalities in config order."""
        return np.load(self._weights_path, allow_pickle=False) if self._weights_path.is_file() else None

    def row(self, news_id: str) -> int | None:
        return self._row.get(news_id)

    def encode_user_rows(self, rows: np.ndarray) -> np.ndarray:
        """User vector from history rows (numpy port of `UserTower`)."""
        u = self._user
        if len(rows) == 0:
            v = u["empty"]
        else:
            h = self.table.vectors[rows]
            logits = np.tanh(matmul(h, u["att.0.weight"].T) + u["att.0.bias"]) @ u["att.2.weight"][0]
            w = np.exp(logits - logits.max())
            pooled = ((w / w.sum()) @ h).astype(np.float32)
            v = matmul(pooled[None, :], u["transform.weight"].T)[0] + u["transform.bias"]
        return (v / max(float(np.linalg.norm(v)), 1e-12)).astype(np.float32)

    def score_rows(
        self, user: np.ndarray, hist: np.ndarray, cands: np.ndarray, now: float | None
    ) -> np.ndarray:
        if self.ranker is None:
            valid = cands >= 0
            return matmul(self.table.vectors[np.where(valid, cands, 0)], user.astype(np.float32)) * valid
        if now is None:
            now = self.data_clock
        return numpy_mlp(self.ranker, ranker_features(self.table, user, hist, cands, now)).astype(np.float32)

    def _rows_of(self, news_ids: Sequence[str]) -> np.ndarray:
        """Table row of each id, -1 for unknown ones (a C-level map: hundreds per request)."""
        return np.fromiter(map(self._row.get, news_ids, repeat(-1)), dtype=np.int64, count=len(news_ids))

    def _entity_rows(self, entities: Sequence[str], m: int) -> list[int]:
        rows = [self._ent_row[e] for e in entities if e in self._ent_row][:m]
        return rows + [-1] * (m - len(rows))

    def _tower(self) -> NewsTower:
        if self._news_tower is None:
            tower = NewsTower(self.model_config)
            tower.load_state_dict({k: torch.from_numpy(v) for k, v in self._news_state.items()})
            self._news_tower = tower.eval()
        return self._news_tower


def _collaborative_arrays(d: Path) -> dict[str, Any]:
    """Optional ranker inputs: raw text vectors (export), co-click model, ALS model and
    recency state (written by train_ranker); artifacts without them serve those features
    as zeros."""
    out: dict[str, Any] = {}
    if (d / TEXT_VECTORS).is_file():
        # float16 on disk; float32 in memory (numpy's float16 products are ~10x slower)
        out["text"] = np.load(d / TEXT_VECTORS, allow_pickle=False).astype(np.float32)
    if (d / COCLICK).is_file():
        out["coclick"] = CoClick.load(d / COCLICK)
    if (d / ALS).is_file():
        out["als"] = ALSModel.load(d / ALS)
    if (d / RECENCY).is_file():
        r = load_file(str(d / RECENCY))
        out["recency"] = RecencyState(r["value"], float(r["ref"][0]), float(r["tau"][0]))
    return out


def load_serving(directory: str | Path, threads: int | None = 1, with_ranker: bool = True) -> ArtifactModel:
    """Load `RUN/serving/` (or a registry artifact dir) for the online services, after
    verifying every file against its manifest (a partial or edited artifact is refused).

    `threads` sets torch's intra-op threads and numpy's BLAS threads for the process (1: a
    request is a few small matrix products; more threads only add hand-off cost, and
    idle BLAS threads spin on a busy host). None leaves both."""
    if threads is not None:
        torch.set_num_threads(threads)
        threadpool_limits(threads, user_api="blas")
    return ArtifactModel(directory, with_ranker)
