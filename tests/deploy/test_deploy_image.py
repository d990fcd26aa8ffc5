"""The Dockerfile agrees with the project and the chart (no Docker engine: text checks only)."""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
DOCKERIGNORE = (ROOT / ".dockerignore").read_text().splitlines()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VALUES = yaml.safe_load((ROOT / "helm" / "newsrec" / "values.yaml").read_text())


def _packages() -> list[str]:
    return [p.rstrip("*") for p in PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]]


def test_every_python_package_is_sent_and_copied() -> None:
    for pkg in _packages():
        assert f"!{pkg}/" in DOCKERIGNORE, f".dockerignore does not let {pkg}/ into the build context"
        assert re.search(rf"^COPY {pkg} \./{pkg}$", DOCKERFILE, re.M), f"Dockerfile does not copy {pkg}/"
    # and the files pip needs to build the project
    for name in ("pyproject.toml", "requirements.lock", "README.md"):
        assert f"!{name}" in DOCKERIGNORE


def test_exposed_ports_match_the_chart() -> None:
    exposed = {int(p) for p in re.search(r"^EXPOSE (.+)$", DOCKERFILE, re.M).group(1).split()}  # type: ignore[union-attr]
    assert exposed == set(VALUES["ports"].values())


def test_runtime_is_non_root_offline_and_runs_the_cli() -> None:
    runtime = DOCKERFILE.split("AS runtime", 1)[1]
    assert re.search(r"^USER 10001:10001$", runtime, re.M)
    assert VALUES["podSecurityContext"]["runAsUser"] == 10001
    assert "HF_HUB_OFFLINE=1" in runtime
    assert 'ENTRYPOINT ["newsrec"]' in runtime
    assert PYPROJECT["project"]["scripts"]["newsrec"] == "newsrec.cli:main"


def test_torch_variant_defaults_to_cpu_and_torch_is_pinned_by_the_lock() -> None:
    assert re.search(r"^ARG TORCH_VARIANT=cpu$", DOCKERFILE, re.M)
    assert "download.pytorch.org/whl/${TORCH_VARIANT}" in DOCKERFILE
    lock = (ROOT / "requirements.lock").read_text()
    # the Dockerfile reads the torch pin from the lock
    assert re.search(r"^torch==\d+\.\d+\.\d+$", lock, re.M)


def test_base_image_is_pinned_to_a_patch_release() -> None:
    match = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", DOCKERFILE, re.M)
    assert match
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", match.group(1))


def test_healthcheck_module_exists() -> None:
    assert 'CMD ["python", "-m", "services.healthcheck"]' in DOCKERFILE
    assert callable(importlib.import_module("services.healthcheck").main)
