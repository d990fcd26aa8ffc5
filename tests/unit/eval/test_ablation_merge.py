"""Merging ablation tables written by several processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from newsrec.eval.ablation import merge_ablations


def _write(d: Path, names: list[str], settings: dict[str, object]) -> Path:
    d.mkdir()
    row = {
        "auc": 0.6,
        "mrr": 0.3,
        "ndcg5": 0.3,
        "ndcg10": 0.4,
        "cold_auc": float("nan"),
        "empty_history_auc": 0.5,
    }
    runs = [{"name": n, **row, "recall50": 0.01} for n in names]
    (d / "ablation.json").write_text(json.dumps({"runs": runs, "settings": settings}))
    return d


def _reject(c: str) -> None:
    raise ValueError(f"non-strict JSON constant {c}")


def test_merge_orders_rows_and_checks_settings(tmp_path: Path) -> None:
    a = _write(tmp_path / "a", ["id+llm+gnn", "ranker"], {"epochs": 3})
    b = _write(tmp_path / "b", ["id+llm", "id"], {"epochs": 3})
    merged = merge_ablations([a, b], tmp_path / "m")
    assert [r["name"] for r in merged["runs"]] == ["id", "id+llm", "id+llm+gnn", "ranker"]
    assert (tmp_path / "m/ablation.md").is_file() and (tmp_path / "m/ablation.png").is_file()
    # an older table's NaN comes out as null: the merged file is strict JSON
    json.loads((tmp_path / "m/ablation.json").read_text(), parse_constant=_reject)
    c = _write(tmp_path / "c", ["id+gnn"], {"epochs": 1})
    with pytest.raises(ValueError, match="other settings"):
        merge_ablations([a, c], tmp_path / "m2")
