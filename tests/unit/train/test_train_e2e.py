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
                 "ranker.safetensors", "coclick.safetensors", "recency.safetensors", "als.safetensors",
                 "text_vectors.npy"):  # fmt: skip
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
    assert {"two_tower", "ranker", "popularity", "item_knn", "recency_popularity"} <= set(m["scorers"])
    tt = m["scorers"]["two_tower"]
    assert tt["impressions"] + tt["skipped"] == 150
    assert tt["auc"] > 0.55 and tt["auc"] > m["scorers"]["popularity"]["auc"]
    assert m["scorers"]["popularity"]["cold_unclicked"]["auc"] == pytest.approx(0.5)  # no clicks in train
    w = m["modality_weights"]
    # residual fusion (the default): ID is the base with weight 1, content gates in [0, 1]
    # (the held-out calibration may have shut a content modality; then the run says which)
    shut = json.loads((run / "serving" / "config.json").read_text())["gate_calibration"].get("shut", {})
    assert w["modalities"] == [m for m in ("id", "llm", "gnn") if m not in shut] and w["fusion"] == "residual"
    assert w["all"][0] == pytest.approx(1.0) and all(0.0 <= g <= 1.0 for g in w["all"][1:])
    assert (tmp_path / "report.md").is_file() and (tmp_path / "auc_slices.png").is_file()
    assert "recall50" in m["retrieval"]
    assert m["comparison"]["best_baseline"] in m["scorers"] and "ranker" in m["comparison"]["pairs"]


def _reject(c: str) -> None:
    raise ValueError(f"non-strict JSON constant {c}")


def test_slice_counts_and_strict_metrics_json(run: Path, toy: tuple[Path, Path], tmp_path: Path) -> None:
    evaluate_run(EvalConfig(run=run, data=toy[0], out=tmp_path, progress=False))
    m = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=_reject)
    splits = load_dataset(toy[0])
    train_news = set(splits["train"].news)
    clicked = {
        c for imp in splits["train"].impressions for c, y in zip(imp.candidates, imp.labels, strict=True) if y
    }

    def count(warm: set[str]) -> int:
        n = 0
        for imp in splits["dev"].impressions:
            ys = [y for c, y in zip(imp.candidates, imp.labels, strict=True) if c not in warm]
            n += 0 < sum(ys) < len(ys)
        return n

    for name in ("two_tower", "popularity", "item_knn"):
        s = m["scorers"][name]
        assert s["cold_new"]["impressions"] == count(train_news)
        assert s["cold_unclicked"]["impressions"] == count(clicked)
        for sl in ("cold_new", "cold_unclicked", "empty_history"):
            assert (s[sl]["auc"] is None) == (s[sl]["impressions"] == 0)
    assert m["slice_impressions"]["cold_unclicked"] == count(clicked)


def test_ranker_serving_features_equal_training_features(run: Path, toy: tuple[Path, Path]) -> None:
    from newsrec.models.ranker import FEATURES, numpy_mlp, ranker_features
    from newsrec.train.prepare import split_impressions
    from newsrec.train.ranker import encode_impressions, feature_matrix

    model = load_serving(run / "serving")
    t = model.table
    assert t.coclick is not None and t.recency is not None and t.text is not None and t.als is not None
    splits = load_dataset(toy[0])
    everything = split_impressions(splits, None, 0.0, None, 0).train
    enc = list(encode_impressions(model, splits["dev"].impressions[:40]))
    # training rebuilds the impression-derived state from impressions; serving loads it
    x_train, _ = feature_matrix(model, enc, everything)
    x_serve = np.concatenate([ranker_features(t, e.user, e.hist, e.cands, e.time) for e in enc])
    assert np.allclose(x_train, x_serve, atol=1e-4)
    col = {n: i for i, n in enumerate(FEATURES)}
    for name in ("knn_mean", "mf", "mf_max", "als", "rank_als", "text_max", "log_recency_pop", "rank_knn"):
        assert x_serve[:, col[name]].std() > 0, name
    e = enc[0]
    assert model.ranker is not None
    want = numpy_mlp(model.ranker, ranker_features(t, e.user, e.hist, e.cands, e.time))
    assert np.allclose(model.score_rows(e.user, e.hist, e.cands, e.time), want, atol=1e-5)


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
