"""News/user towers: fusion switches, attention weights, ID dropout, empty history."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from newsrec.models.towers import ModelConfig, NewsTower, UserTower

torch.set_num_threads(1)


def inputs(b: int = 5, text_dim: int = 12) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    ids = torch.randint(0, 10, (b,))
    text = torch.randn(b, text_dim)
    ent = torch.tensor([[0, 1], [2, -1], [-1, -1], [1, 2], [0, -1]])[:b]
    table = torch.randn(3, 16)
    return ids, text, ent, table


@pytest.mark.parametrize(
    ("use_id", "use_llm", "use_gnn"),
    [(True, False, False), (True, True, False), (True, False, True), (True, True, True), (False, True, True)],
)
@pytest.mark.parametrize("fusion", ["attention", "gate", "concat"])
def test_fusion_switches(use_id: bool, use_llm: bool, use_gnn: bool, fusion: str) -> None:
    cfg = ModelConfig(
        output_dim=16,
        text_dim=12,
        num_id_rows=10,
        use_id=use_id,
        use_llm=use_llm,
        use_gnn=use_gnn,
        fusion=fusion,  # type: ignore[arg-type]
    )
    tower = NewsTower(cfg).eval()
    vec, w = tower(*inputs())
    assert vec.shape == (5, 16)
    assert torch.allclose(vec.norm(dim=1), torch.ones(5), atol=1e-5)
    m = use_id + use_llm + use_gnn
    if fusion == "concat":
        assert w is None
    else:
        assert w is not None and w.shape == (5, m)
        if fusion == "attention":
            assert torch.allclose(w.sum(1), torch.ones(5), atol=1e-6)
        else:
            assert ((w > 0) & (w < 1)).all()
    # a disabled modality has no parameters at all
    names = {n.split(".")[0] for n, _ in tower.named_parameters()}
    assert (
        ("id_emb" in names) == use_id and ("text_proj" in names) == use_llm and ("kg_agg" in names) == use_gnn
    )


def test_text_changes_only_matter_with_llm() -> None:
    ids, text, ent, table = inputs()
    for use_llm in (True, False):
        cfg = ModelConfig(output_dim=16, text_dim=12, num_id_rows=10, use_llm=use_llm)
        tower = NewsTower(cfg).eval()
        a, _ = tower(ids, text, ent, table)
        b, _ = tower(ids, text + 1.0, ent, table)
        assert torch.allclose(a, b) != use_llm


def test_no_modality_is_rejected() -> None:
    with pytest.raises(ValidationError, match="at least one"):
        ModelConfig(use_id=False, use_llm=False, use_gnn=False)


def test_id_dropout_only_in_training() -> None:
    cfg = ModelConfig(
        output_dim=16, text_dim=12, num_id_rows=10, use_llm=False, use_gnn=False, id_dropout=1.0
    )
    tower = NewsTower(cfg)
    ids = torch.arange(1, 6)
    train_v = tower.train().modality_vectors(ids, None, None, None)
    assert torch.allclose(train_v[:, 0], tower.id_emb.weight[0].expand(5, -1))  # all replaced by unknown row
    eval_v = tower.eval().modality_vectors(ids, None, None, None)
    assert torch.allclose(eval_v[:, 0], tower.id_emb(ids))


def test_user_tower_empty_history_and_padding() -> None:
    torch.manual_seed(0)
    user = UserTower(8)
    hist = torch.randn(3, 4, 8)
    mask = torch.tensor([[True, True, False, False], [False] * 4, [True, True, False, False]])
    hist[2, 2:] = 99.0  # padding content must not matter
    hist[2, :2] = hist[0, :2]
    out = user(hist, mask)
    assert out.shape == (3, 8)
    assert torch.allclose(out[1], torch.nn.functional.normalize(user.empty, dim=0))
    assert torch.allclose(out[0], out[2], atol=1e-6)


def test_user_tower_starts_as_mean_pooling() -> None:
    """Before training, the user vector is the normalised mean of the (unpadded) history
    vectors, so the initial score is the average similarity to the history."""
    torch.manual_seed(1)
    user = UserTower(8)
    hist = torch.randn(2, 5, 8)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    out = user(hist, mask)
    want = torch.stack([hist[0].mean(0), hist[1, :3].mean(0)])
    assert torch.allclose(out, torch.nn.functional.normalize(want, dim=-1), atol=1e-6)
