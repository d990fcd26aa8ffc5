"""News tower (ID + LLM text + KG, fused) and user tower (additive attention).

The news tower takes *features* (ID rows, text vectors, entity rows) and the GNN
entity table as inputs, so training can feed it a batch of articles and serving
can feed it one cold-start article with precomputed entity vectors.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from newsrec.kg.gnn import EntityAggregator

Fusion = Literal["attention", "gate", "concat"]
MODALITIES = ("id", "llm", "gnn")


class ModelConfig(BaseModel):
    """Architecture of the two towers; saved in `serving/config.json`."""

    model_config = ConfigDict(extra="forbid")

    output_dim: int = Field(default=256, ge=8)
    fusion: Fusion = "attention"
    use_id: bool = True
    use_llm: bool = True
    use_gnn: bool = True
    gnn_layers: int = Field(default=2, ge=0)
    kg_aggregation: Literal["mean", "attention"] = "mean"
    max_entities_per_article: int = Field(default=8, ge=1)
    max_history: int = Field(default=50, ge=1)
    id_dropout: float = Field(default=0.3, ge=0.0, le=1.0)
    dropout: float = Field(default=0.1, ge=0.0, le=0.9)
    text_dim: int = 384  # set from the embedding table at training time
    num_id_rows: int = 1  # row 0 is the unknown-id vector; set at training time

    @model_validator(mode="after")
    def _one_modality(self) -> ModelConfig:
        if not (self.use_id or self.use_llm or self.use_gnn):
            raise ValueError("at least one of id, llm, gnn must be enabled")
        return self

    def modalities(self) -> list[str]:
        return [m for m, on in zip(MODALITIES, (self.use_id, self.use_llm, self.use_gnn), strict=True) if on]


class NewsTower(nn.Module):
    """Per-modality projections to `output_dim`, then fusion.

    forward returns (vectors (B, D), modality weights (B, M) or None). With
    `attention` the weights are the softmax gate (sum to 1); with `gate` the
    sigmoid gates; with `concat` there are none.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d = cfg.output_dim
        self.mods = cfg.modalities()
        if cfg.use_id:
            self.id_emb = nn.Embedding(cfg.num_id_rows, d)
            nn.init.normal_(self.id_emb.weight, std=0.1)
        if cfg.use_llm:
            self.text_proj = nn.Sequential(nn.Linear(cfg.text_dim, d), nn.GELU(), nn.Linear(d, d))
        if cfg.use_gnn:
            self.kg_agg = EntityAggregator(d, cfg.kg_aggregation)
            self.kg_proj = nn.Linear(d, d)
        m = len(self.mods)
        if cfg.fusion == "attention":
            self.att = nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1, bias=False))
        elif cfg.fusion == "gate":
            self.gate = nn.Linear(d, 1)
        else:
            self.mlp = nn.Sequential(nn.Linear(m * d, d), nn.GELU(), nn.Linear(d, d))
        self.norm = nn.LayerNorm(d)
        self.drop = nn.Dropout(cfg.dropout)

    def modality_vectors(
        self,
        id_rows: torch.Tensor,
        text: torch.Tensor | None,
        ent_idx: torch.Tensor | None,
        entity_table: torch.Tensor | None,
    ) -> torch.Tensor:
        """(B, M, D) projected modality vectors in the order of `self.mods`."""
        parts = []
        if self.cfg.use_id:
            if self.training and self.cfg.id_dropout > 0:
                # Replace some IDs by the unknown-id row so text/KG learn to carry cold articles.
                drop = torch.rand(id_rows.shape, device=id_rows.device) < self.cfg.id_dropout
                id_rows = id_rows.masked_fill(drop, 0)
            parts.append(self.id_emb(id_rows))
        if self.cfg.use_llm:
            assert text is not None
            parts.append(self.text_proj(text))
        if self.cfg.use_gnn:
            assert ent_idx is not None and entity_table is not None
            parts.append(self.kg_proj(self.kg_agg(entity_table, ent_idx)))
        return torch.stack(parts, dim=1)

    def forward(
        self,
        id_rows: torch.Tensor,
        text: torch.Tensor | None = None,
        ent_idx: torch.Tensor | None = None,
        entity_table: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        v = self.drop(self.modality_vectors(id_rows, text, ent_idx, entity_table))
        weights: torch.Tensor | None
        if self.cfg.fusion == "attention":
            weights = torch.softmax(self.att(v).squeeze(-1), dim=1)
            out = (v * weights.unsqueeze(-1)).sum(1)
        elif self.cfg.fusion == "gate":
            weights = torch.sigmoid(self.gate(v).squeeze(-1))
            out = (v * weights.unsqueeze(-1)).sum(1)
        else:
            weights = None
            out = self.mlp(v.flatten(1))
        # Unit vectors: the inner product is the cosine, which keeps InfoNCE logits bounded.
        return F.normalize(self.norm(out), dim=-1), weights


class UserTower(nn.Module):
    """NRMS-style additive attention pooling over history news vectors.

    `hist` (B, H, D) with `mask` (B, H) True for real items; users with empty
    history get the learned `empty` vector.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.transform = nn.Linear(dim, dim)
        hidden = nn.Linear(dim, dim)  # created before `score`: keeps the seed's init order
        score = nn.Linear(dim, 1, bias=False)
        self.att = nn.Sequential(hidden, nn.Tanh(), score)
        self.empty = nn.Parameter(torch.randn(dim) * 0.1)
        # Start as plain mean pooling (uniform attention, identity transform) and learn
        # departures from it: the dot product with the mean of the history vectors is the
        # average similarity to the history, a strong score that a random init first loses.
        nn.init.zeros_(score.weight)
        nn.init.eye_(self.transform.weight)
        nn.init.zeros_(self.transform.bias)

    def forward(self, hist: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        logits = self.att(hist).squeeze(-1).masked_fill(~mask, -1e9)
        w = torch.softmax(logits, dim=1) * mask
        pooled = (hist * w.unsqueeze(-1)).sum(1)
        user = self.transform(pooled)
        has = mask.any(1, keepdim=True).float()
        return F.normalize(has * user + (1 - has) * self.empty, dim=-1)
