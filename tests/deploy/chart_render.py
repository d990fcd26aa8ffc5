"""Render the Helm chart with the real helm binary (.tools/bin/helm) and parse the objects.

No cluster is involved: these tests check what `helm install` would send to the API
server. helm comes from scripts/install-tools.sh; a missing binary is a failure, not
a skip, because CI installs it before the tests run.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
HELM = ROOT / ".tools" / "bin" / "helm"
CHART = ROOT / "helm" / "newsrec"
CI_VALUES = CHART / "ci"
INVALID_VALUES = CHART / "ci-invalid"
RELEASE = "newsrec"
NAMESPACE = "recs"
KUBE_VERSION = "1.30.0"  # the version kubernetes-validate checks against in scripts/check-deploy.sh

Obj = dict[str, Any]


class RenderError(Exception):
    """helm template exited non-zero; the message is helm's stderr."""


@lru_cache(maxsize=64)
def _render(values_files: tuple[str, ...], sets: tuple[str, ...], release: str) -> tuple[Obj, ...]:
    if not HELM.exists():
        raise RuntimeError(f"{HELM} is missing: run `bash scripts/install-tools.sh` (make tools) first")
    cmd = [
        str(HELM),
        "template",
        RELEASE,
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--kube-version",
        KUBE_VERSION,
    ]
    for f in values_files:
        cmd += ["--values", f]
    for s in sets:
        cmd += ["--set", s]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RenderError(proc.stderr.strip())
    return tuple(doc for doc in yaml.safe_load_all(proc.stdout) if doc)


def render(*values: str | Path, sets: Iterable[str] = (), release: str = RELEASE) -> list[Obj]:
    """Objects of `helm template` with the given values files (names in ci/ or paths) and --set."""
    files = tuple(str(v if Path(v).is_absolute() else CI_VALUES / v) for v in values)
    return list(_render(files, tuple(sets), release))


def by_kind(objs: list[Obj], kind: str) -> list[Obj]:
    return [o for o in objs if o["kind"] == kind]


def named(objs: list[Obj], kind: str, name: str) -> Obj:
    matches = [o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: found {len(matches)}"
    return matches[0]


def env_of(container: Obj) -> dict[str, Any]:
    """Container env as name -> value, or name -> valueFrom dict."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def pod_specs(objs: list[Obj]) -> list[tuple[str, Obj]]:
    """(kind/name, pod spec) of every workload object that runs pods."""
    out = []
    for o in objs:
        name = f"{o['kind']}/{o['metadata']['name']}"
        if o["kind"] in ("Deployment", "Job"):
            out.append((name, o["spec"]["template"]["spec"]))
        elif o["kind"] == "CronJob":
            out.append((name, o["spec"]["jobTemplate"]["spec"]["template"]["spec"]))
    return out


ALL_SCENARIOS = [(), *((p.name,) for p in sorted(CI_VALUES.glob("*-values.yaml")))]
