"""Split rendered Helm output for validation, and validate the CRD objects ourselves.

kubernetes-validate knows only built-in kinds; for the custom resources the chart
renders (prometheus-operator ServiceMonitor and PrometheusRule, Istio VirtualService and
DestinationRule)
this script applies its own JSON schemas, written from the fields of the upstream
CRDs that the chart uses (strict: unknown fields fail), plus cross-object checks
(every routed subset exists, route weights sum to 100). Built-in objects are written
to OUT_DIR for `kubernetes-validate --strict`. Every document is also checked for
duplicate mapping keys, which YAML loaders otherwise accept silently (last wins).

    python scripts/deploy/check_manifests.py OUT_DIR rendered1.yaml [rendered2.yaml ...]

Exit status 1 with one line per problem, naming the file and object.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

_STR = {"type": "string", "minLength": 1}
_STRS = {"type": "array", "items": _STR}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"matchLabels": _LABELS, "matchExpressions": {"type": "array"}},
}
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {"name": _STR, "labels": _LABELS, "annotations": _LABELS},
}
_DURATION = {"type": "string", "pattern": r"^[0-9]+(ms|s|m|h)$"}


def _closed(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
        "required": list(required),
    }


def _resource(api_version: str, kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    return _closed(
        {"apiVersion": {"const": api_version}, "kind": {"const": kind}, "metadata": _METADATA, "spec": spec},
        ("apiVersion", "kind", "metadata", "spec"),
    )


# monitoring.coreos.com/v1 ServiceMonitor (prometheus-operator), the fields the chart uses.
SERVICE_MONITOR = _resource(
    "monitoring.coreos.com/v1",
    "ServiceMonitor",
    _closed(
        {
            "selector": _SELECTOR,
            "namespaceSelector": _closed({"matchNames": _STRS, "any": {"type": "boolean"}}),
            "endpoints": {
                "type": "array",
                "minItems": 1,
                "items": _closed(
                    {
                        "port": _STR,
                        "path": {"type": "string", "pattern": "^/"},
                        "interval": _DURATION,
                        "scrapeTimeout": _DURATION,
                        "relabelings": {
                            "type": "array",
                            "items": _closed(
                                {
                                    "sourceLabels": _STRS,
                                    "targetLabel": _STR,
                                    "action": _STR,
                                    "regex": {"type": "string"},
                                    "replacement": {"type": "string"},
                                }
                            ),
                        },
                    },
                    ("port",),
                ),
            },
        },
        ("selector", "endpoints"),
    ),
)

_PORT = _closed({"number": {"type": "integer", "minimum": 1, "maximum": 65535}}, ("number",))
_DESTINATION = _closed({"host": _STR, "subset": _STR, "port": _PORT}, ("host",))
_STRING_MATCH = {
    "type": "object",
    "minProperties": 1,
    "maxProperties": 1,
    "additionalProperties": False,
    "properties": {"exact": {"type": "string"}, "prefix": {"type": "string"}, "regex": {"type": "string"}},
}

# networking.istio.io/v1 VirtualService, HTTP routes only.
VIRTUAL_SERVICE = _resource(
    "networking.istio.io/v1",
    "VirtualService",
    _closed(
        {
            "hosts": {"type": "array", "minItems": 1, "items": _STR},
            "gateways": _STRS,
            "http": {
                "type": "array",
                "minItems": 1,
                "items": _closed(
                    {
                        "name": _STR,
                        "match": {
                            "type": "array",
                            "items": _closed(
                                {"headers": {"type": "object", "additionalProperties": _STRING_MATCH}}
                            ),
                        },
                        "route": {
                            "type": "array",
                            "minItems": 1,
                            "items": _closed(
                                {
                                    "destination": _DESTINATION,
                                    "weight": {"type": "integer", "minimum": 0, "maximum": 100},
                                },
                                ("destination",),
                            ),
                        },
                    },
                    ("route",),
                ),
            },
        },
        ("hosts", "http"),
    ),
)

# networking.istio.io/v1 DestinationRule.
DESTINATION_RULE = _resource(
    "networking.istio.io/v1",
    "DestinationRule",
    _closed(
        {
            "host": _STR,
            "trafficPolicy": _closed(
                {
                    "loadBalancer": _closed(
                        {
                            "simple": {
                                "enum": [
                                    "UNSPECIFIED",
                                    "LEAST_CONN",
                                    "RANDOM",
                                    "PASSTHROUGH",
                                    "ROUND_ROBIN",
                                    "LEAST_REQUEST",
                                ]
                            }
                        }
                    ),
                    "connectionPool": _closed(
                        {
                            "http": _closed(
                                {
                                    "http2MaxRequests": {"type": "integer", "minimum": 1},
                                    "maxRequestsPerConnection": {"type": "integer", "minimum": 0},
                                    "http1MaxPendingRequests": {"type": "integer", "minimum": 1},
                                }
                            )
                        }
                    ),
                    "outlierDetection": _closed(
                        {
                            "consecutive5xxErrors": {"type": "integer", "minimum": 0},
                            "interval": _DURATION,
                            "baseEjectionTime": _DURATION,
                            "maxEjectionPercent": {"type": "integer", "minimum": 0, "maximum": 100},
                        }
                    ),
                }
            ),
            "subsets": {
                "type": "array",
                "items": _closed({"name": _STR, "labels": _LABELS}, ("name", "labels")),
            },
        },
        ("host",),
    ),
)

# Prometheus durations as the PrometheusRule CRD's pattern allows them ("5m", "1h30m", "0").
_PROM_DURATION = {
    "type": "string",
    "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$",
}
_ALERT_ONLY = ("alert", "for", "keep_firing_for", "annotations")
_RULE = {
    **_closed(
        {
            "record": {"type": "string", "pattern": "^[a-zA-Z_:][a-zA-Z0-9_:]*$"},
            "alert": {"type": "string", "pattern": "^[a-zA-Z_][a-zA-Z0-9_]*$"},
            "expr": _STR,
            "for": _PROM_DURATION,
            "keep_firing_for": _PROM_DURATION,
            "labels": _LABELS,
            "annotations": _LABELS,
        },
        ("expr",),
    ),
    # exactly one of record / alert; a recording rule has no `for` and no annotations
    "oneOf": [
        {"required": ["record"], "not": {"anyOf": [{"required": [k]} for k in _ALERT_ONLY]}},
        {"required": ["alert"], "not": {"required": ["record"]}},
    ],
}

# monitoring.coreos.com/v1 PrometheusRule, the fields of the upstream CRD's rule groups.
PROMETHEUS_RULE = _resource(
    "monitoring.coreos.com/v1",
    "PrometheusRule",
    _closed(
        {
            "groups": {
                "type": "array",
                "minItems": 1,
                "items": _closed(
                    {
                        "name": _STR,
                        "interval": _PROM_DURATION,
                        "query_offset": _PROM_DURATION,
                        "limit": {"type": "integer", "minimum": 0},
                        "partial_response_strategy": {"type": "string", "pattern": "^([Aa]bort|[Ww]arn)?$"},
                        "labels": _LABELS,
                        "rules": {"type": "array", "minItems": 1, "items": _RULE},
                    },
                    ("name", "rules"),
                ),
            }
        },
        ("groups",),
    ),
)

CRD_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
    ("networking.istio.io/v1", "VirtualService"): VIRTUAL_SERVICE,
    ("networking.istio.io/v1", "DestinationRule"): DESTINATION_RULE,
}
CRD_GROUPS = ("monitoring.coreos.com/", "networking.istio.io/")


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a mapping with the same key twice."""


