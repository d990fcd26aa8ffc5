"""Write the `serving/` artifact of a run (no pickle: safetensors, JSON, npy).

Layout (see docs/models.md):
    config.json            format, model_version, dim, model config, modalities, data_clock, ranker
    towers.safetensors     news tower (unknown-id row only) + user tower weights
    news_ids.json          ids, row order of the .npy files below
    news_vectors.npy       (N, dim) float32 news-tower output
    modality_weights.npy   (N, M) fusion weights (attention/gate fusion only)
    entity_ids.json        KG entity vocabulary (GNN models only)
    entity_vectors.npy     (E, dim) GNN entity vectors (GNN models only)
    news_meta.json         per-article category, subcategory, title, entities, first_seen (epoch s),
                           known (titles let the services show news without MIND files)
    popularity.npy         (N,) float32 train click counts
    text_vectors.npy       (N, d_text) float16 unit raw text vectors (when the run has embeddings)
    coclick.safetensors    co-click CSR (+ factors) of the train impressions (after train_ranker)
    recency.safetensors    clicks decayed to the latest train click (after train_ranker)
    ranker.safetensors     ranker MLP (after train_ranker); config.json["ranker"] describes it
    manifest.json          sha256 + size of every other file (written last; verified at load)

Any other file written before sealing (e.g. new feature arrays) is covered by the manifest
and ignored by loaders that do not know it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from newsrec.atomic import StagedDir, seal
from newsrec.kg.graph import KnowledgeGraph
from newsrec.models.artifact import SERVING_KIND
from newsrec.models.features import NewsFeatures
from newsrec.models.two_tower import FeatureTensors, TwoTower, all_news_vectors

# 2: the directory is sealed by manifest.json (sha256 and size of every file), which
# `load_serving` verifies; an artifact without one is refused as partial.
FORMAT_VERSION = 2


def tower_state(model: TwoTower) -> dict[str, torch.Tensor]:
    """Serving weights: news + user towers; the ID table shrinks to the unknown row
    (known articles have precomputed vectors) and the GNN is replaced by its output."""
    state: dict[str, torch.Tensor] = {}
    for k, v in model.news.state_dict().items():
        state["news." + k] = v[:1].clone() if k == "id_emb.weight" else v.clone()
    for k, v in model.user.state_dict().items():
        state["user." + k] = v.clone()
    return {k: v.detach().float().contiguous() for k, v in state.items()}


def seal_serving(directory: Path) -> None:
    """Write the manifest (sha256 + size of every file) that `load_serving` verifies.
    Call it after the last file is written: later code's files are covered without edits."""
    seal(directory, SERVING_KIND, FORMAT_VERSION)


def export_serving(
    model: TwoTower,
    feats: NewsFeatures,
    graph: KnowledgeGraph | None,  # entity ids of the metadata; vectors only when the model has a GNN
    out_dir: Path,
    model_version: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write and seal `out_dir` atomically: built in a hidden sibling, swapped in when complete."""
    with StagedDir(out_dir) as stage:
        _write_serving(model, feats, graph, stage.path, model_version, extra)
        seal_serving(stage.path)
        stage.commit()
    return out_dir


def _write_serving(
    model: TwoTower,
    feats: NewsFeatures,
    graph: KnowledgeGraph | None,
    out_dir: Path,
    model_version: str,
    extra: dict[str, Any] | None,
) -> None:
    ft = FeatureTensors(feats)
    vecs, weights = all_news_vectors(model, ft)
    cfg = model.cfg.model_copy(update={"num_id_rows": 1})
    save_file(tower_state(model), str(out_dir / "towers.safetensors"))
    np.save(
        out_dir / "news_vectors.npy", np.ascontiguousarray(vecs[1:], dtype=np.float32), allow_pickle=False
    )
    if weights is not None:
        np.save(out_dir / "modality_weights.npy", weights[1:].astype(np.float32), allow_pickle=False)
    if model.gnn is not None and graph is not None:
        with torch.inference_mode():
            model.eval()
            table = model.gnn().float().numpy()
        np.save(out_dir / "entity_vectors.npy", table[: graph.num_entities], allow_pickle=False)
        (out_dir / "entity_ids.json").write_text(json.dumps(graph.entity_ids))
    (out_dir / "news_ids.json").write_text(json.dumps(feats.ids[1:]))
    ent_ids = graph.entity_ids if graph is not None else []
    meta = {
        "category": [feats.categories[c] for c in feats.category[1:]],
        "entities": [[ent_ids[e] for e in row if e >= 0] for row in feats.ent_idx[1:]],
        "first_seen": [None if math.isnan(t) else float(t) for t in feats.first_seen[1:]],
        "known": [bool(k) for k in feats.known[1:]],
        # Empty when the features carry no display metadata (older callers).
        "title": list(feats.titles[1:]) if feats.titles else [""] * (len(feats.ids) - 1),
        "subcategory": list(feats.subcategories[1:]) if feats.subcategories else [""] * (len(feats.ids) - 1),
    }
    (out_dir / "news_meta.json").write_text(json.dumps(meta))
    np.save(out_dir / "popularity.npy", feats.popularity[1:].astype(np.float32), allow_pickle=False)
    if feats.text.shape[1] > 1 and feats.text.any():  # text-kNN features of the ranker
        text = feats.text[1:].astype(np.float32)
        text /= np.maximum(np.linalg.norm(text, axis=1, keepdims=True), 1e-12)
        np.save(out_dir / "text_vectors.npy", text.astype(np.float16), allow_pickle=False)
    seen = feats.first_seen[~np.isnan(feats.first_seen)]
    config = {
        "format": FORMAT_VERSION,
        "model_version": model_version,
        "dim": cfg.output_dim,
        "model": cfg.model_dump(mode="json"),
        "modalities": cfg.modalities(),
        "data_clock": float(seen.max()) if len(seen) else None,
        "ranker": None,
        **(extra or {}),
    }
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))
