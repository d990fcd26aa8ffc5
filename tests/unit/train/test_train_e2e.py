"""Tiny end-to-end: toy dataset -> towers -> ranker -> evaluate -> serving artifact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from newsrec.data import load_dataset
from newsrec.eval.evaluate import EvalConfig, evaluate_run
from newsrec.eval.metrics import auc
from newsrec.models import load_serving
from newsrec.models.towers import ModelConfig
from newsrec.train.config import RankerConfig, TrainConfig
from newsrec.train.ranker import train_ranker
from newsrec.train.toy import write_toy_dataset
from newsrec.train.two_tower import train_two_tower

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return write_toy_dataset(tmp_path_factory.mktemp("toy"))


def cfg(data: Path, emb: Path, out: Path, **kw: object) -> TrainConfig:
    base: dict[str, object] = {
        "data": data,
        "embeddings": emb,
        "out": out,
        "batch_size": 64,
        "progress": False,
        # The toy set has no popularity skew, so the logQ correction only adds noise
        # there; the determinism test turns it back on.
        "logq": False,
    }
    base.update(kw)
    return TrainConfig.model_validate(base)


@pytest.fixture(scope="module")
def run(toy: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    data, emb = toy
    out = tmp_path_factory.mktemp("run") / "full"
    train_two_tower(cfg(data, emb, out, epochs=6, lr=5e-3, model=ModelConfig(output_dim=32)))
    train_ranker(RankerConfig(run=out, data=data, epochs=4))
    return out


def test_learns_on_train_data(run: Path, toy: tuple[Path, Path]) -> None:
    model = load_serving(run / "serving")
    model.ranker = None  # the two-tower score alone
    aucs = []
    for imp in load_dataset(toy[0])["train"].impressions[:200]:
        if 0 < sum(imp.labels) < len(imp.labels):
            u, _ = model.encode_user(imp.history)
            aucs.append(auc(np.array(imp.labels), model.rank(u, imp.history, imp.candidates)))
    assert np.mean(aucs) > 0.65


def test_run_layout_and_checkpoint_round_trip(run: Path, toy: tuple[Path, Path]) -> None:
    for name in (
        "checkpoints/best.safetensors",
        "checkpoints/last.safetensors",
        "metrics.jsonl",
        "metrics.csv",
    ):
        assert (run / name).is_file(), name
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, len(rows) + 1))
    state = load_file(str(run / "checkpoints" / "best.safetensors"))
    torch.save(state, run / "copy.pt")
    again = torch.load(run / "copy.pt", weights_only=True)
    assert state.keys() == again.keys() and all(torch.equal(state[k], again[k]) for k in state)
    serving = run / "serving"
    for name in ("config.json", "towers.safetensors", "news_ids.json", "news_vectors.npy", "news_meta.json",
                 "popularity.npy", "entity_ids.json", "entity_vectors.npy", "modality_weights.npy",
                 "ranker.safetensors"):  # fmt: skip
        assert (serving / name).is_file(), name
    assert not list(serving.glob("*.pkl"))


def test_load_serving_sets_one_blas_thread(run: Path) -> None:
    # numpy's BLAS threads spin on the request path's small products on a busy host
    from threadpoolctl import threadpool_info, threadpool_limits

    threadpool_limits(2, user_api="blas")
    load_serving(run / "serving")
    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert blas and all(lib["num_threads"] == 1 for lib in blas)


def test_serving_matches_training_tower(run: Path, toy: tuple[Path, Path]) -> None:
    model = load_serving(run / "serving")
    assert model.news_vectors().shape == (len(model.news_ids()), model.dim)
    # a cold (dev-only) article: encode_news from text + entities reproduces its precomputed vector
    dev_news = load_dataset(toy[0])["dev"].news
    table = np.load(toy[1] / "vectors.npy")
    ids = json.loads((toy[1] / "ids.json").read_text())
    cold = [n for n in model.news_ids() if not model.news_metadata(n)["known"] and n in dev_news]  # type: ignore[index]
    assert cold
    nid = cold[0]
    vec = model.encode_news(dev_news[nid], table[ids.index(nid)])
    assert np.allclose(vec, model.news_vectors()[model.row(nid)], atol=1e-4)  # type: ignore[index]
    # unknown history ids are skipped and counted; rank scores every candidate once
    u, unknown = model.encode_user(["N0_0", "nope", "N1_1"])
    assert unknown == 1 and u.shape == (model.dim,) and abs(np.linalg.norm(u) - 1) < 1e-5
    scores = model.rank(u, ["N0_0"], ["N0_1", "N2_2", "nope"])
    assert scores.shape == (3,) and np.isfinite(scores).all()
    # a new article can be added and ranked
    art = dev_news[nid]
    art2 = type(art)(
        "NEW1", art.category, art.subcategory, art.title, art.abstract, "", art.title_entities, []
    )
    model.add_news(art2, vec)
    assert model.news_metadata("NEW1")["category"] == art.category  # type: ignore[index]
    s2 = model.rank(u, ["N0_0"], ["NEW1", nid])
    assert s2.shape == (2,)


def test_evaluate_report(run: Path, toy: tuple[Path, Path], tmp_path: Path) -> None:
    m = evaluate_run(EvalConfig(run=run, data=toy[0], out=tmp_path, progress=False))
    assert set(m["scorers"]) == {"two_tower", "ranker", "popularity"}
    tt = m["scorers"]["two_tower"]
    assert tt["impressions"] + tt["skipped"] == 150
    assert tt["auc"] > 0.55 and tt["auc"] > m["scorers"]["popularity"]["auc"]
    assert m["scorers"]["popularity"]["cold"]["auc"] == pytest.approx(0.5)  # no clicks in train
    w = m["modality_weights"]
    # residual fusion (the default): ID is the base with weight 1, content gates in [0, 1]
    assert w["modalities"] == ["id", "llm", "gnn"] and w["fusion"] == "residual"
    assert w["all"][0] == pytest.approx(1.0) and all(0.0 <= g <= 1.0 for g in w["all"][1:])
    assert (tmp_path / "report.md").is_file() and (tmp_path / "auc_slices.png").is_file()
    assert "recall50" in m["retrieval"]


def test_deterministic_for_a_seed(toy: tuple[Path, Path], tmp_path: Path) -> None:
    data, emb = toy
    small = {
        "epochs": 1,
        "max_train_impressions": 200,
        "logq": True,
        "model": ModelConfig(output_dim=16, gnn_layers=1),
    }
    a = train_two_tower(cfg(data, emb, tmp_path / "a", **small))
    b = train_two_tower(cfg(data, emb, tmp_path / "b", **small))
    assert a.history[0]["loss"] == b.history[0]["loss"]
    assert np.array_equal(
        np.load(a.serving_dir / "news_vectors.npy"), np.load(b.serving_dir / "news_vectors.npy")
    )
    c = train_two_tower(cfg(data, emb, tmp_path / "c", seed=1, **small))
    assert c.history[0]["loss"] != a.history[0]["loss"]


def test_id_only_model_exports_entities_for_the_ranker(toy: tuple[Path, Path], tmp_path: Path) -> None:
    data, emb = toy
    model_cfg = ModelConfig(output_dim=16, use_llm=False, use_gnn=False)
    res = train_two_tower(
        cfg(data, emb, tmp_path / "id", epochs=1, max_train_impressions=100, model=model_cfg)
    )
    assert not (res.serving_dir / "entity_vectors.npy").exists()
    model = load_serving(res.serving_dir)
    assert model.news_metadata("N0_0")["entities"]  # type: ignore[index]
    assert model.modality_weights() is not None and np.allclose(model.modality_weights(), 1.0)  # type: ignore[arg-type]
