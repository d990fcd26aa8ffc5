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

Fusion = Literal["residual", "attention", "gate", "concat"]
MODALITIES = ("id", "llm", "gnn")


class ModelConfig(BaseModel):
    """Architecture of the two towers; saved in `serving/config.json`."""

    model_config = ConfigDict(extra="forbid")

    output_dim: int = Field(default=256, ge=8)
    # residual: base (ID) vector + per-article gated content corrections; closed gates
    # give back the base-only model, so a modality that carries nothing can be shut off.
    fusion: Fusion = "residual"
    use_id: bool = True
    use_llm: bool = True
    use_gnn: bool = True
    gnn_layers: int = Field(default=2, ge=0)
    # Keep entity_embedding.vec rows fixed (the GNN layers and projections still learn).
    gnn_freeze_vectors: bool = False
    kg_aggregation: Literal["mean", "attention"] = "mean"
    max_entities_per_article: int = Field(default=8, ge=1)
    max_history: int = Field(default=50, ge=1)
    id_dropout: float = Field(default=0.3, ge=0.0, le=1.0)
    dropout: float = Field(default=0.1, ge=0.0, le=0.9)
    # residual fusion: initial gate logit (0: every gate at 0.5) and per-article modality
    # dropout (the ID path must stand alone; no modality becomes a crutch). At 0.5 the
    # base path is trained alone on half the articles, so shutting a modality after
    # training (newsrec.train.gates) is judged on a base that works: at 0.2 the towers
    # deprived of the KG scored 0.47 AUC and the calibration kept a KG that cost 0.019 AUC
    # against the ID-only model (docs/results.md, the co-click world).
    gate_init: float = Field(default=0.0, ge=-10.0, le=10.0)
    modality_dropout: float = Field(default=0.5, ge=0.0, le=1.0)
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
    `residual` the first modality (ID when used) is the base with weight 1 and the
    others are its sigmoid-gated corrections; with `attention` the weights are the
    softmax gate (sum to 1); with `gate` the sigmoid gates; with `concat` there are none.

    Residual gates are per article: a linear function of the article's own signals
    (is its ID known, has it entities, how many) plus of the modality vector itself,
    starting at `gate_init` for every article.
    """

    NUM_SIGNALS = 3
    modality_scale: torch.Tensor

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
        if cfg.fusion == "residual":
            if m > 1:  # a single modality is its own base: no gates
                self.gate_sig = nn.Linear(self.NUM_SIGNALS, m - 1)
                nn.init.zeros_(self.gate_sig.weight)
                nn.init.constant_(self.gate_sig.bias, cfg.gate_init)
                self.gate_vec = nn.Parameter(torch.zeros(m - 1, d))
                # Per-modality multiplier of the learned gates, fitted after training on
                # held-out impressions (newsrec.train.gates); 0 shuts a modality off.
                self.register_buffer("modality_scale", torch.ones(m - 1))
        elif cfg.fusion == "attention":
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
        """(B, M, D) projected modality vectors in the order of `self.mods` (ID dropout
        applied in training)."""
        return self._stack(self._drop_ids(id_rows), text, ent_idx, entity_table)

    def _drop_ids(self, id_rows: torch.Tensor) -> torch.Tensor:
        if self.cfg.use_id and self.training and self.cfg.id_dropout > 0:
            # Replace some IDs by the unknown-id row so text/KG learn to carry cold articles.
            drop = torch.rand(id_rows.shape, device=id_rows.device) < self.cfg.id_dropout
            id_rows = id_rows.masked_fill(drop, 0)
        return id_rows

    def _stack(
        self,
        id_rows: torch.Tensor,
        text: torch.Tensor | None,
        ent_idx: torch.Tensor | None,
        entity_table: torch.Tensor | None,
    ) -> torch.Tensor:
        parts = []
        if self.cfg.use_id:
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
        id_rows = self._drop_ids(id_rows)
        v = self.drop(self._stack(id_rows, text, ent_idx, entity_table))
        weights: torch.Tensor | None
        if self.cfg.fusion == "residual":
            out, weights = self._residual(v, self.signals(id_rows, ent_idx))
        elif self.cfg.fusion == "attention":
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

    def signals(self, id_rows: torch.Tensor, ent_idx: torch.Tensor | None) -> torch.Tensor:
        """(B, NUM_SIGNALS) what an article says about its own modalities: ID known (after
        ID dropout, so training sees cold articles), has entities, share of entity slots used."""
        b = id_rows.shape[0]
        known = (id_rows > 0).float() if self.cfg.use_id else torch.zeros(b, device=id_rows.device)
        if self.cfg.use_gnn and ent_idx is not None:
            n_ent = (ent_idx >= 0).float().sum(1)
            has, share = (n_ent > 0).float(), n_ent / ent_idx.shape[1]
        else:
            has = share = torch.zeros(b, device=id_rows.device)
        return torch.stack([known, has, share], dim=1)

    def _residual(self, v: torch.Tensor, sig: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Base vector + gated corrections; weights (B, M) with the base's weight 1."""
        base, rest = v[:, 0], v[:, 1:]
        ones = torch.ones(v.shape[0], 1, device=v.device, dtype=v.dtype)
        if rest.shape[1] == 0:
            return base, ones
        logits = self.gate_sig(sig) + torch.einsum("bmd,md->bm", rest, self.gate_vec)
        gates = torch.sigmoid(logits) * self.modality_scale
        if self.training and self.cfg.modality_dropout > 0:
            # Drop whole content modalities per article: the base path must stand alone
            # and no modality can become a crutch the others lean on.
            keep = torch.rand(gates.shape, device=gates.device) >= self.cfg.modality_dropout
            gates = gates * keep
        out = base + (rest * gates.unsqueeze(-1)).sum(1)
        return out, torch.cat([ones, gates], dim=1)


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
