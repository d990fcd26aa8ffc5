"""The two-tower model: optional entity GNN + news tower + user tower."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from newsrec.kg.gnn import EntityGNN
from newsrec.kg.graph import KnowledgeGraph
from newsrec.models.features import NewsFeatures
from newsrec.models.towers import ModelConfig, NewsTower, UserTower


class FeatureTensors:
    """Torch views of `NewsFeatures` used as tower inputs."""

    def __init__(self, feats: NewsFeatures, device: torch.device | str = "cpu") -> None:
        self.id_rows = torch.from_numpy(feats.id_rows).to(device)
        self.text = torch.from_numpy(feats.text).to(device)
        self.ent_idx = torch.from_numpy(feats.ent_idx).to(device)


class TwoTower(nn.Module):
    def __init__(self, cfg: ModelConfig, graph: KnowledgeGraph | None) -> None:
        super().__init__()
        self.cfg = cfg
        self.gnn = (
            EntityGNN(graph, cfg.output_dim, cfg.gnn_layers, freeze_vectors=cfg.gnn_freeze_vectors)
            if cfg.use_gnn and graph
            else None
        )
        if cfg.use_gnn and graph is None:
            raise ValueError("use_gnn needs a knowledge graph")
        self.news = NewsTower(cfg)
        self.user = UserTower(cfg.output_dim)

    def entity_table(self) -> torch.Tensor | None:
        """GNN output (E, D), computed once per step and shared by all articles."""
        return self.gnn() if self.gnn is not None else None

    def encode_rows(
        self, rows: torch.Tensor, ft: FeatureTensors, entity_table: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """News vectors (and modality weights) of feature rows `rows` (any shape)."""
        flat = rows.reshape(-1)
        vec, w = self.news(ft.id_rows[flat], ft.text[flat], ft.ent_idx[flat], entity_table)
        vec = vec.reshape(*rows.shape, -1)
        return vec, None if w is None else w.reshape(*rows.shape, -1)

    def encode_users(self, hist_vecs: torch.Tensor, hist_mask: torch.Tensor) -> torch.Tensor:
        return self.user(hist_vecs, hist_mask)


@torch.inference_mode()
def all_news_vectors(
    model: TwoTower, ft: FeatureTensors, batch: int = 8192
) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, D) vectors and (N, M) modality weights for every feature row, eval mode."""
    was = model.training
    model.eval()
    table = model.entity_table()
    n = ft.id_rows.shape[0]
    vecs, weights = [], []
    for s in range(0, n, batch):
        rows = torch.arange(s, min(n, s + batch), device=ft.id_rows.device)
        v, w = model.encode_rows(rows, ft, table)
        vecs.append(v.float().cpu())
        if w is not None:
            weights.append(w.float().cpu())
    model.train(was)
    out_w = torch.cat(weights).numpy() if weights else None
    return torch.cat(vecs).numpy(), out_w


@torch.inference_mode()
def user_vectors(model: TwoTower, news_vecs: np.ndarray, hist: np.ndarray, batch: int = 4096) -> np.ndarray:
    """(I, D) user vectors from padded history rows `hist` (I, H) (0 = padding)."""
    was = model.training
    model.eval()
    nv = torch.from_numpy(news_vecs)
    out = []
    for s in range(0, len(hist), batch):
        h = torch.from_numpy(hist[s : s + batch])
        out.append(model.encode_users(nv[h], h > 0).float())
    model.train(was)
    return torch.cat(out).numpy() if out else np.zeros((0, news_vecs.shape[1]), dtype=np.float32)
