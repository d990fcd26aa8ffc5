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
@pytest.mark.parametrize("fusion", ["residual", "attention", "gate", "concat"])
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
        elif fusion == "residual":  # the base modality has weight 1, the others start at the init gate
            assert torch.all(w[:, 0] == 1) and torch.allclose(w[:, 1:], torch.full_like(w[:, 1:], 0.5))
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


def full_and_id_towers(**kw: object) -> tuple[NewsTower, NewsTower]:
    """A residual id+llm+gnn tower and an id-only tower sharing its ID path weights."""
    torch.manual_seed(0)
    full = NewsTower(ModelConfig(output_dim=16, text_dim=12, num_id_rows=10, **kw))  # type: ignore[arg-type]
    only = NewsTower(ModelConfig(output_dim=16, text_dim=12, num_id_rows=10, use_llm=False, use_gnn=False))
    only.load_state_dict({k: v for k, v in full.state_dict().items() if k in only.state_dict()})
    return full.eval(), only.eval()


def test_closed_gates_reproduce_the_id_model() -> None:
    """Residual fusion: with every content gate shut (scale 0), the full tower is exactly
    the id-only tower; with the gates open, content changes the vectors."""
    full, only = full_and_id_towers()
    ids, text, ent, table = inputs()
    want, _ = only(ids, text, ent, table)
    got, _ = full(ids, text, ent, table)
    assert not torch.allclose(got, want, atol=1e-4)
    full.modality_scale.zero_()
    got, w = full(ids, text, ent, table)
    assert torch.allclose(got, want, atol=1e-6)
    assert w is not None and torch.all(w[:, 1:] == 0)


def test_modality_dropout_only_in_training() -> None:
    full, only = full_and_id_towers(modality_dropout=1.0, id_dropout=0.0)
    ids, text, ent, table = inputs()
    full.drop.p = only.drop.p = 0.0  # compare the fusion, not the vector dropout
    got, _ = full.train()(ids, text, ent, table)
    want, _ = only.train()(ids, text, ent, table)
    assert torch.allclose(got, want, atol=1e-6)  # every content modality dropped
    got, _ = full.eval()(ids, text, ent, table)
    assert not torch.allclose(got, want, atol=1e-4)


def test_gate_signals_describe_the_article() -> None:
    full, _ = full_and_id_towers()
    ids = torch.tensor([0, 3, 4, 0, 7])
    _, _, ent, _ = inputs()
    sig = full.signals(ids, ent)
    assert sig[:, 0].tolist() == [0, 1, 1, 0, 1]  # ID known
    assert sig[:, 1].tolist() == [1, 1, 0, 1, 1]  # has entities
    assert sig[:, 2].tolist() == [1.0, 0.5, 0.0, 1.0, 0.5]  # share of entity slots
    # gates depend on the signals once their weights move off zero
    with torch.no_grad():
        full.gate_sig.weight[:, 0] = 3.0
    _, w = full(ids, *inputs()[1:])
    assert w is not None and torch.all(w[1, 1:] > w[0, 1:])
