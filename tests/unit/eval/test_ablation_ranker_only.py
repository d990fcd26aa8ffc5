"""`ablation --variant ranker` retrains only the ranker on the best full run in OUT."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from newsrec.data import load_dataset
from newsrec.embed.store import EmbeddingTable, save_embeddings
from newsrec.eval.ablation import AblationConfig, run_ablation

torch.set_num_threads(1)


def _random_embeddings(data: Path, out: Path) -> Path:
    splits = load_dataset(data)
    ids = sorted({n for s in splits.values() for n in s.news})
    vectors = np.random.default_rng(0).normal(size=(len(ids), 16)).astype(np.float32)
    save_embeddings(out, EmbeddingTable(ids, vectors, {}))
    return out


@pytest.mark.slow
def test_ranker_variant_reuses_the_towers_already_in_out(tiny_mind: Path, tmp_path: Path) -> None:
    emb = _random_embeddings(tiny_mind, tmp_path / "emb")
    common = dict(
        data=tiny_mind, embeddings=emb, out=tmp_path / "abl", epochs=1, output_dim=16,
        max_train_impressions=600, eval_impressions=200, max_dev_impressions=100, progress=False,
    )  # fmt: skip
    with pytest.raises(ValueError, match="no full-model run"):
        run_ablation(AblationConfig(**common, variants=("ranker",)))  # type: ignore[arg-type]
    first = run_ablation(AblationConfig(**common, variants=("id", "id+llm+gnn")))  # type: ignore[arg-type]
    towers = tmp_path / "abl/runs/id+llm+gnn/serving"
    tower_bytes = {p.name: p.read_bytes() for p in towers.glob("*tower*")}
    again = run_ablation(AblationConfig(**common, variants=("ranker",)))  # type: ignore[arg-type]
    names = [r["name"] for r in again["runs"]]
    assert names.count("ranker") == 1 and {"id", "id+llm+gnn", "popularity"} <= set(names)
    auc_of = [{r["name"]: r["auc"] for r in res["runs"]} for res in (first, again)]
    assert auc_of[0]["id"] == auc_of[1]["id"]  # the tower rows are kept, not retrained
    assert tower_bytes and {p.name: p.read_bytes() for p in towers.glob("*tower*")} == tower_bytes
    json.loads((tmp_path / "abl/ablation.json").read_text(), parse_constant=lambda c: pytest.fail(c))
