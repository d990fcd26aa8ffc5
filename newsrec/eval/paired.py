"""Paired comparisons over the same impressions, and strict JSON.

A gap between two scorers on one sample of impressions is judged by the per-impression
differences: mean, standard error (SD / sqrt(n)) and z = mean / SE. Pairing removes the
impression-to-impression variance both scorers share, so it resolves much smaller gaps
than comparing two means with their own errors.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

PAIRED_METRICS = ("auc", "mrr", "ndcg10")


def paired_diff(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Mean of `a - b` over impressions where both are defined, its SE, z and n
    (None where fewer than two impressions leave no spread to measure)."""
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    d = d[~np.isnan(d)]
    n = len(d)
    if n == 0:
        return {"diff": None, "se": None, "z": None, "n": 0}
    mean = float(d.mean())
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else None
    z = None if se is None else (mean / se if se > 0 else (0.0 if mean == 0 else math.copysign(1e9, mean)))
    return {"diff": mean, "se": se, "z": z, "n": n}


def compare_to_best(
    values: Mapping[str, Mapping[str, Sequence[float]]],
    means: Mapping[str, float | None],
    models: Sequence[str],
    baselines: Sequence[str],
) -> dict[str, Any]:
    """Best baseline by mean AUC and the paired differences of every model row against it.
    `values[scorer][metric]` are per-impression values in one impression order."""
    cands = [b for b in baselines if means.get(b) is not None]
    if not cands:
        return {"best_baseline": None, "pairs": {}, "verdict": "no baseline to compare with"}
    best = max(cands, key=lambda b: float(means[b] or 0.0))
    pairs = {
        m: {k: paired_diff(values[m][k], values[best][k]) for k in PAIRED_METRICS}
        for m in models
        if m in values
    }
    return {"best_baseline": best, "pairs": pairs, "verdict": verdict(best, pairs)}


def verdict(best: str, pairs: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """One line: the best baseline and, per model row, its AUC gap in SEs."""
    if not pairs:
        return f"best baseline: {best}"
    parts = []
    for m, p in pairs.items():
        d = p["auc"]
        if d["diff"] is None:
            parts.append(f"{m} not comparable")
            continue
        z = d["z"] if d["z"] is not None else 0.0
        word = "beats" if d["diff"] > 0 and z >= 2 else ("trails" if d["diff"] < 0 and z <= -2 else "ties")
        se = f"{d['se']:.4f}" if d["se"] is not None else "n/a"
        parts.append(f"{m} {word} it by {d['diff']:+.4f} AUC (SE {se}, z {z:+.1f})")
    return f"best baseline: {best}; " + "; ".join(parts)


def strict(obj: Any) -> Any:
    """`obj` with every NaN/Infinity float replaced by None and numpy scalars made plain."""
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_json(path: Path, obj: Any) -> None:
    """Strict JSON (no NaN/Infinity: a strict parser reads it)."""
    path.write_text(json.dumps(strict(obj), indent=2, allow_nan=False))
