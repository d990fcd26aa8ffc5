"""Per-epoch metrics: JSONL + CSV always, TensorBoard event files when installed."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any


class MetricsLogger:
    """Appends one row per epoch to `metrics.jsonl` and `metrics.csv` in `run_dir`;
    also writes TensorBoard scalars under `run_dir/tb` if `tensorboard` is importable."""

    def __init__(self, run_dir: Path) -> None:
        self.jsonl = run_dir / "metrics.jsonl"
        self.csv = run_dir / "metrics.csv"
        self.jsonl.write_text("")
        if self.csv.exists():
            self.csv.unlink()
        self.writer: Any = None
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(run_dir / "tb"))
        except ImportError:  # tensorboard is optional; JSONL/CSV carry the same numbers
            self.writer = None

    def log(self, row: dict[str, float]) -> None:
        with self.jsonl.open("a") as f:
            f.write(json.dumps(row) + "\n")
        new = not self.csv.exists()
        with self.csv.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(row))
            if new:
                w.writeheader()
            w.writerow(row)
        if self.writer is not None:
            step = int(row.get("epoch", 0))
            for k, v in row.items():
                if k != "epoch":
                    self.writer.add_scalar(k, v, step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
