"""The pipeline's parameters, declared once.

`PipelineParams` is the single source of:

- the `newsrec pipeline run` and `submit` options (`pipeline_options` generates them),
- the signature of the kfp pipeline function (`pipeline_signature`, read by `@dsl.pipeline`),
- which step receives which parameter (`step_inputs`; also the local cache keys),
- the model version (`version_hash`) and the config recorded in the registry manifest.

Adding a parameter is one field here; the component that reads it takes it as an argument.
See CONTRIBUTING.md, "Adding a pipeline parameter".
"""

from __future__ import annotations

import enum
import hashlib
import inspect
import json
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo


class Hash(enum.Enum):
    """How a parameter enters the model version hash."""

    ALWAYS = "always"  # the parameters the hash was defined with: always part of it
    # Later parameters enter only when set away from their default, so adding one keeps
    # every existing version name (and its cache hits and served collection).
    NON_DEFAULT = "non_default"
    NEVER = "never"  # locations and run switches: they do not change what is built


@dataclass(frozen=True)
class Param:
    """Pipeline metadata of one field (kept in the field's `Annotated` metadata)."""

    steps: dict[str, str] = field(default_factory=dict)  # step -> the component's argument name
    hash: Hash = Hash.NON_DEFAULT
    flag: str = ""  # CLI flag when it is not --field-name
    cluster_only: bool = False  # no meaning on this machine: not an option of `run`
    pipeline_default: Any = None  # the IR's default when it differs (None: the field's default)


DEFAULT_PVC = "newsrec-data"  # the claim helm/newsrec creates (pipelineStorage.enabled)


def _to(*steps: str) -> dict[str, str]:
    return {s: "" for s in steps}  # "" = the argument has the field's name


Fusion = Literal["residual", "attention", "gate", "concat"]  # newsrec.models.towers.Fusion
Provider = Literal["local", "openai"]  # newsrec.embed.config.ProviderConfig.provider
IndexType = Literal["FLAT", "IVF_FLAT", "HNSW", "AUTOINDEX"]  # newsrec.index.milvus.INDEX_TYPES


