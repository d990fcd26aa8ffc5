"""A real-MIND-shaped root (hand-written MIND rows): train/dev/test where test has no
labels, entities missing from entity_embedding.vec, ids missing from news.tsv."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

from newsrec.embed.store import EmbeddingTable, save_embeddings
from newsrec.eval.evaluate import EvalConfig, evaluate_run
from newsrec.models import load_serving
from newsrec.models.towers import ModelConfig
from newsrec.train.config import TrainConfig
from newsrec.train.two_tower import train_two_tower

torch.set_num_threads(1)
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "mind"


def test_train_and_evaluate_on_mind_layout(tmp_path: Path) -> None:
    root = tmp_path / "mind"
    shutil.copytree(FIXTURES / "good", root / "MINDsmall_train")
    shutil.copytree(FIXTURES / "good", root / "MINDsmall_dev")
    shutil.copytree(FIXTURES / "test_split", root / "MINDsmall_test")
    ids = [line.split("\t", 1)[0] for line in (FIXTURES / "good" / "news.tsv").read_text().splitlines()]
    emb = tmp_path / "emb"
    vectors = np.random.default_rng(0).normal(size=(len(ids), 8)).astype(np.float32)
    save_embeddings(emb, EmbeddingTable(ids, vectors, {}))
    cfg = TrainConfig(
        data=root, embeddings=emb, out=tmp_path / "run", epochs=1, batch_size=4, ranker_holdout=0.0,
        model=ModelConfig(output_dim=8), progress=False,
    )  # fmt: skip
    res = train_two_tower(cfg)
    model = load_serving(res.serving_dir)
    # test-split news got vectors; an id only seen in behaviors (not in any news.tsv) too
    assert {"N53526", "N99999"} <= set(model.news_ids())  # N99999: in behaviors only
    assert model.news_metadata("N99999")["entities"] == []  # type: ignore[index]
    # Q12897 and Q3179593 are not in entity_embedding.vec: still graph entities
    assert "Q12897" in model.entity_ids and "Q3179593" in model.entity_ids
    u, unknown = model.encode_user(["N55528", "N-nowhere"])
    assert unknown == 1 and np.isfinite(model.rank(u, ["N55528"], ["N19639", "N61837"])).all()
    m = evaluate_run(EvalConfig(run=tmp_path / "run", data=root, out=tmp_path / "ev", progress=False))
    assert m["scorers"]["two_tower"]["impressions"] + m["scorers"]["two_tower"]["skipped"] == 4
    test = evaluate_run(
        EvalConfig(run=tmp_path / "run", data=root, out=tmp_path / "ev2", split="test", progress=False)
    )
    assert test["impressions"] == 0  # no labels: nothing to score, and no crash
