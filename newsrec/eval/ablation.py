"""The ablation: which modality and which fusion helps, and by how much.

Runs (same data load, seed and settings for all):
  id, id+gnn, id+llm, id+llm+gnn (residual fusion: ID + gated content corrections),
  fusion-attention, fusion-gate, fusion-concat (full model), ranker (on the best full model),
  and the baselines of `newsrec.eval.baselines` (popularity, recency-weighted popularity,
  item-kNN, co-click factorisation, text-kNN) on the same impressions.
`comparison` holds every model row's paired per-impression differences against the
best baseline (mean, SE, z), and a one-line verdict. Strict JSON (no NaN).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from pydantic import BaseModel, ConfigDict, Field  # noqa: E402

from newsrec.data.types import MindSplit  # noqa: E402
from newsrec.eval.baselines import BASELINES  # noqa: E402
from newsrec.eval.evaluate import PER_IMPRESSION, EvalConfig, evaluate_run, load_values  # noqa: E402
from newsrec.eval.paired import compare_to_best, paired_diff, write_json  # noqa: E402
from newsrec.eval.report import comparison_lines  # noqa: E402
from newsrec.models.towers import ModelConfig  # noqa: E402
from newsrec.train.config import RankerConfig, TrainConfig  # noqa: E402
from newsrec.train.prepare import load_inputs  # noqa: E402
from newsrec.train.ranker import train_ranker  # noqa: E402
from newsrec.train.two_tower import train_two_tower  # noqa: E402

# name -> (use_id, use_llm, use_gnn, fusion)
VARIANTS: dict[str, tuple[bool, bool, bool, str]] = {
    "id": (True, False, False, "residual"),
    "id+gnn": (True, False, True, "residual"),
    "id+llm": (True, True, False, "residual"),
    "id+llm+gnn": (True, True, True, "residual"),
    "fusion-attention": (True, True, True, "attention"),
    "fusion-gate": (True, True, True, "gate"),
    "fusion-concat": (True, True, True, "concat"),
}
FULL = ("id+llm+gnn", "fusion-attention", "fusion-gate", "fusion-concat")
FUSION_PARTS = ("id", "id+llm")  # what the full model must not fall below (fusion_check)


class AblationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: Path
    embeddings: Path | None  # only the id / id+gnn variants can do without
    out: Path
    epochs: int = Field(default=3, ge=1)
    output_dim: int = Field(default=64, ge=8)
    batch_size: int = Field(default=256, ge=2)
    seed: int = 0
    max_train_impressions: int | None = Field(default=None, ge=1)
    max_dev_impressions: int | None = Field(default=10000, ge=1)  # early-stopping subsample
    eval_impressions: int | None = Field(default=20000, ge=1)
    variants: tuple[str, ...] = tuple(VARIANTS)
    progress: bool = True


def _row(
    name: str, scorer: dict[str, Any], retrieval: dict[str, Any] | None, eval_dir: Path, source: str
) -> dict[str, Any]:
    """One table row; `values` points at the per-impression metrics (paired differences)."""
    return {
        "name": name,
        "kind": "baseline" if name in BASELINES else "model",
        "auc": scorer["auc"],
        "auc_se": scorer.get("auc_se"),
        "mrr": scorer["mrr"],
        "ndcg5": scorer["ndcg5"],
        "ndcg10": scorer["ndcg10"],
        "cold_unclicked_auc": scorer["cold_unclicked"]["auc"],
        "cold_unclicked_n": scorer["cold_unclicked"]["impressions"],
        "cold_new_auc": scorer["cold_new"]["auc"],
        "cold_new_n": scorer["cold_new"]["impressions"],
        "empty_history_auc": scorer["empty_history"]["auc"],
        "recall50": None if retrieval is None else retrieval["recall50"],
        "values": {"file": str(eval_dir / PER_IMPRESSION), "scorer": source},
    }


ORDER = (*VARIANTS, "ranker", *BASELINES)


def _settings(config: AblationConfig) -> dict[str, Any]:
    """What must match for two invocations' rows to share one table."""
    return config.model_dump(mode="json", exclude={"out", "variants", "progress", "embeddings"})


def _previous_rows(out: Path, config: AblationConfig) -> list[dict[str, Any]]:
    """Rows of an earlier invocation into the same OUT with the same settings (resume,
    or run the variants in several processes); a settings mismatch is an error."""
    path = out / "ablation.json"
    if not path.is_file():
        return []
    old = json.loads(path.read_text())
    if old.get("settings") != _settings(config):
        raise ValueError(f"{path}: written with other settings {old.get('settings')}; use another --out")
    ranker_again = set(FULL) & set(config.variants) or "ranker" in config.variants
    rerun = set(config.variants) | ({"ranker", *BASELINES} if ranker_again else set())
    return [r for r in old.get("runs", []) if r["name"] not in rerun]