class PipelineParams(BaseModel):
    """Every parameter of the newsrec training pipeline."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Annotated[
        str,
        Field(description="MIND-format dataset root (train/, dev/): a path or s3://..."),
        Param(_to("ingest"), Hash.NEVER, flag="--data"),
    ]
    milvus_uri: Annotated[
        str,
        Field(description="Milvus URI: a Milvus Lite file, or http://host:19530 for a server"),
        Param(_to("index"), Hash.NEVER),
    ]
    registry_root: Annotated[
        str,
        Field(description="model registry root: a path or s3://bucket/prefix"),
        Param(_to("publish"), Hash.NEVER),
    ]
    model_name: Annotated[
        str,
        Field(min_length=1, description="registry model name"),
        Param(_to("index", "publish"), Hash.ALWAYS),
    ] = "newsrec"
    model_version: Annotated[
        str,
        Field(description="model version ('' = v<hash of data + parameters>)"),
        Param(_to("index", "publish"), Hash.NEVER, pipeline_default="v1"),
    ] = ""
    data_fingerprint: Annotated[
        str,
        Field(description="content hash of the data ('' = computed from --data)"),
        Param(_to("ingest"), Hash.ALWAYS),
    ] = ""
    max_bad_share: Annotated[
        float,
        Field(ge=0.0, le=1.0, description="largest share of bad rows the data may have"),
        Param(_to("ingest"), Hash.NEVER),  # a gate: passing data is copied as it is
    ] = 0.01
    embedding_provider: Annotated[
        Provider,
        Field(description="embedding provider: local | openai"),
        Param({"embed": "provider"}, Hash.ALWAYS),
    ] = "local"
    embedding_model: Annotated[
        str,
        Field(description="embedding model ('' = provider default)"),
        Param({"embed": "model"}, Hash.ALWAYS),
    ] = ""
    embedding_base_url: Annotated[
        str,
        Field(description="OpenAI-compatible base URL ('' = default)"),
        Param({"embed": "base_url"}, Hash.ALWAYS),
    ] = ""
    embedding_dimensions: Annotated[
        int,
        Field(ge=0, description="embedding dimensions (0 = model default)"),
        Param({"embed": "dimensions"}, Hash.ALWAYS),
    ] = 0
    fusion: Annotated[
        Fusion, Field(description="residual | attention | gate | concat"), Param(_to("towers"), Hash.ALWAYS)
    ] = "residual"
    epochs: Annotated[int, Field(ge=1, description="training epochs"), Param(_to("towers"), Hash.ALWAYS)] = 3
    output_dim: Annotated[
        int, Field(ge=1, description="tower output dimension"), Param(_to("towers"), Hash.ALWAYS)
    ] = 256
    max_train_impressions: Annotated[
        int,
        Field(ge=0, description="train on at most this many impressions (0 = all)"),
        Param(_to("towers"), Hash.ALWAYS),
    ] = 0
    seed: Annotated[
        int, Field(ge=0, description="random seed of the training steps"), Param(_to("towers", "ranker"))
    ] = 0
    eval_split: Annotated[
        str, Field(min_length=1, description="split the evaluate step scores"), Param({"evaluate": "split"})
    ] = "dev"
    index_type: Annotated[
        IndexType,
        Field(description="Milvus index: FLAT|IVF_FLAT|HNSW (server)|AUTOINDEX"),
        Param(_to("index"), Hash.ALWAYS),
    ] = "FLAT"
    max_entities: Annotated[
        int, Field(ge=0, description="knowledge-graph entities kept per article"), Param(_to("graph"))
    ] = 8
    set_current: Annotated[
        bool,
        Field(description="make the published version the registry's CURRENT"),
        Param(_to("publish"), Hash.NEVER),
    ] = True
    pvc_name: Annotated[
        str,
        Field(min_length=1, description="claim mounted under --storage pvc"),
        Param(hash=Hash.NEVER, cluster_only=True),  # read by the pipeline's placement, not a step
    ] = DEFAULT_PVC

    def version_hash(self) -> str:
        """`v` + 10 hex of the sha256 of `config_json()`: same parameters, same version."""
        return "v" + hashlib.sha256(self.config_json().encode()).hexdigest()[:10]

    def config_json(self) -> str:
        """What identifies the built model (recorded in the registry manifest)."""
        config: dict[str, Any] = {}
        for name, info in type(self).model_fields.items():
            meta, value = param_meta(info), getattr(self, name)
            if meta.hash is Hash.ALWAYS or (meta.hash is Hash.NON_DEFAULT and value != info.default):
                config[name] = value
        return json.dumps(config, sort_keys=True)

    def arguments(self) -> dict[str, Any]:
        """The pipeline's arguments: every field, the version resolved, and `config_json`."""
        return {
            **self.model_dump(),
            "model_version": self.model_version or self.version_hash(),
            DERIVED_INPUT: self.config_json(),
        }


# Computed from the fields, never set: the config the publish step records in the manifest.
DERIVED_INPUT = "config_json"
DERIVED_STEPS = {"publish": DERIVED_INPUT}


def param_meta(info: FieldInfo) -> Param:
    found = [m for m in info.metadata if isinstance(m, Param)]
    if len(found) != 1:
        raise TypeError(f"a PipelineParams field needs exactly one Param(...), got {found}")
    return found[0]


def _base_type(info: FieldInfo) -> type:
    """The plain type kfp and typer see: a Literal's value type, else the annotation."""
    ann = info.annotation
    if typing.get_origin(ann) is Literal:
        return type(typing.get_args(ann)[0])
    if not isinstance(ann, type):
        raise TypeError(f"{ann}: a pipeline parameter is a str, int, float, bool or a Literal of one")
    return ann


def _default(info: FieldInfo) -> Any:
    return inspect.Parameter.empty if info.is_required() else info.default


# ---------------------------------------------------------------- the kfp signature


_POSITIONAL = inspect.Parameter.POSITIONAL_OR_KEYWORD  # kfp passes the inputs in signature order


