"""PipelineParams is the one declaration of the pipeline's parameters: the `run` and `submit`
options, the compiled pipeline's inputs, each step's inputs and the version hash all agree
with it. The checks are functions returning their disagreements, so a test can show that
each one catches a broken generator (a field missing from the signature, say)."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, Literal

import pytest
import typer
import yaml
from kfp import compiler
from pydantic import ValidationError
from typer.testing import CliRunner

from pipelines.cli import _params, app
from pipelines.newsrec_pipeline import STEP_DEPS, build_pipeline
from pipelines.params import DERIVED_INPUT, Hash, PipelineParams, cli_fields, param_meta

FIELDS = PipelineParams.model_fields
IR_TYPE = {str: "STRING", int: "NUMBER_INTEGER", float: "NUMBER_DOUBLE", bool: "BOOLEAN"}
STEP_OF_TASK = {
    "ingest-data": "ingest",
    "embed-news": "embed",
    "build-graph": "graph",
    "train-two-tower": "towers",
    "train-ranker": "ranker",
    "evaluate": "evaluate",
    "build-index": "index",
    "publish-model": "publish",
}
# the CLI's inputs as in issue 17: v1e913f0741 is what `_params` gave before PipelineParams
KNOWN = {"data_dir": "/d", "data_fingerprint": "abc", "milvus_uri": "/m", "registry_root": "/r"}


def _plain(info: Any) -> type:
    ann = info.annotation
    return type(typing.get_args(ann)[0]) if typing.get_origin(ann) is Literal else ann


def _ir_default(name: str) -> Any:
    meta = param_meta(FIELDS[name])
    return meta.pipeline_default if meta.pipeline_default is not None else FIELDS[name].default


@pytest.fixture(scope="module")
def ir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("ir") / "pipeline.yaml"
    compiler.Compiler().compile(build_pipeline(for_cluster=True), str(out))
    return next(iter(yaml.safe_load_all(out.read_text())))


# ---------------------------------------------------------------- the checks


def cli_problems(command: Any, cluster: bool, overrides: dict[str, Any]) -> list[str]:
    """Every field (but cluster-only ones on `run`) is an option with the field's default."""
    options = {p.name: p for p in command.params if p.param_type_name == "option"}  # typer vendors click
    problems = []
    for name, info in FIELDS.items():
        expected = cluster or not param_meta(info).cluster_only
        if name not in options:
            problems += [f"{command.name}: no option for {name}"] if expected else []
            continue
        if not expected:
            problems.append(f"{command.name}: cluster-only {name} is an option")
        opt = options[name]
        default = overrides.get(name, None if info.is_required() else info.default)
        if opt.required != (info.is_required() and name not in overrides) or opt.default != default:
            problems.append(f"{command.name} --{name}: default {opt.default!r}, expected {default!r}")
    return problems


def ir_problems(inputs: dict[str, Any]) -> list[str]:
    """Every field (and config_json) is a pipeline input with its type and default."""
    problems = [f"not a field: {n}" for n in inputs if n not in FIELDS and n != DERIVED_INPUT]
    for name, info in FIELDS.items():
        spec = inputs.get(name)
        if spec is None:
            problems.append(f"no pipeline input for {name}")
            continue
        if spec["parameterType"] != IR_TYPE[_plain(info)]:
            problems.append(f"{name}: IR type {spec['parameterType']}")
        if info.is_required():
            if "defaultValue" in spec:
                problems.append(f"{name}: required, but the IR has a default")
        elif spec.get("defaultValue") != _ir_default(name):
            got, want = spec.get("defaultValue"), _ir_default(name)
            problems.append(f"{name}: IR default {got!r}, expected {want!r}")
    return problems


def _other(name: str) -> Any:
    """A valid value of the field other than its default."""
    info = FIELDS[name]
    if typing.get_origin(info.annotation) is Literal:
        return next(v for v in typing.get_args(info.annotation) if v != info.default)
    default = KNOWN.get(name, info.default)
    return {bool: lambda v: not v, int: lambda v: v + 1, float: lambda v: v / 2, str: lambda v: v + "x"}[
        _plain(info)
    ](default)


def hash_problems(version: typing.Callable[[dict[str, Any]], str]) -> list[str]:
    """Changing a field changes the version exactly when the field is declared to feed it."""
    base = version(KNOWN)
    problems = []
    for name, info in FIELDS.items():
        if name == "model_version":  # the version itself: set, it is used as given
            continue
        changed = version({**KNOWN, name: _other(name)}) != base
        if changed != (param_meta(info).hash is not Hash.NEVER):
            problems.append(f"{name}: changing it {'changes' if changed else 'keeps'} the version")
    return problems