def _construct_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_documents(path: Path) -> list[dict[str, Any]]:
    """All non-empty YAML documents of a rendered file; duplicate keys are errors."""
    return [doc for doc in yaml.load_all(path.read_text(), Loader=_UniqueKeyLoader) if doc]


def _where(path: Path, doc: dict[str, Any]) -> str:
    return f"{path}: {doc.get('kind')}/{doc.get('metadata', {}).get('name')}"


def check_crd(path: Path, doc: dict[str, Any]) -> list[str]:
    """Schema problems of one custom resource (unknown kinds of a CRD group are problems too)."""
    schema = CRD_SCHEMAS.get((doc.get("apiVersion", ""), doc.get("kind", "")))
    if schema is None:
        return [
            f"{_where(path, doc)}: no schema for {doc.get('apiVersion')} {doc.get('kind')} in this checker"
        ]
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{_where(path, doc)}: {'.'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
        for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    ]


def check_istio_routes(path: Path, docs: list[dict[str, Any]]) -> list[str]:
    """Every routed subset is defined by a DestinationRule; weighted routes sum to 100."""
    problems: list[str] = []
    subsets = {
        (d["spec"]["host"], s["name"])
        for d in docs
        if d.get("kind") == "DestinationRule"
        for s in d["spec"].get("subsets", [])
    }
    for vs in (d for d in docs if d.get("kind") == "VirtualService"):
        for route in vs["spec"].get("http", []):
            dests = route.get("route", [])
            for dest in dests:
                key = (dest["destination"]["host"], dest["destination"].get("subset"))
                if key[1] is not None and key not in subsets:
                    problems.append(
                        f"{_where(path, vs)}: route {route.get('name')} uses undefined subset {key}"
                    )
            if len(dests) > 1 and sum(d.get("weight", 0) for d in dests) != 100:
                problems.append(f"{_where(path, vs)}: route {route.get('name')} weights do not sum to 100")
    return problems


def check_rule_groups(path: Path, docs: list[dict[str, Any]]) -> list[str]:
    """Group names are unique per PrometheusRule (Prometheus refuses a duplicate), and so
    are alert names within a group."""
    problems: list[str] = []
    for rule in (d for d in docs if d.get("kind") == "PrometheusRule"):
        names = [g.get("name") for g in rule["spec"].get("groups", [])]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            problems.append(f"{_where(path, rule)}: group {dup!r} is defined twice")
        for group in rule["spec"].get("groups", []):
            alerts = [r["alert"] for r in group.get("rules", []) if "alert" in r]
            for dup in sorted({a for a in alerts if alerts.count(a) > 1}):
                problems.append(f"{_where(path, rule)}: alert {dup!r} twice in group {group.get('name')!r}")
    return problems


def main(argv: list[str]) -> int:
    """Validate CRDs, write built-in objects to OUT_DIR; print problems, return the exit code."""
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = Path(argv[0])
    out_dir.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    for name in argv[1:]:
        path = Path(name)
        try:
            docs = load_documents(path)
        except yaml.YAMLError as exc:
            problems.append(f"{path}: not valid YAML: {exc}")
            continue
        core = [d for d in docs if not str(d.get("apiVersion", "")).startswith(CRD_GROUPS)]
        crds = [d for d in docs if d not in core]
        for doc in crds:
            problems += check_crd(path, doc)
        problems += check_istio_routes(path, crds)
        problems += check_rule_groups(path, [d for d in crds if "spec" in d])
        (out_dir / path.name).write_text(yaml.safe_dump_all(core, sort_keys=False))
        kinds = ", ".join(sorted({f"{d['kind']}" for d in crds})) or "none"
        print(f"{path.name}: {len(core)} built-in objects for kubernetes-validate; own checks: {kinds}")
    for problem in problems:
        print(f"ERROR {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