def pipeline_signature(return_annotation: Any) -> inspect.Signature:
    """Signature of the pipeline function: every field (required ones first, as kfp's
    input order is the signature's), then `config_json`; names, types, IR defaults."""
    params = []
    for name, info in PipelineParams.model_fields.items():
        meta = param_meta(info)
        default = meta.pipeline_default if meta.pipeline_default is not None else _default(info)
        params.append(inspect.Parameter(name, _POSITIONAL, default=default, annotation=_base_type(info)))
    params.append(inspect.Parameter(DERIVED_INPUT, _POSITIONAL, default="{}", annotation=str))
    params.sort(key=lambda p: p.default is not inspect.Parameter.empty)  # stable: required first
    return inspect.Signature(params, return_annotation=return_annotation)


def step_inputs(step: str, values: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of `step`'s component: {argument: values[field]}."""
    kwargs = {}
    for name, info in PipelineParams.model_fields.items():
        arg = param_meta(info).steps.get(step)
        if arg is not None:
            kwargs[arg or name] = values[name]
    if step in DERIVED_STEPS:
        kwargs[DERIVED_STEPS[step]] = values[DERIVED_INPUT]
    return kwargs


def step_params(step: str) -> tuple[str, ...]:
    """The pipeline parameters `step` reads (part of its local cache key)."""
    names = tuple(n for n, i in PipelineParams.model_fields.items() if step in param_meta(i).steps)
    return (*names, DERIVED_INPUT) if step in DERIVED_STEPS else names


# ---------------------------------------------------------------- the CLI options

F = TypeVar("F", bound=Callable[..., Any])


def _flag(name: str, info: FieldInfo) -> str:
    return param_meta(info).flag or "--" + name.replace("_", "-")


def _option(name: str, info: FieldInfo, default: Any, help_: str | None) -> inspect.Parameter:
    flag = _flag(name, info)
    decls = [f"{flag}/--no-{flag[2:]}"] if info.annotation is bool else [flag]
    option = typer.Option(*decls, help=help_ or info.description, rich_help_panel="Pipeline parameters")
    # typer turns a Literal into a choice (and checks it); kfp sees _base_type instead
    annotation = Annotated[info.annotation, option]  # type: ignore[name-defined]
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def cli_fields(cluster: bool) -> list[str]:
    """The fields that are options of `submit` (cluster) or `run` (this machine)."""
    return [n for n, i in PipelineParams.model_fields.items() if cluster or not param_meta(i).cluster_only]


def pipeline_options(
    *, cluster: bool, overrides: dict[str, tuple[Any, str]] | None = None
) -> Callable[[F], F]:
    """Give a typer command one option per pipeline parameter.

    The command declares its own options plus `params: PipelineParams`; the decorated
    command has the explicit options and the generated ones, builds `PipelineParams` from
    the latter (a bad value is a usage error naming its flag) and passes it as `params`.
    `overrides` maps a field to (default, help) for this command (`run` defaults the
    locations under --out)."""

    def decorate(command: F) -> F:
        sig = inspect.signature(command, eval_str=True)  # the command module's names, resolved
        explicit = [p for p in sig.parameters.values() if p.name != "params"]
        names = cli_fields(cluster)
        generated = []
        for name in names:
            info = PipelineParams.model_fields[name]
            default, help_ = (overrides or {}).get(name, (_default(info), None))
            generated.append(_option(name, info, default, help_))

        def wrapper(**kwargs: Any) -> Any:
            values = {n: kwargs.pop(n) for n in names}
            return command(params=parse(values), **kwargs)

        params = [*explicit, *generated]
        wrapper.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        for attr in ("__module__", "__name__", "__qualname__", "__doc__"):
            setattr(wrapper, attr, getattr(command, attr))
        return typing.cast(F, wrapper)

    return decorate


def parse(values: dict[str, Any]) -> PipelineParams:
    """`PipelineParams(**values)`; a validation error becomes a usage error naming the flag."""
    try:
        return PipelineParams(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        info = PipelineParams.model_fields.get(name)
        hint = _flag(name, info) if info else name
        raise typer.BadParameter(f"{err['input']!r}: {err['msg']}", param_hint=hint) from None