def step_problems(tasks: dict[str, Any]) -> list[str]:
    """Each task's parameter inputs are exactly the pipeline inputs its step declares."""
    problems = []
    for task, step in STEP_OF_TASK.items():
        params = tasks[task].get("inputs", {}).get("parameters", {})
        got = {p["componentInputParameter"] for p in params.values() if "componentInputParameter" in p}
        if got != set(STEP_DEPS[step][1]):
            problems.append(f"{task}: reads {sorted(got)}, declared {sorted(STEP_DEPS[step][1])}")
    return problems


# ---------------------------------------------------------------- the tests


def test_every_field_is_an_option_of_run_and_submit_with_its_default() -> None:
    group: Any = typer.main.get_command(app)
    run_overrides = {"milvus_uri": "", "registry_root": ""}  # run defaults them under --out
    assert cli_problems(group.commands["run"], False, run_overrides) == []
    assert cli_problems(group.commands["submit"], True, {}) == []
    assert set(cli_fields(cluster=True)) == set(FIELDS)


def test_every_field_is_a_pipeline_input_with_its_default(ir: dict[str, Any]) -> None:
    assert ir_problems(ir["root"]["inputDefinitions"]["parameters"]) == []


def test_every_step_reads_the_parameters_it_declares(ir: dict[str, Any]) -> None:
    assert step_problems(ir["root"]["dag"]["tasks"]) == []


def test_every_field_but_the_locations_feeds_the_version() -> None:
    assert hash_problems(lambda kw: _params(**kw)["model_version"]) == []


def test_the_checks_catch_a_broken_declaration(ir: dict[str, Any]) -> None:
    """Each check fails when its side drifts from PipelineParams."""
    inputs = dict(ir["root"]["inputDefinitions"]["parameters"])
    del inputs["seed"]  # a field missing from the pipeline signature
    assert ir_problems(inputs) == ["no pipeline input for seed"]
    inputs = {**ir["root"]["inputDefinitions"]["parameters"], "epochs": {"parameterType": "NUMBER_INTEGER"}}
    assert ir_problems(inputs) == ["epochs: IR default None, expected 3"]
    submit = typer.main.get_command(app).commands["submit"]  # type: ignore[attr-defined]
    submit.params = [p for p in submit.params if p.name != "fusion"]
    assert cli_problems(submit, True, {}) == ["submit: no option for fusion"]

    def forgets_seed(kw: dict[str, Any]) -> str:
        return PipelineParams(**{k: v for k, v in kw.items() if k != "seed"}).version_hash()

    assert hash_problems(forgets_seed) == ["seed: changing it keeps the version"]
    tasks = ir["root"]["dag"]["tasks"]
    graph = tasks["build-graph"]
    assert step_problems({**tasks, "build-graph": {**graph, "inputs": {"parameters": {}}}}) == [
        "build-graph: reads [], declared ['max_entities']"
    ]


def test_version_hash_is_pinned() -> None:
    """The hash of the CLI's defaults is what it was before PipelineParams (same inputs,
    same version, so existing registries and caches keep their names)."""
    args = _params(**KNOWN)
    assert args["model_version"] == "v1e913f0741"
    assert args["config_json"] == (
        '{"data_fingerprint": "abc", "embedding_base_url": "", "embedding_dimensions": 0, '
        '"embedding_model": "", "embedding_provider": "local", "epochs": 3, "fusion": "residual", '
        '"index_type": "FLAT", "max_train_impressions": 0, "model_name": "newsrec", "output_dim": 256}'
    )
    assert _params(**KNOWN, model_version="v7")["model_version"] == "v7"  # given: used as is
    assert '"seed": 1' in _params(**KNOWN, seed=1)["config_json"]  # a later field, when set


def test_choices_are_the_library_s() -> None:
    from newsrec.embed.config import ProviderConfig
    from newsrec.index.milvus import INDEX_TYPES
    from newsrec.models.towers import Fusion

    def choices(name: str) -> tuple[Any, ...]:
        return typing.get_args(FIELDS[name].annotation)

    assert choices("fusion") == typing.get_args(Fusion)
    assert choices("index_type") == INDEX_TYPES
    provider = ProviderConfig.model_fields["provider"].annotation
    assert choices("embedding_provider") == typing.get_args(provider)


def test_unknown_or_invalid_parameters_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="bogus"):
        _params(**KNOWN, bogus=1)
    runner = CliRunner()
    for flag, value in (("--epochs", "0"), ("--fusion", "sum"), ("--max-bad-share", "2")):
        res = runner.invoke(app, ["run", "--data", str(tmp_path), "--out", str(tmp_path / "o"), flag, value])
        assert res.exit_code == 2 and flag in res.output, res.output
    assert not (tmp_path / "o").exists()  # refused before anything ran
