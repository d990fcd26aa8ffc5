"""Fusion that cannot hurt: held-out gate calibration, a noise KG, .vec-initialised GNN."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from newsrec.data import load_dataset
from newsrec.data.reader import read_vectors
from newsrec.eval.metrics import auc
from newsrec.kg.gnn import EntityGNN
from newsrec.models import load_serving
from newsrec.models.towers import ModelConfig
from newsrec.train import two_tower
from newsrec.train.config import TrainConfig
from newsrec.train.gates import SCALES
from newsrec.train.prepare import load_inputs
from newsrec.train.toy import write_toy_dataset
from newsrec.train.two_tower import train_two_tower

torch.set_num_threads(1)


def shuffle_entities(data: Path, seed: int = 0) -> None:
    """Permute the entity columns of news.tsv across articles (same permutation in every
    split): the KG becomes pure noise, everything else stays."""
    files = sorted(data.glob("*/news.tsv"))
    rows = [line.split("\t") for line in files[0].read_text().splitlines()]
    perm = np.random.default_rng(seed).permutation(len(rows))
    moved = {r[0]: rows[j][6:8] for r, j in zip(rows, perm, strict=True)}
    for f in files:
        out = [line.split("\t") for line in f.read_text().splitlines()]
        f.write_text("".join("\t".join(r[:6] + moved[r[0]]) + "\n" for r in out))


def noisy_toy(out: Path, seed: int = 1) -> tuple[Path, Path]:
    """The toy set with a shuffled KG, and the first 100 dev impressions (day 1, with
    cold articles) moved to the end of train: the latest train impressions (the
    holdout the gates are calibrated on) then show articles the towers never trained
    on, as the latest impressions of a real log do."""
    data, emb = write_toy_dataset(out, seed=seed, dev_impressions=300)
    shuffle_entities(data)
    dev = (data / "dev" / "behaviors.tsv").read_text().splitlines(keepends=True)
    with (data / "train" / "behaviors.tsv").open("a") as f:
        f.writelines(dev[:100])
    (data / "dev" / "behaviors.tsv").write_text("".join(dev[100:]))
    return data, emb


@pytest.fixture(scope="module")
def noisy_kg(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return noisy_toy(tmp_path_factory.mktemp("noisy"))


def train(data: Path, emb: Path, out: Path, use_gnn: bool, **kw: object) -> Path:
    base: dict[str, object] = {"epochs": 4, "lr": 5e-3, "batch_size": 64, "logq": False, "progress": False}
    model = ModelConfig(output_dim=32, use_gnn=use_gnn)
    paths = {"data": data, "embeddings": emb, "out": out}
    cfg = TrainConfig.model_validate({**base, **kw, **paths, "model": model})
    return train_two_tower(cfg).serving_dir


def dev_aucs(serving: Path, data: Path) -> np.ndarray:
    """Per-impression dev AUC of the exported two-tower score."""
    model = load_serving(serving)
    vecs, out = model.news_vectors(), []
    for imp in load_dataset(data)["dev"].impressions:
        if 0 < sum(imp.labels) < len(imp.labels):
            u, _ = model.encode_user(imp.history)
            rows = [model.row(c) for c in imp.candidates]
            out.append(auc(np.array(imp.labels), np.array([vecs[r] @ u for r in rows])))  # type: ignore[index]
    return np.array(out)


def test_noise_kg_does_not_hurt_the_full_model(noisy_kg: tuple[Path, Path], tmp_path: Path) -> None:
    """On a toy set whose KG is shuffled (pure noise), id+llm+gnn is not below id+llm on
    dev by more than 1 SE, and the held-out calibration is recorded in the artifact."""
    data, emb = noisy_kg
    base = dev_aucs(train(data, emb, tmp_path / "id+llm", use_gnn=False), data)
    full_dir = train(data, emb, tmp_path / "full", use_gnn=True)
    diff = dev_aucs(full_dir, data) - base
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    assert diff.mean() >= -max(se, 0.01), (diff.mean(), se)
    cal = json.loads((full_dir / "config.json").read_text())["gate_calibration"]
    assert set(cal["scales"]) | set(cal.get("shut", {})) == {"llm", "gnn"}
    assert set(cal["scales"].values()) <= set(SCALES) and cal["auc"] >= cal["auc_unscaled"]


def test_a_shut_modality_is_retrained_away(
    noisy_kg: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the calibration shuts the KG (scale 0), the exported model is the one trained
    without it: the same vectors as a plain id+llm run, and the reason in the artifact."""
    data, emb = noisy_kg
    real = two_tower.calibrate_gates

    def shut_gnn(model: Any, ft: Any, holdout: Any) -> dict[str, Any]:
        out = real(model, ft, holdout)
        if "gnn" in model.cfg.modalities():
            model.news.modality_scale[-1] = 0.0
            out["scales"]["gnn"] = 0.0
        return out

    monkeypatch.setattr(two_tower, "calibrate_gates", shut_gnn)
    full = train(data, emb, tmp_path / "full", use_gnn=True, epochs=1)
    monkeypatch.setattr(two_tower, "calibrate_gates", real)
    plain = train(data, emb, tmp_path / "id+llm", use_gnn=False, epochs=1)
    cfg = json.loads((full / "config.json").read_text())
    assert cfg["modalities"] == ["id", "llm"] and "gnn" in cfg["gate_calibration"]["shut"]
    assert np.array_equal(np.load(full / "news_vectors.npy"), np.load(plain / "news_vectors.npy"))


def test_calibration_can_be_turned_off(noisy_kg: tuple[Path, Path], tmp_path: Path) -> None:
    data, emb = noisy_kg
    serving = train(data, emb, tmp_path / "off", use_gnn=True, calibrate_gates=False, epochs=1)
    cfg = json.loads((serving / "config.json").read_text())
    assert cfg["gate_calibration"] == {"skipped": "calibrate_gates off"}


def test_gnn_starts_from_entity_embedding_vec(tmp_path: Path) -> None:
    """MIND's entity_embedding.vec rows are the GNN's initial entity features; entities
    missing from the .vec get learned features instead."""
    data, emb = write_toy_dataset(tmp_path)
    graph = load_inputs(data, emb).graph
    vec, _ = read_vectors(data / "train" / "entity_embedding.vec")
    assert graph.entity_vectors is not None and 0 < graph.has_vector.sum() < graph.num_entities
    gnn = EntityGNN(graph, dim=8)
    for e, row in graph.entity_row.items():
        if e in vec:
            assert graph.has_vector[row]
            assert torch.allclose(gnn.features[row], torch.from_numpy(vec[e]))
        else:
            assert not graph.has_vector[row]
