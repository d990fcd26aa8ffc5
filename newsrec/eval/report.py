"""`report.md` + PNG plots of an evaluation's metrics (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

METRICS = ("auc", "mrr", "ndcg5", "ndcg10")
SLICE_LABELS = {"cold_unclicked": "never clicked in train", "cold_new": "not in train news"}


def _fmt(x: Any) -> str:
    return "n/a" if x is None or x != x else f"{x:.4f}"


def _slices_plot(metrics: dict[str, Any], path: Path) -> None:
    scorers = metrics["scorers"]
    slices = ["overall", "cold_unclicked", "cold_new", "empty_history"]
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.8 / len(scorers)
    for i, (name, m) in enumerate(scorers.items()):
        vals = [m["auc"], *(m[s]["auc"] for s in slices[1:])]
        err = [m.get("auc_se") or 0.0, 0.0, 0.0, 0.0]
        ax.bar(
            [j + i * width for j in range(len(slices))],
            [0 if v is None else v for v in vals],
            width,
            yerr=err,
            capsize=2,
            label=name,
        )
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks([j + width * (len(scorers) - 1) / 2 for j in range(len(slices))], slices)
    ax.set_ylabel("AUC (bars: ±1 SE over impressions)")
    ax.set_ylim(0.4, 1.0)
    ax.legend(fontsize=7, ncol=2)
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


def scorer_lines(metrics: dict[str, Any]) -> list[str]:
    """The markdown table of every scorer (models, then baselines) with slice counts."""
    lines = [
        "| scorer | kind | AUC (±SE) | MRR | nDCG@5 | nDCG@10 | AUC never-clicked (n)"
        " | AUC not-in-train-news (n) | AUC empty history (n) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in metrics["scorers"].items():
        sl = " | ".join(
            f"{_fmt(m[s]['auc'])} ({m[s]['impressions']})"
            for s in ("cold_unclicked", "cold_new", "empty_history")
        )
        lines.append(
            f"| {name} | {m.get('kind', '')} | {_fmt(m['auc'])} ± {_fmt(m.get('auc_se'))} | "
            + " | ".join(_fmt(m[k]) for k in METRICS[1:])
            + f" | {sl} |"
        )
    return lines


def comparison_lines(comparison: dict[str, Any]) -> list[str]:
    """Paired differences of the model rows against the best baseline."""
    best = comparison.get("best_baseline")
    lines = [comparison.get("verdict", ""), ""]
    if not best or not comparison.get("pairs"):
        return lines
    lines += [
        f"| model - {best} | ΔAUC (SE, z) | ΔMRR (SE, z) | ΔnDCG@10 (SE, z) | impressions |",
        "|---|---|---|---|---|",
    ]
    for m, p in comparison["pairs"].items():
        cells = [
            f"{d['diff']:+.4f} ({_fmt(d['se'])}, {d['z']:+.1f})"
            if d["diff"] is not None and d["z"] is not None
            else "n/a"
            for d in (p["auc"], p["mrr"], p["ndcg10"])
        ]
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {p['auc']['n']} |")
    return lines


def write_report(metrics: dict[str, Any], out: Path) -> Path:
    """Write `report.md`, `auc_slices.png` and (attention/gate fusion) `modality_weights.png`."""
    _slices_plot(metrics, out / "auc_slices.png")
    lines = [
        f"# Evaluation of {metrics['model_version']} on {metrics['split']}",
        "",
        f"{metrics['impressions']} labeled impressions. Slices: AUC over each impression's candidates of",
        "the slice only; (n) impressions with a click and a non-click there.",
        "",
        *scorer_lines(metrics),
        "",
        "## Against the best baseline (paired over impressions)",
        "",
        *comparison_lines(metrics.get("comparison", {})),
    ]
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
