"""The serving artifact carries titles/subcategories (so a served model needs no MIND files)
and the configured model version."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from newsrec.data import load_dataset
from newsrec.models import load_serving
from newsrec.models.export import seal_serving
from newsrec.models.towers import ModelConfig
from newsrec.train.config import TrainConfig
from newsrec.train.toy import write_toy_dataset
from newsrec.train.two_tower import train_two_tower
from services.loading import build_catalog

torch.set_num_threads(1)


def test_export_carries_titles_and_the_configured_version(tmp_path: Path) -> None:
    data, emb = write_toy_dataset(tmp_path / "toy")
    cfg = TrainConfig(
        data=data,
        embeddings=emb,
        out=tmp_path / "run",
        epochs=1,
        batch_size=64,
        max_train_impressions=100,
        model=ModelConfig(output_dim=16, use_llm=False, use_gnn=False),
        progress=False,
        model_version="v20261123",
    )
    res = train_two_tower(cfg)
    assert json.loads((res.serving_dir / "config.json").read_text())["model_version"] == "v20261123"
    model = load_serving(res.serving_dir)
    assert model.model_version == "v20261123"

    news = {}
    for split in load_dataset(data).values():
        news.update(split.news)
    catalog = build_catalog(model, [])  # what the Helm chart runs: no --news files
    assert len(catalog) == len(model.news_ids())
    for nid in ("N0_0", "N1_1"):
        info = catalog.get(nid)
        assert info is not None and info.title == news[nid].title != ""
        assert (info.category, info.subcategory) == (news[nid].category, news[nid].subcategory)

    # an upserted article keeps its title in the model, so a rebuilt catalog shows it
    art = news["N0_0"]
    fresh = type(art)("FRESH1", art.category, "subX", "A fresh title", "", "", [], [])
    model.add_news(fresh, np.zeros(model.dim, np.float32))
    meta = model.news_metadata("FRESH1")
    assert meta is not None and (meta["title"], meta["subcategory"]) == ("A fresh title", "subX")
    assert build_catalog(model, []).get("FRESH1").title == "A fresh title"  # type: ignore[union-attr]


def test_artifact_without_titles_still_loads(tmp_path: Path) -> None:
    """Artifacts exported before titles existed load with empty titles."""
    data, emb = write_toy_dataset(tmp_path / "toy")
    cfg = TrainConfig(
        data=data,
        embeddings=emb,
        out=tmp_path / "old-run",
        epochs=1,
        batch_size=64,
        max_train_impressions=50,
        model=ModelConfig(output_dim=8, use_llm=False, use_gnn=False),
        progress=False,
    )
    res = train_two_tower(cfg)
    meta_path = res.serving_dir / "news_meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["title"], meta["subcategory"]
    meta_path.write_text(json.dumps(meta))
    seal_serving(res.serving_dir)  # an older artifact is sealed as it was written
    model = load_serving(res.serving_dir)
    assert model.model_version == "old-run-e1"  # no model_version: derived from the run dir
    assert build_catalog(model, []).get("N0_0").title == ""  # type: ignore[union-attr]


def test_model_version_must_not_be_empty(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="model_version"):
        TrainConfig(data=tmp_path, out=tmp_path, model_version="")