def run_ablation(config: AblationConfig) -> dict[str, Any]:
    """Train + evaluate every variant; write `ablation.json`, `ablation.md`, `ablation.png`.
    Rows of an earlier run into the same OUT with the same settings are kept."""
    unknown = set(config.variants) - set(VARIANTS) - {"ranker"}
    if unknown:
        raise ValueError(f"unknown ablation variants {sorted(unknown)}; choose from {[*VARIANTS, 'ranker']}")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = _settings(config)
    rows: list[dict[str, Any]] = _previous_rows(out, config)
    if config.embeddings is None and any(VARIANTS[v][1] for v in config.variants):
        raise ValueError("variants with the llm modality need embeddings")
    inputs = load_inputs(config.data, config.embeddings)
    evals: dict[str, dict[str, Any]] = {}
    for name in (v for v in config.variants if v in VARIANTS):
        use_id, use_llm, use_gnn, fusion = VARIANTS[name]
        mcfg = ModelConfig(
            output_dim=config.output_dim,
            use_id=use_id,
            use_llm=use_llm,
            use_gnn=use_gnn,
            fusion=fusion,  # type: ignore[arg-type]
        )
        run_dir = out / "runs" / name
        train_two_tower(
            TrainConfig(
                data=config.data,
                embeddings=config.embeddings,
                out=run_dir,
                model=mcfg,
                epochs=config.epochs,
                batch_size=config.batch_size,
                seed=config.seed,
                max_train_impressions=config.max_train_impressions,
                max_dev_impressions=config.max_dev_impressions,
                progress=config.progress,
            ),
            inputs,
        )
        evals[name] = _evaluate(config, run_dir, "eval", inputs.splits)
        ev_dir = run_dir / "eval"
        rows.append(
            _row(name, evals[name]["scorers"]["two_tower"], evals[name]["retrieval"], ev_dir, "two_tower")
        )
        _save(out, rows, settings)
    best = _ranker_base(out, rows, evals, "ranker" in config.variants)
    if best is not None:
        run_dir = out / "runs" / best
        train_ranker(RankerConfig(run=run_dir, data=config.data, seed=config.seed), inputs.splits)
        ev = _evaluate(config, run_dir, "eval-ranker", inputs.splits)
        ev_dir = run_dir / "eval-ranker"
        rows.append(
            {**_row("ranker", ev["scorers"]["ranker"], ev["retrieval"], ev_dir, "ranker"), "base": best}
        )
        rows.extend(_row(b, ev["scorers"][b], None, ev_dir, b) for b in BASELINES if b in ev["scorers"])
    return _save(out, rows, settings)


def _ranker_base(
    out: Path, rows: list[dict[str, Any]], evals: dict[str, dict[str, Any]], asked: bool
) -> str | None:
    """The full-model run the ranker is trained on: the best by AUC among the full variants
    trained now, or, with `--variant ranker` alone, among those an earlier invocation left
    in OUT (so the ranker can be retrained without retraining the towers)."""
    auc = {n: e["scorers"]["two_tower"]["auc"] for n, e in evals.items() if n in FULL}
    if not auc and asked:
        auc = {r["name"]: r["auc"] for r in rows if r["name"] in FULL and (out / "runs" / r["name"]).is_dir()}
        if not auc:
            raise ValueError(f"--variant ranker: no full-model run in {out}; run one of {list(FULL)} first")
    return max(auc, key=lambda n: auc[n]) if auc else None


def _evaluate(
    config: AblationConfig, run_dir: Path, out_name: str, splits: dict[str, MindSplit]
) -> dict[str, Any]:
    """Evaluate `run_dir` into `run_dir/out_name` with the ablation's shared settings."""
    return evaluate_run(
        EvalConfig(
            run=run_dir,
            data=config.data,
            out=run_dir / out_name,
            max_impressions=config.eval_impressions,
            seed=config.seed,
            progress=config.progress,
        ),
        splits,
    )


