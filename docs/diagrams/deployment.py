"""Draw docs/img/deployment.png: what the Helm chart deploys and what it talks to.

.venv/bin/python docs/diagrams/deployment.py [--out docs/img/deployment.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

CHART = "#dbeafe"  # objects the chart renders
EXTERNAL = "#f3f4f6"  # things the chart points at
OPTIONAL = "#fef3c7"  # rendered only when enabled
EDGE = "#374151"


def box(
    ax: Axes, x: float, y: float, w: float, h: float, text: str, color: str, dashed: bool = False
) -> None:
    """A rounded box with centred text; (x, y) is the lower-left corner."""
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.12",
            facecolor=color,
            edgecolor=EDGE,
            linewidth=1.2,
            linestyle="--" if dashed else "-",
        )
    )
    ax.text(x + w / 2, y + h / 2, text, ha="center", va="center", fontsize=8.5, wrap=True)


def arrow(
    ax: Axes, start: tuple[float, float], end: tuple[float, float], label: str = "", dashed: bool = False
) -> None:
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=12,
            color=EDGE,
            linewidth=1.1,
            linestyle="--" if dashed else "-",
            shrinkA=2,
            shrinkB=2,
        )
    )
    if label:
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        ax.text(mx, my + 0.12, label, ha="center", va="bottom", fontsize=7.5, color="#1f2937")


def draw(out: Path) -> None:
    """Render the diagram to `out` (PNG)."""
    fig, ax = plt.subplots(figsize=(13, 8.2))
    ax.set_xlim(0, 13)
    ax.set_ylim(0, 8.2)
    ax.axis("off")
    ax.set_title("newsrec on Kubernetes: the Helm chart helm/newsrec", fontsize=13, weight="bold")

    # Entry.
    box(ax, 0.2, 5.6, 1.6, 0.9, "client\n(gRPC)", EXTERNAL)
    box(ax, 2.3, 5.6, 1.9, 0.9, "Ingress (gRPC)\nor Istio VirtualService\n(optional)", OPTIONAL, dashed=True)
    box(ax, 4.7, 5.5, 2.2, 1.1, "gateway\nDeployment + Service\n(ClusterIP :50051)\nHPA, PDB", CHART)
    arrow(ax, (1.8, 6.05), (2.3, 6.05))
    arrow(ax, (4.2, 6.05), (4.7, 6.05))
    ax.text(
        5.8,
        6.75,
        "ConfigMap: variants, weights, dns:/// targets\n(its checksum on the pods rolls them)",
        ha="center",
        fontsize=7.5,
    )

    # Variants.
    for i, (name, version, weight) in enumerate((("a", "v1", 90), ("b", "v2", 10))):
        y0 = 3.0 - i * 2.55
        ax.add_patch(
            FancyBboxPatch(
                (7.5, y0 - 0.15),
                3.3,
                2.25,
                boxstyle="round,pad=0.02",
                facecolor="none",
                edgecolor="#6b7280",
                linestyle=":",
            )
        )
        ax.text(
            9.15, y0 + 1.95, f"variant {name}: model {version}, {weight}% of users", ha="center", fontsize=8.5
        )
        for j, (comp, port) in enumerate((("user-encoder", 50052), ("retrieval", 50053), ("ranker", 50054))):
            box(ax, 7.65, y0 + 1.3 - j * 0.65, 3.0, 0.5, f"{name}-{comp} :{port} (headless)", CHART)
        arrow(ax, (6.9, 5.6), (7.6, y0 + 1.0), label=f"{weight}%" if i == 0 else f"{weight}%")

    # Backends.
    box(ax, 11.2, 4.9, 1.6, 0.8, "Redis: user-vector\ncache (in-chart\nor external URL)", EXTERNAL)
    box(ax, 11.2, 3.6, 1.6, 0.8, "Milvus: news\nvectors (ANN)\n(its Helm chart)", EXTERNAL)
    box(ax, 11.2, 2.3, 1.6, 0.8, "model registry\n(PVC, read-only)", EXTERNAL)
    box(ax, 11.2, 1.0, 1.6, 0.8, "Secret\nOPENAI_API_KEY", EXTERNAL)
    arrow(ax, (10.65, 4.55), (11.2, 5.2))
    arrow(ax, (10.65, 3.9), (11.2, 3.95))
    arrow(ax, (10.8, 2.75), (11.2, 2.7))
    arrow(ax, (11.2, 1.4), (10.65, 1.35), dashed=True)

    # Monitoring and pipeline.
    box(ax, 0.2, 3.4, 2.4, 1.0, "Prometheus\nServiceMonitor :9100/metrics\n(optional)", OPTIONAL, dashed=True)
    arrow(ax, (2.6, 3.9), (4.7, 5.6), label="scrape", dashed=True)
    box(
        ax,
        0.2,
        1.2,
        2.4,
        1.2,
        "pipeline-submit\nJob / CronJob (optional)\nnewsrec pipeline submit",
        OPTIONAL,
        dashed=True,
    )
    box(
        ax,
        3.3,
        1.0,
        3.0,
        1.6,
        "Kubeflow Pipelines\ntraining run: embeddings, GNN,\ntowers, ranker, eval;\n"
        "writes model versions to the\nregistry and vectors to Milvus",
        EXTERNAL,
    )
    arrow(ax, (2.6, 1.8), (3.3, 1.8), label="submit")

    # Legend.
    for k, (color, text) in enumerate(
        (
            (CHART, "rendered by the chart"),
            (OPTIONAL, "rendered when enabled"),
            (EXTERNAL, "outside the chart"),
        )
    ):
        box(ax, 0.2 + k * 2.3, 7.35, 0.35, 0.3, "", color)
        ax.text(0.65 + k * 2.3, 7.5, text, va="center", fontsize=8)
    ax.text(
        6.6,
        0.15,
        "NetworkPolicy: only the gateway accepts traffic from outside the release; "
        "every pod runs as uid 10001, read-only root, gRPC probes.",
        ha="center",
        fontsize=7.5,
        style="italic",
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "img" / "deployment.png"
    )
    args = parser.parse_args()
    draw(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
