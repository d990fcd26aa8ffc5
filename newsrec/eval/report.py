"""`report.md` + PNG plots of an evaluation's metrics (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METRICS = ("auc", "mrr", "ndcg5", "ndcg10")


def _fmt(x: Any) -> str:
    return "n/a" if x is None or x != x else f"{x:.4f}"


def _slices_plot(metrics: dict[str, Any], path: Path) -> None:
    scorers = metrics["scorers"]
    slices = ["overall", "cold", "empty_history"]
    fig, ax = plt.subplots(figsize=(7, 3.5))
    width = 0.8 / len(scorers)
    for i, (name, m) in enumerate(scorers.items()):
        vals = [m["auc"], m["cold"]["auc"], m["empty_history"]["auc"]]
        ax.bar(
            [j + i * width for j in range(len(slices))], [v if v == v else 0 for v in vals], width, label=name
        )
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks([j + width * (len(scorers) - 1) / 2 for j in range(len(slices))], slices)
    ax.set_ylabel("AUC")
    ax.set_ylim(0.4, 1.0)
    ax.legend()
    ax.set_title("dev AUC by slice")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _weights_plot(mw: dict[str, Any], path: Path) -> None:
    slices = [s for s in ("all", "warm", "cold", "empty_history") if mw.get(s)]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    width = 0.8 / len(mw["modalities"])
    for i, mod in enumerate(mw["modalities"]):
        ax.bar([j + i * width for j in range(len(slices))], [mw[s][i] for s in slices], width, label=mod)
    ax.set_xticks([j + width * (len(mw["modalities"]) - 1) / 2 for j in range(len(slices))], slices)
    ax.set_ylabel("mean fusion weight")
    ax.set_title(f"{mw['fusion']} fusion weights by slice")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(metrics: dict[str, Any], out: Path) -> Path:
    """Write `report.md`, `auc_slices.png` and (attention/gate fusion) `modality_weights.png`."""
    _slices_plot(metrics, out / "auc_slices.png")
    lines = [
        f"# Evaluation of {metrics['model_version']} on {metrics['split']}",
        "",
        f"{metrics['impressions']} labeled impressions.",
        "",
        "| scorer | AUC | MRR | nDCG@5 | nDCG@10 | cold AUC | empty-history AUC | impressions | skipped |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in metrics["scorers"].items():
        lines.append(
            f"| {name} | "
            + " | ".join(_fmt(m[k]) for k in METRICS)
            + f" | {_fmt(m['cold']['auc'])} ({m['cold']['impressions']}) | {_fmt(m['empty_history']['auc'])}"
            + f" ({m['empty_history']['impressions']}) | {m['impressions']} | {m['skipped']} |"
        )
    lines += ["", "![AUC by slice](auc_slices.png)", "", "## Retrieval over all news (user vector)", ""]
    r = metrics["retrieval"]
    lines.append("| " + " | ".join(k for k in r) + " |")
    lines.append("|" + "---|" * len(r))
    lines.append("| " + " | ".join(_fmt(v) if isinstance(v, float) else str(v) for v in r.values()) + " |")
    first = next(iter(metrics["scorers"].values()))
    lines += ["", "## AUC per category (candidates of that category only)", ""]
    names = list(metrics["scorers"])
    lines.append("| category | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for cat in first["categories"]:
        lines.append(
            f"| {cat} | "
            + " | ".join(_fmt(metrics["scorers"][n]["categories"][cat]["auc"]) for n in names)
            + " |"
        )
    mw = metrics.get("modality_weights")
    if mw:
        _weights_plot(mw, out / "modality_weights.png")
        lines += [
            "",
            f"## Fusion weights ({mw['fusion']})",
            "",
            "| slice | " + " | ".join(mw["modalities"]) + " |",
        ]
        lines.append("|---|" + "---|" * len(mw["modalities"]))
        for s in ("all", "warm", "cold", "empty_history"):
            if mw.get(s):
                lines.append(f"| {s} | " + " | ".join(_fmt(v) for v in mw[s]) + " |")
        lines += ["", "![fusion weights](modality_weights.png)"]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
