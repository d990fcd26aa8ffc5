"""Inputs and outputs shared by the serving benchmarks: the serving-data arguments, users
with their histories, a loaded variant, and the JSON report.

Imported by `serve_load.py`, `serve_handlers.py`, `retrieve_k.py` and `ivf_recall.py`
(run from `bench/`, which Python puts first on the path).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def add_serving_arguments(parser: argparse.ArgumentParser, users: int) -> None:
    """--serving, --news, --behaviors and --users: the artifact and data a benchmark serves."""
    parser.add_argument("--serving", type=Path, required=True, help="serving artifact dir (RUN/serving)")
    parser.add_argument("--news", type=Path, action="append", default=[], help="news.tsv (repeatable)")
    parser.add_argument("--behaviors", type=Path, required=True, help="behaviors.tsv to draw users from")
    parser.add_argument("--users", type=int, default=users)


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Save a benchmark's report as JSON and say where."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {path}")


def load_users(path: Path, limit: int, max_history: int | None = None) -> list[tuple[str, list[str]]]:
    """The first `limit` users of a behaviors file with the history of their first
    impression (its last `max_history` ids when given)."""
    from newsrec.data import read_behaviors

    impressions, _bad = read_behaviors(path)
    seen: dict[str, list[str]] = {}
    for imp in impressions:
        history = imp.history if max_history is None else imp.history[-max_history:]
        seen.setdefault(imp.user_id, history)
        if len(seen) >= limit:
            break
    return list(seen.items())


def load_serving_variant(serving: Path, news: list[Path], tag: str) -> Any:
    """The variant the services would load (model, Milvus Lite collection in a fresh temp
    dir with its in-memory mirror, catalog), without a text provider."""
    from services.config import ServeConfig
    from services.loading import load_variant

    config = ServeConfig.model_validate(
        {
            "serving_dir": str(serving),
            "news_files": [str(n) for n in news],
            "milvus_uri": str(Path(tempfile.mkdtemp(prefix=f"{tag}-")) / "milvus.db"),
        }
    )
    return load_variant(config, with_provider=False)
