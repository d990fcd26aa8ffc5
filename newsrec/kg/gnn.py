"""GCN over the entity co-occurrence graph and inductive article KG vectors.

The GNN produces one vector per entity; an article's KG vector aggregates the
vectors of its entities (mean or additive attention). A new article whose
entities are in the graph gets a KG vector without retraining; an article with
no known entity gets the learned "no entity" vector.
"""

from __future__ import annotations

import torch
from torch import nn

from newsrec.kg.graph import KnowledgeGraph


class EntityGNN(nn.Module):
    """Entity features -> `layers` GCN layers (residual, ReLU) -> (E, dim) vectors.

    Features: the .vec rows (initialised from the file; kept fixed with
    `freeze_vectors`, so an entity cannot turn into a free per-article memory of train
    clicks) where present; entities missing from the .vec start from a shared learned
    vector plus a small per-entity learned offset. Without any .vec, all entity
    features are learned.
    """

    missing: torch.Tensor
    adj: torch.Tensor

    def __init__(
        self,
        graph: KnowledgeGraph,
        dim: int,
        layers: int = 2,
        dropout: float = 0.1,
        freeze_vectors: bool = False,
    ) -> None:
        super().__init__()
        n = max(graph.num_entities, 1)
        if graph.entity_vectors is not None:
            init = torch.from_numpy(graph.entity_vectors.copy())
            in_dim = init.shape[1]
            scale = float(init[torch.from_numpy(graph.has_vector)].std()) if graph.has_vector.any() else 0.1
        else:
            in_dim, scale = dim, 0.1
            init = torch.zeros(graph.num_entities, in_dim)
        self.features = nn.Parameter(torch.cat([init, torch.zeros(n - graph.num_entities, in_dim)]))
        has = torch.zeros(n, dtype=torch.bool)
        has[: graph.num_entities] = torch.from_numpy(graph.has_vector)
        self.register_buffer("missing", (~has).float().unsqueeze(1), persistent=False)
        self.missing_vector = nn.Parameter(torch.randn(in_dim) * scale)
        # Offsets let missing entities differ from each other as training goes on.
        with torch.no_grad():
            self.features[~has] = torch.randn(int((~has).sum()), in_dim) * scale * 0.1
        self.input = nn.Linear(in_dim, dim)
        self.convs = nn.ModuleList(nn.Linear(dim, dim) for _ in range(layers))
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("adj", graph.normalized_adjacency(), persistent=False)
        self.num_layers = layers
        self.freeze_vectors = freeze_vectors and bool(has.any())

    def forward(self) -> torch.Tensor:
        feats: torch.Tensor = self.features
        if self.freeze_vectors:
            # .vec rows get no gradient; missing entities (mask 1) keep learning.
            feats = self.missing * feats + (1 - self.missing) * feats.detach()
        x = feats + self.missing * self.missing_vector
        h = self.input(x)
        for conv in self.convs:
            # GCN: aggregate normalised neighbours, then transform; residual keeps identity.
            h = h + torch.relu(conv(torch.sparse.mm(self.adj, h)))
            h = self.dropout(h)
        return h


class EntityAggregator(nn.Module):
    """Article KG vector from its entities' GNN vectors: masked mean or attention.

    `ent_idx` (B, M) holds entity rows, -1 for padding; rows with no entity get
    the learned `no_entity` vector.
    """

    def __init__(self, dim: int, mode: str = "mean") -> None:
        super().__init__()
        if mode not in ("mean", "attention"):
            raise ValueError(f"kg aggregation must be mean or attention, got {mode!r}")
        self.mode = mode
        self.no_entity = nn.Parameter(torch.randn(dim) * 0.1)
        if mode == "attention":
            self.att = nn.Sequential(nn.Linear(dim, dim), nn.Tanh(), nn.Linear(dim, 1, bias=False))

    def forward(self, entity_vectors: torch.Tensor, ent_idx: torch.Tensor) -> torch.Tensor:
        mask = ent_idx >= 0
        vecs = entity_vectors[ent_idx.clamp(min=0)]  # (B, M, D)
        if self.mode == "attention":
            logits = self.att(vecs).squeeze(-1).masked_fill(~mask, -1e9)
            w = torch.softmax(logits, dim=1) * mask
        else:
            w = mask.float()
        denom = w.sum(1, keepdim=True)
        out = (vecs * w.unsqueeze(-1)).sum(1) / denom.clamp(min=1e-9)
        has_any = (denom > 0).float()
        return has_any * out + (1 - has_any) * self.no_entity
