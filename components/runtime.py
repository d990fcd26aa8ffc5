"""What every component body does the same way, imported inside the body (kfp ships only
the function's source to the container; this module comes with the project image)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kfp.dsl import Metrics

TORCH_THREADS = 2  # per step: the steps of one pipeline run side by side on one node


def clamp_torch_threads(limit: int = TORCH_THREADS) -> None:
    """At most `limit` torch threads (never more than torch would use anyway)."""
    import torch

    torch.set_num_threads(max(1, min(limit, torch.get_num_threads())))


def log_metrics(metrics: Metrics, values: dict[str, float]) -> None:
    """Log `values` on a Metrics output for the KFP UI, and write them to its file.

    kfp.local counts a cached output whose file is missing as a miss, and log_metric
    writes no file: the JSON file is what lets a cached step be reused."""
    for key, value in values.items():
        metrics.log_metric(key, float(value))
    Path(metrics.path).write_text(json.dumps(dict(metrics.metadata), indent=2))
