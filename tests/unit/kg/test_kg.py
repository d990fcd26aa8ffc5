"""Graph construction, normalised adjacency, save/load, GNN shapes and inductive KG vectors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from newsrec.data.types import Entity, NewsArticle
from newsrec.errors import DataError
from newsrec.kg.gnn import EntityAggregator, EntityGNN
from newsrec.kg.graph import KGConfig, build_graph, load_graph, save_graph

torch.set_num_threads(1)


def art(nid: str, *ents: str) -> NewsArticle:
    return NewsArticle(nid, "news", "sub", "t", "a", title_entities=[Entity(e) for e in ents])


ARTICLES = [art("N1", "Q1", "Q2"), art("N2", "Q2", "Q3"), art("N3", "Q1", "Q2"), art("N4")]


def test_cooccurrence_edges_and_weights() -> None:
    g = build_graph(ARTICLES)
    assert g.entity_ids == ["Q1", "Q2", "Q3"]
    pairs = {(int(a), int(b)): float(w) for a, b, w in zip(g.edges[0], g.edges[1], g.weights, strict=True)}
    assert pairs[(0, 1)] == 2.0 and pairs[(1, 0)] == 2.0  # Q1-Q2 in two articles
    assert pairs[(1, 2)] == 1.0
    assert (0, 2) not in pairs
    assert g.news_entities["N4"] == []


def test_frequency_cutoffs_drop_hubs_and_vectorless_singletons() -> None:
    """A hub entity (in more articles than the cut-off) and an entity of one article with
    no .vec row are dropped before the per-article cap, so the cap keeps real entities."""
    arts = [art(f"N{i}", "HUB", f"Q{i % 3}", "RARE" if i == 0 else f"Q{i % 3}") for i in range(10)]
    cfg = KGConfig(max_entity_share=0.5, min_hub_articles=1, max_entities_per_article=1)
    cfg = cfg.model_copy(update={"min_entity_articles": 2})
    g = build_graph(arts, config=cfg)
    assert set(g.entity_ids) == {"Q0", "Q1", "Q2"}
    assert g.news_entities["N0"] == ["Q0"] and g.news_entities["N4"] == ["Q1"]
    # With a .vec row the single-article entity carries information and stays.
    wide = cfg.model_copy(update={"max_entities_per_article": 3})
    g = build_graph(arts, {"RARE": np.ones(4, dtype=np.float32)}, wide)
    assert "RARE" in g.entity_ids and "HUB" not in g.entity_ids
    # Below the floor of articles nothing is a hub.
    assert "HUB" in build_graph(arts, config=KGConfig(min_hub_articles=50)).entity_ids


def test_normalized_adjacency_is_symmetric_gcn() -> None:
    adj = build_graph(ARTICLES).normalized_adjacency().to_dense()
    assert torch.allclose(adj, adj.T)
    # D^-1/2 (A+I) D^-1/2 with degrees Q1: 1+2=3, Q2: 2+1+1=4
    assert adj[0, 1].item() == pytest.approx(2 / np.sqrt(3 * 4))
    assert adj[0, 0].item() == pytest.approx(1 / 3)


def test_save_load_round_trip(tmp_path: Path) -> None:
    vecs = {"Q1": np.ones(4, dtype=np.float32)}
    g = build_graph(ARTICLES, vecs)
    save_graph(g, tmp_path)
    g2 = load_graph(tmp_path)
    assert g2.entity_ids == g.entity_ids and g2.news_entities == g.news_entities
    assert np.array_equal(g2.edges, g.edges) and np.array_equal(g2.has_vector, [True, False, False])
    assert g2.entity_vectors is not None and np.array_equal(g2.entity_vectors[0], np.ones(4))
    with pytest.raises(DataError, match="nowhere.*missing"):
        load_graph(tmp_path / "nowhere")


@pytest.mark.parametrize("with_vec", [True, False])
def test_gnn_shapes_and_missing_entities(with_vec: bool) -> None:
    g = build_graph(ARTICLES, {"Q1": np.ones(6, dtype=np.float32)} if with_vec else None)
    gnn = EntityGNN(g, dim=8, layers=2)
    out = gnn()
    assert out.shape == (3, 8)
    out.sum().backward()
    assert gnn.missing_vector.grad is not None and gnn.missing_vector.grad.abs().sum() > 0


@pytest.mark.parametrize("mode", ["mean", "attention"])
def test_inductive_article_vectors(mode: str) -> None:
    torch.manual_seed(0)
    table = torch.randn(3, 8)
    agg = EntityAggregator(8, mode)
    # a brand-new article with known entities 0 and 2; one with none
    out = agg(table, torch.tensor([[0, 2, -1], [-1, -1, -1], [1, -1, -1]]))
    assert out.shape == (3, 8)
    assert torch.allclose(out[1], agg.no_entity)
    assert torch.allclose(out[2], table[1])
    if mode == "mean":
        assert torch.allclose(out[0], (table[0] + table[2]) / 2)
    assert not torch.allclose(out[0], agg.no_entity)


def test_frozen_vec_rows_get_no_gradient() -> None:
    """freeze_vectors: entity_embedding.vec rows stay as read; entities without a row learn."""
    g = build_graph(ARTICLES, {"Q1": np.ones(6, dtype=np.float32)})
    for freeze in (True, False):
        gnn = EntityGNN(g, dim=8, layers=1, freeze_vectors=freeze)
        gnn().pow(2).sum().backward()
        grad = gnn.features.grad
        assert grad is not None
        assert (grad[0].abs().sum() == 0) == freeze  # Q1 has a .vec row
        assert grad[1:].abs().sum() > 0