def _comparison(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Paired differences of every model row against the best baseline row, from the
    per-impression metrics each row's evaluation saved (same seed: same impressions)."""
    values: dict[str, dict[str, Any]] = {}
    for r in rows:
        ref = r.get("values") or {}
        v = load_values(Path(ref["file"]), ref["scorer"]) if ref else None
        if v is not None:
            values[r["name"]] = v
    lens = {len(next(iter(v.values()))) for v in values.values()}
    if len(lens) > 1:  # evaluated on different samples: no pairing
        return {"best_baseline": None, "pairs": {}, "verdict": "rows scored different impressions"}
    means = {r["name"]: r["auc"] for r in rows if r["name"] in values}
    models = [r["name"] for r in rows if r.get("kind", "model") == "model"]
    result = compare_to_best(values, means, models, [r["name"] for r in rows if r.get("kind") == "baseline"])
    return {**result, "fusion_check": fusion_check(values, means)}


def fusion_check(values: dict[str, dict[str, Any]], means: dict[str, float | None]) -> dict[str, Any] | None:
    """Does the full model keep what its parts have? Paired AUC of `id+llm+gnn` against
    the better of `id` and `id+llm` (issue 16: it must not trail by more than 1 SE), and
    the ranker's MRR against the towers it ranks for (it must not fall below)."""
    parts = [p for p in FUSION_PARTS if means.get(p) is not None and p in values]
    if "id+llm+gnn" not in values or not parts:
        return None
    best = max(parts, key=lambda p: float(means[p] or 0.0))
    d = paired_diff(values["id+llm+gnn"]["auc"], values[best]["auc"])
    holds = d["diff"] is not None and d["diff"] >= -(d["se"] or 0.0)
    out: dict[str, Any] = {"full": "id+llm+gnn", "best_part": best, "auc": d, "holds": holds}
    if "ranker" in values:
        out["ranker_vs_full_mrr"] = paired_diff(values["ranker"]["mrr"], values["id+llm+gnn"]["mrr"])
    return out


def _save(out: Path, rows: list[dict[str, Any]], settings: dict[str, Any]) -> dict[str, Any]:
    rows.sort(key=lambda r: ORDER.index(r["name"]) if r["name"] in ORDER else len(ORDER))
    comparison = _comparison(rows)
    result: dict[str, Any] = {"runs": rows, "settings": settings, "comparison": comparison}
    write_json(out / "ablation.json", result)
    lines = [
        "| run | kind | AUC ± SE | MRR | nDCG@5 | nDCG@10 | AUC never-clicked (n) | AUC not-in-train-news (n)"
        " | empty-history AUC | Recall@50 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cells = [
            f"{_f(r['auc'])} ± {_f(r.get('auc_se'))}",
            *(_f(r.get(k)) for k in ("mrr", "ndcg5", "ndcg10")),
            f"{_f(r.get('cold_unclicked_auc'))} ({r.get('cold_unclicked_n', 0)})",
            f"{_f(r.get('cold_new_auc'))} ({r.get('cold_new_n', 0)})",
            _f(r.get("empty_history_auc")),
            _f(r.get("recall50")),
        ]
        lines.append(f"| {r['name']} | {r.get('kind', 'model')} | " + " | ".join(cells) + " |")
    lines += ["", *comparison_lines(comparison), *_fusion_lines(comparison.get("fusion_check"))]
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    _plot(out / "ablation.png", rows)
    return result


def _fusion_lines(check: dict[str, Any] | None) -> list[str]:
    if not check:
        return []
    d = check["auc"]
    se = "n/a" if d["se"] is None else f"{d['se']:.4f}"
    word = "holds" if check["holds"] else "FAILS"
    lines = [
        "",
        f"fusion check ({word}): {check['full']} - {check['best_part']} ΔAUC {d['diff']:+.4f} (SE {se}, "
        f"n {d['n']}); must not trail by more than 1 SE",
    ]
    r = check.get("ranker_vs_full_mrr")
    if r and r["diff"] is not None:
        lines.append(f"ranker - {check['full']} ΔMRR {r['diff']:+.4f} (SE {r['se'] or 0:.4f})")
    return lines


def _f(v: Any) -> str:
    return "–" if v is None else f"{v:.4f}"


def _plot(path: Path, rows: list[dict[str, Any]]) -> None:
    """AUC (±1 SE) and never-clicked AUC per row; baselines hatched."""
    fig, ax = plt.subplots(figsize=(max(8, 0.7 * len(rows)), 3.8))
    x = range(len(rows))
    hatch = ["//" if r.get("kind") == "baseline" else "" for r in rows]
    bars = ax.bar(
        [i - 0.2 for i in x],
        [r["auc"] or 0.0 for r in rows],
        0.4,
        yerr=[r.get("auc_se") or 0.0 for r in rows],
        capsize=2,
        label="dev AUC (±1 SE)",
    )
    for b, h in zip(bars, hatch, strict=True):
        b.set_hatch(h)
    ax.bar(
        [i + 0.2 for i in x],
        [r.get("cold_unclicked_auc") or 0.0 for r in rows],
        0.4,
        label="never-clicked AUC",
    )
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_xticks(list(x), [r["name"] for r in rows], rotation=25, fontsize=8)
    ax.set_ylim(0.4, max([0.8] + [(r["auc"] or 0) + 0.05 for r in rows]))
    ax.legend(fontsize=8)
    ax.set_title("ablation on dev (hatched: baselines)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def merge_ablations(sources: list[Path], out: Path) -> dict[str, Any]:
    """One table from `ablation` outputs of the same settings run in several processes
    (`--variant` splits the work over cores); later sources win for a repeated name."""
    rows: dict[str, dict[str, Any]] = {}
    settings: dict[str, Any] | None = None
    for src in sources:
        data = json.loads((Path(src) / "ablation.json").read_text())
        if settings is not None and data["settings"] != settings:
            raise ValueError(f"{src}/ablation.json: other settings than {sources[0]} ({data['settings']})")
        settings = data["settings"]
        rows.update({r["name"]: r for r in data["runs"]})
    if settings is None:
        raise ValueError("merge_ablations: no sources")
    Path(out).mkdir(parents=True, exist_ok=True)
    return _save(Path(out), list(rows.values()), settings)
