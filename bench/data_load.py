"""Benchmark: load a MIND-small-scale dataset with newsrec.data.load_dataset.

    .venv/bin/python bench/data_load.py [--root DIR] [--repeats 3] [--size small]

Generates `synth --size small --seed 7` into bench/out/synth-small-seed7 unless it is
there (or --root names a dataset). Each measurement runs in a fresh subprocess so its
peak RSS is its own. The baseline, measured in the same run, is the least any reader
must do: read the two files of each split and split every line into fields and ids.
Prints medians and the ratio, and writes bench/out/data_load.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"

_LOAD = """
import json, resource, time
t = time.perf_counter(); c = time.process_time()
from newsrec.data import load_dataset, first_seen
ds = load_dataset({root!r})
load_s, load_cpu = time.perf_counter() - t, time.process_time() - c
t = time.perf_counter(); c = time.process_time(); seen = first_seen(ds)
fs, fs_cpu = time.perf_counter() - t, time.process_time() - c
print(json.dumps({{"seconds": load_s, "cpu": load_cpu, "first_seen_seconds": fs, "first_seen_cpu": fs_cpu,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "news": {{k: len(v.news) for k, v in ds.items()}},
    "impressions": {{k: len(v.impressions) for k, v in ds.items()}},
    "history_ids": sum(len(i.history) for v in ds.values() for i in v.impressions),
    "candidates": sum(len(i.candidates) for v in ds.values() for i in v.impressions),
    "bad_rows": sum(len(v.bad_rows) for v in ds.values())}}))
"""

_BASELINE = """
import json, resource, time
from pathlib import Path
t = time.perf_counter(); c = time.process_time()
kept = []
for split in sorted(Path({root!r}).iterdir()):
    if not (split / "news.tsv").is_file():
        continue
    kept.append([line.split("\\t") for line in (split / "news.tsv").read_text("utf-8").split("\\n")])
    lines = (split / "behaviors.tsv").read_text("utf-8").split("\\n")
    kept.append([[f.split(" ") for f in line.split("\\t")] for line in lines])
print(json.dumps({{"seconds": time.perf_counter() - t, "cpu": time.process_time() - c,
    "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


_CALIBRATE = """
import json, time
c = time.process_time(); sum(range(10**8)); print(json.dumps({"seconds": time.process_time() - c}))
"""


def _run(code: str) -> dict[str, float]:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", type=Path, default=None, help="dataset to load (default: generated synthetic)")
    ap.add_argument("--size", default="small", help="synthetic size to generate when --root is not given")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    result: dict[str, object] = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    root = args.root
    if root is None:
        root = OUT / f"synth-{args.size}-seed7"
        if not (root / "dev" / "behaviors.tsv").is_file():
            from newsrec.data.synth import generate

            c = time.process_time()
            summary = generate(args.size, 7, root, progress=True)
            result["synth"] = summary.to_dict() | {"cpu_seconds": round(time.process_time() - c, 2)}
            print(f"generated {args.size} in {summary.seconds:.1f} s: {summary.to_dict()}")
    result["root"] = str(root)

    loads, bases, cals = [], [], []
    for i in range(args.repeats):
        # CPU seconds of a fixed pure-Python loop: how fast this core is right now
        # (about 1 s on an idle modern core); scale the other figures by it.
        cals.append(_run(_CALIBRATE))
        bases.append(_run(_BASELINE.format(root=str(root))))
        loads.append(_run(_LOAD.format(root=str(root))))
        cal, ld, bs = cals[-1], loads[-1], bases[-1]
        print(
            f"run {i + 1}: calibration {cal['seconds']:.2f} s; load {ld['seconds']:.2f} s "
            f"(cpu {ld['cpu']:.2f}), peak RSS {ld['rss_mb']:.0f} MB; "
            f"baseline {bs['seconds']:.2f} s (cpu {bs['cpu']:.2f})"
        )

    def med(rows: list[dict[str, float]], key: str) -> float:
        return round(statistics.median(r[key] for r in rows), 3)

    result["calibration_cpu_seconds"] = med(cals, "seconds")
    keys = ("seconds", "cpu", "rss_mb", "first_seen_seconds", "first_seen_cpu")
    result["load"] = {k: med(loads, k) for k in keys}
    result["baseline"] = {k: med(bases, k) for k in ("seconds", "cpu", "rss_mb")}
    result["ratio_load_to_baseline"] = round(result["load"]["seconds"] / result["baseline"]["seconds"], 2)  # type: ignore[index]
    result["cpu_ratio_load_to_baseline"] = round(result["load"]["cpu"] / result["baseline"]["cpu"], 2)  # type: ignore[index]
    result["data"] = {
        k: loads[0][k] for k in ("news", "impressions", "history_ids", "candidates", "bad_rows")
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "data_load.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
