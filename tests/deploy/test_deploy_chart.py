"""What the chart renders, asserted on the parsed objects (real helm, no cluster)."""

from __future__ import annotations

import base64
import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import (
    ALL_SCENARIOS,
    CHART,
    CI_VALUES,
    INVALID_VALUES,
    RELEASE,
    Obj,
    RenderError,
    by_kind,
    env_of,
    named,
    pod_specs,
    render,
)

from services.config import ServeConfig, load_config

FULL = RELEASE  # the release name contains "newsrec", so it is the name prefix
SERVICE_PORTS = {"gateway": 50051, "user-encoder": 50052, "retrieval": 50053, "ranker": 50054}


def _container(deploy: Obj) -> Obj:
    containers = deploy["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def _config_of(objs: list[Obj], deploy: Obj) -> dict[str, Any]:
    cm_name = next(
        v["configMap"]["name"] for v in deploy["spec"]["template"]["spec"]["volumes"] if v["name"] == "config"
    )
    return yaml.safe_load(named(objs, "ConfigMap", cm_name)["data"]["config.yaml"])


def _serve_config(objs: list[Obj], deploy: Obj, tmp_path: Path) -> ServeConfig:
    """The config the real services code builds from this pod's file and plain env vars."""
    path = tmp_path / f"{deploy['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump(_config_of(objs, deploy)))
    env = {
        k: v for k, v in env_of(_container(deploy)).items() if isinstance(v, str) and k != "NEWSREC_CONFIG"
    }
    return load_config(path, env=env)


def test_variant_b_runs_model_v2_with_its_own_services() -> None:
    objs = render("ab-split-values.yaml")
    for component in ("user-encoder", "retrieval", "ranker"):
        for variant, version in (("a", "v1"), ("b", "v2")):
            deploy = named(objs, "Deployment", f"{FULL}-{variant}-{component}")
            labels = deploy["spec"]["template"]["metadata"]["labels"]
            assert labels["newsrec.io/variant"] == variant
            assert labels["newsrec.io/component"] == component
            assert labels["newsrec.io/model-version"] == version
            env = env_of(_container(deploy))
            assert env["NEWSREC_MODEL_VERSION"] == version
            assert env["NEWSREC_SERVICE"] == component
            assert env["NEWSREC_GRPC_PORT"] == str(SERVICE_PORTS[component])
            # Each variant's Deployment selects only its own pods.
            assert deploy["spec"]["selector"]["matchLabels"]["newsrec.io/variant"] == variant
    # Per-variant override: b's ranker has 2 replicas and bigger limits; a keeps the defaults.
    assert named(objs, "Deployment", f"{FULL}-b-ranker")["spec"]["replicas"] == 2
    assert _container(named(objs, "Deployment", f"{FULL}-b-ranker"))["resources"]["limits"]["memory"] == "4Gi"
    assert named(objs, "Deployment", f"{FULL}-a-ranker")["spec"]["replicas"] == 1


def test_gateway_config_carries_weights_and_is_accepted_by_the_services(tmp_path: Path) -> None:
    objs = render("ab-split-values.yaml")
    gateway = named(objs, "Deployment", f"{FULL}-gateway")
    config = _serve_config(objs, gateway, tmp_path)  # the real pydantic model, extra="forbid"
    assert config.service == "gateway"
    assert config.port() == 50051
    assert [(v.name, v.model_version, v.weight) for v in config.gateway.variants] == [
        ("a", "v1", 90),
        ("b", "v2", 10),
    ]
    assert config.gateway.retrieve_k == 200  # gateway.config is merged into the gateway section
    services = {s["metadata"]["name"]: s for s in by_kind(objs, "Service")}
    for variant in config.gateway.variants:
        for component, target in (
            ("user-encoder", variant.user_encoder),
            ("retrieval", variant.retrieval),
            ("ranker", variant.ranker),
        ):
            match = re.fullmatch(r"dns:///([a-z0-9-]+):(\d+)", target)
            assert match, target
            svc = services[match.group(1)]
            assert svc["spec"]["clusterIP"] == "None"  # headless: client-side round robin
            assert svc["spec"]["selector"]["newsrec.io/variant"] == variant.name
            assert svc["spec"]["selector"]["newsrec.io/component"] == component
            assert int(match.group(2)) == SERVICE_PORTS[component]


@pytest.mark.parametrize("scenario", ALL_SCENARIOS, ids=lambda s: s[0] if s else "default")
def test_every_service_config_loads_in_the_services_code(scenario: tuple[str, ...], tmp_path: Path) -> None:
    objs = render(*scenario)
    for deploy in by_kind(objs, "Deployment"):
        component = deploy["metadata"]["labels"]["newsrec.io/component"]
        if component == "redis":
            continue
        config = _serve_config(objs, deploy, tmp_path)
        assert config.service == component
        assert config.metrics_port == 9100
        ports = {p["name"]: p["containerPort"] for p in _container(deploy)["ports"]}
        assert ports == {"grpc": config.port(), "metrics": 9100}


def test_names_stay_valid_with_a_long_release_and_variant_names(tmp_path: Path) -> None:
    release = "recommendations-production-europe-west"  # 38 characters, no "newsrec" in it
    variants = [
        "variants[0].name=control12345",
        "variants[0].modelVersion=v1",
        "variants[0].weight=50",
        "variants[1].name=treatment123",
        "variants[1].modelVersion=v2",
        "variants[1].weight=50",
        "pipelineSubmit.enabled=true",
        "pipelineSubmit.schedule=@daily",
    ]
    objs = render(sets=variants, release=release)
    names = [(o["kind"], o["metadata"]["name"]) for o in objs]
    assert len(set(names)) == len(names)
    dns_label = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    for kind, name in names:
        assert dns_label.match(name) and len(name) <= 63, (kind, name)
        if kind == "CronJob":
            assert len(name) <= 52, name  # the controller appends an 11-character suffix
    # the gateway's targets point at Services that exist under those names
    gateway = next(d for d in by_kind(objs, "Deployment") if d["metadata"]["name"].endswith("-gateway"))
    services = {o["metadata"]["name"] for o in by_kind(objs, "Service")}
    for variant in _serve_config(objs, gateway, tmp_path).gateway.variants:
        for target in (variant.user_encoder, variant.retrieval, variant.ranker):
            assert target.removeprefix("dns:///").rsplit(":", 1)[0] in services


def test_internal_services_are_headless_and_gateway_is_not() -> None:
    objs = render("ab-split-values.yaml")
    for svc in by_kind(objs, "Service"):
        component = svc["metadata"]["labels"]["newsrec.io/component"]
        if component in ("user-encoder", "retrieval", "ranker"):
            assert svc["spec"]["clusterIP"] == "None", svc["metadata"]["name"]
        else:
            assert "clusterIP" not in svc["spec"], svc["metadata"]["name"]
    gateway = named(objs, "Service", f"{FULL}-gateway")
    assert gateway["spec"]["type"] == "ClusterIP"
    assert {p["name"]: p.get("appProtocol") for p in gateway["spec"]["ports"]} == {
        "grpc": "grpc",
        "metrics": "http",
    }


def test_service_monitor_only_when_enabled() -> None:
    assert by_kind(render(), "ServiceMonitor") == []
    monitors = by_kind(render("monitoring-values.yaml"), "ServiceMonitor")
    assert len(monitors) == 1
    spec = monitors[0]["spec"]
    assert monitors[0]["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert spec["endpoints"][0]["port"] == "metrics"
    assert spec["endpoints"][0]["path"] == "/metrics"
    assert spec["selector"]["matchLabels"]["app.kubernetes.io/instance"] == RELEASE


@pytest.mark.parametrize("scenario", ALL_SCENARIOS, ids=lambda s: s[0] if s else "default")
def test_no_container_runs_as_root(scenario: tuple[str, ...]) -> None:
    objs = render(*scenario, sets=["pipelineSubmit.enabled=true"])
    specs = pod_specs(objs)
    assert any(name.startswith(("Job/", "CronJob/")) for name, _ in specs)
    for name, spec in specs:
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, name
        assert pod_sc["runAsUser"] != 0, name
        assert pod_sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert sc.get("runAsUser", pod_sc["runAsUser"]) != 0, name
            assert sc.get("privileged", False) is False, name
            # resource requests and limits everywhere
            assert c["resources"]["requests"] and c["resources"]["limits"], name


def test_services_run_as_the_image_user_with_writable_tmp() -> None:
    dockerfile = (Path(__file__).resolve().parents[2] / "Dockerfile").read_text()
    assert re.search(r"^USER 10001:10001$", dockerfile, re.M)
    for name, spec in pod_specs(render()):
        if "redis" in name:
            continue
        assert spec["securityContext"]["runAsUser"] == 10001
        mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
        assert mounts["/tmp"] == "tmp"
        assert next(v for v in spec["volumes"] if v["name"] == "tmp")["emptyDir"]


def test_api_key_comes_from_the_secret_and_is_never_inlined() -> None:
    objs = render("ab-split-values.yaml")
    # the chart creates no Secret but the in-chart Redis password, and inlines none
    assert [o["metadata"]["name"] for o in by_kind(objs, "Secret")] == [f"{FULL}-redis-auth"]
    key_refs = []
    for name, spec in pod_specs(objs):
        for c in spec["containers"]:
            for e in c.get("env", []):
                if e["name"] == "OPENAI_API_KEY":
                    assert "value" not in e, name
                    key_refs.append((name, e["valueFrom"]["secretKeyRef"]))
    assert key_refs, "no container gets OPENAI_API_KEY"
    assert all(ref == {"name": "newsrec-embedding", "key": "api-key"} for _, ref in key_refs)
    assert {n for n, _ in key_refs} == {
        f"Deployment/{FULL}-a-retrieval",
        f"Deployment/{FULL}-b-retrieval",
        f"CronJob/{FULL}-pipeline-submit",
    }
    # Nothing secret-looking in any ConfigMap.
    for cm in by_kind(objs, "ConfigMap"):
        assert "api_key" not in cm["data"]["config.yaml"].lower()


def test_external_redis_url_from_secret() -> None:
    objs = render("external-redis-values.yaml")
    assert not [d for d in by_kind(objs, "Deployment") if d["metadata"]["name"].endswith("-redis")]
    env = env_of(_container(named(objs, "Deployment", f"{FULL}-a-user-encoder")))
    assert env["NEWSREC_REDIS_URL"] == {"secretKeyRef": {"name": "newsrec-redis", "key": "url"}}
    # in-chart Redis by default, with its password (test_in_chart_redis_requires_a_password_from_a_secret)
    env = env_of(_container(named(render(), "Deployment", f"{FULL}-a-user-encoder")))
    assert env["NEWSREC_REDIS_URL"] == f"redis://:$(NEWSREC_REDIS_PASSWORD)@{FULL}-redis:6379/0"
    # the gateway reads the same cache before calling an encoder (services/lookaside.py)
    env = env_of(_container(named(render(), "Deployment", f"{FULL}-gateway")))
    assert env["NEWSREC_REDIS_URL"] == f"redis://:$(NEWSREC_REDIS_PASSWORD)@{FULL}-redis:6379/0"


def _selects(selector: Obj, labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        value = labels.get(expr["key"])
        if expr["operator"] == "In" and value not in expr["values"]:
            return False
        if expr["operator"] == "NotIn" and value in expr["values"]:
            return False
    return True


def _pod_labels(objs: list[Obj]) -> dict[str, dict[str, str]]:
    """kind/name -> pod template labels of every object that runs pods."""
    out = {}
    for o in objs:
        if o["kind"] in ("Deployment", "Job"):
            template = o["spec"]["template"]
        elif o["kind"] == "CronJob":
            template = o["spec"]["jobTemplate"]["spec"]["template"]
        else:
            continue
        out[f"{o['kind']}/{o['metadata']['name']}"] = template["metadata"]["labels"]
    return out


def _policy_of(objs: list[Obj], labels: dict[str, str]) -> Obj:
    applied = [p for p in by_kind(objs, "NetworkPolicy") if _selects(p["spec"]["podSelector"], labels)]
    assert len(applied) == 1, (labels, [p["metadata"]["name"] for p in applied])  # covered, once
    return applied[0]


def _component_of(peer: Obj) -> str | None:
    return peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")


def _egress(policy: Obj) -> set[tuple[str, int]]:
    """(destination, port) pairs a policy allows: a release component, dns, or the peer as text."""
    out = set()
    for rule in policy["spec"]["egress"]:
        assert rule.get("to"), rule  # no rule open to every destination (default values)
        for peer in rule["to"]:
            dest = _component_of(peer) if "namespaceSelector" not in peer else None
            if dest is None:
                dest = (
                    "dns"
                    if peer.get("podSelector") == {"matchLabels": {"k8s-app": "kube-dns"}}
                    else str(peer)
                )
            for port in rule["ports"]:
                out.add((dest, port["port"]))
    return out


RELEASE_PEER = {"app.kubernetes.io/name": "newsrec", "app.kubernetes.io/instance": RELEASE}
METRICS_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}


@pytest.mark.parametrize("scenario", ALL_SCENARIOS, ids=lambda s: s[0] if s else "default")
def test_every_pod_is_denied_both_ways_but_for_its_peers(scenario: tuple[str, ...]) -> None:
    objs = render(*scenario)
    for name, labels in _pod_labels(objs).items():
        policy = _policy_of(objs, labels)
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"], name
        component = labels["app.kubernetes.io/component"]
        for rule in policy["spec"]["ingress"]:
            if METRICS_PEER in rule.get("from", []):
                assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}] and rule["from"] == [
                    METRICS_PEER
                ]
            elif component in ("user-encoder", "ranker"):  # only the gateway calls them
                assert rule["from"] == [
                    {
                        "podSelector": {
                            "matchLabels": {**RELEASE_PEER, "app.kubernetes.io/component": "gateway"}
                        }
                    }
                ]
                assert rule["ports"] == [{"port": "grpc", "protocol": "TCP"}]
            elif component == "redis":
                assert {_component_of(p) for p in rule["from"]} == {"user-encoder", "gateway"}
        if component == "gateway":
            grpc_rule = next(r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == "grpc")
            if scenario == ("monitoring-values.yaml",):
                ingress_ns = {"kubernetes.io/metadata.name": "ingress-nginx"}
                assert grpc_rule["from"] == [{"namespaceSelector": {"matchLabels": ingress_ns}}]
            else:  # no allow-list: this namespace only, never any source
                assert grpc_rule["from"] == [{"podSelector": {}}]
        if component == "pipeline-submit":
            assert policy["spec"]["ingress"] == []


def test_egress_is_only_what_each_service_needs() -> None:
    dns = {("dns", 53)}
    milvus = str({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "milvus"}}})
    kubeflow = str({"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kubeflow"}}})
    api = str({"ipBlock": {"cidr": "0.0.0.0/0"}})
    want = {
        "gateway": dns | {("user-encoder", 50052), ("retrieval", 50053), ("ranker", 50054), ("redis", 6379)},
        "user-encoder": dns | {("redis", 6379)},
        "retrieval": dns | {(milvus, 19530)},
        "ranker": dns | {("retrieval", 50053)},  # GetNews: articles upserted after training
        "redis": set(),
    }
    objs = render()
    for name, labels in _pod_labels(objs).items():
        assert _egress(_policy_of(objs, labels)) == want[labels["app.kubernetes.io/component"]], name
    # the embedding API only when a remote provider is configured; pipeline-submit reaches Kubeflow
    objs = render("ab-split-values.yaml")
    for name, labels in _pod_labels(objs).items():
        component = labels["app.kubernetes.io/component"]
        extra = {"retrieval": {(api, 443)}, "pipeline-submit": {(kubeflow, 8888), (api, 443)}}
        assert _egress(_policy_of(objs, labels)) == want.get(component, dns) | extra.get(component, set()), (
            name
        )
    # an external Redis: the configured peers instead of the in-chart pod
    objs = render(
        "external-redis-values.yaml", sets=["networkPolicy.egress.redis.to[0].ipBlock.cidr=10.9.0.0/16"]
    )
    encoder = _policy_of(objs, _pod_labels(objs)[f"Deployment/{FULL}-a-user-encoder"])
    assert _egress(encoder) == dns | {(str({"ipBlock": {"cidr": "10.9.0.0/16"}}), 6379)}
    assert not [p for p in by_kind(objs, "NetworkPolicy") if p["metadata"]["name"].endswith("-redis")]


def test_gateway_allow_list_takes_cidrs_and_selectors() -> None:
    def grpc_from(*sets: str) -> Any:
        objs = render(sets=sets)
        policy = named(objs, "NetworkPolicy", f"{FULL}-gateway")
        return next(r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == "grpc").get("from")

    assert grpc_from("networkPolicy.gatewayFrom[0].ipBlock.cidr=203.0.113.0/24") == [
        {"ipBlock": {"cidr": "203.0.113.0/24"}}
    ]
    assert grpc_from("networkPolicy.gatewayFrom[0].podSelector.matchLabels.role=frontend") == [
        {"podSelector": {"matchLabels": {"role": "frontend"}}}
    ]
    assert grpc_from("networkPolicy.gatewayAllowAnySource=true") is None  # explicit opt-in only
    with pytest.raises(RenderError, match="Additional property cidr is not allowed"):
        render(sets=["networkPolicy.gatewayFrom[0].cidr=10.0.0.0/8"])


def _expand(env: list[Obj], secrets: dict[str, str]) -> dict[str, str]:
    """Container env as the kubelet builds it: secretKeyRefs read, $(VAR) of earlier vars expanded."""
    out: dict[str, str] = {}
    for e in env:
        if "valueFrom" in e:
            out[e["name"]] = secrets[e["valueFrom"]["secretKeyRef"]["key"]]
        else:
            out[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: out.get(m[1], m[0]), e["value"])
    return out


def test_in_chart_redis_requires_a_password_from_a_secret() -> None:
    from services.cache import redis_client

    objs = render()
    secret = named(objs, "Secret", f"{FULL}-redis-auth")
    password = base64.b64decode(secret["data"]["redis-password"]).decode()
    assert re.fullmatch(r"[A-Za-z0-9]{32}", password)
    redis = _container(named(objs, "Deployment", f"{FULL}-redis"))
    assert redis["args"][:2] == ["--requirepass", "$(REDIS_PASSWORD)"]
    ref = {"secretKeyRef": {"name": f"{FULL}-redis-auth", "key": "redis-password"}}
    assert env_of(redis)["REDIS_PASSWORD"] == ref and env_of(redis)["REDISCLI_AUTH"] == ref
    for name in (f"{FULL}-a-user-encoder", f"{FULL}-gateway"):
        env = _container(named(objs, "Deployment", name))["env"]
        url = _expand(env, {"redis-password": password})["NEWSREC_REDIS_URL"]
        assert url == f"redis://:{password}@{FULL}-redis:6379/0"
        # the services' own client takes the password from the URL they already read
        assert redis_client(url, 0.05).connection_pool.connection_kwargs["password"] == password
    for cm in by_kind(objs, "ConfigMap"):
        assert password not in cm["data"]["config.yaml"]
    # an existing Secret: nothing generated, every reference points at it
    objs = render(sets=["redis.auth.existingSecret=my-redis", "redis.auth.secretKey=pw"])
    assert by_kind(objs, "Secret") == []
    env = env_of(_container(named(objs, "Deployment", f"{FULL}-a-user-encoder")))
    assert env["NEWSREC_REDIS_PASSWORD"] == {"secretKeyRef": {"name": "my-redis", "key": "pw"}}
    # opting out gives the plain URL and no requirepass
    objs = render(sets=["redis.auth.enabled=false"])
    assert "--requirepass" not in _container(named(objs, "Deployment", f"{FULL}-redis"))["args"]
    env = env_of(_container(named(objs, "Deployment", f"{FULL}-a-user-encoder")))
    assert env["NEWSREC_REDIS_URL"] == f"redis://{FULL}-redis:6379/0"


def test_checksum_rolls_only_pods_whose_config_changed() -> None:
    def checksums(*sets: str) -> dict[str, str]:
        return {
            d["metadata"]["name"]: d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for d in by_kind(render("ab-split-values.yaml", sets=sets), "Deployment")
            if "checksum/config" in d["spec"]["template"]["metadata"].get("annotations", {})
        }

    before = checksums()
    after = checksums("gateway.config.retrieve_k=100")
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {f"{FULL}-gateway"}
    after = checksums("embedding.model=text-embedding-3-large")
    assert {name for name in before if before[name] != after[name]} == {
        f"{FULL}-a-retrieval",
        f"{FULL}-b-retrieval",
    }


def test_grpc_probes_and_startup_probe_on_the_service_port() -> None:
    objs = render("ab-split-values.yaml")
    for deploy in by_kind(objs, "Deployment"):
        component = deploy["metadata"]["labels"]["newsrec.io/component"]
        if component == "redis":
            continue
        c = _container(deploy)
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert c[probe]["grpc"] == {"port": SERVICE_PORTS[component]}, (deploy["metadata"]["name"], probe)
        # model loading: the startup probe allows minutes before liveness takes over
        assert c["startupProbe"]["periodSeconds"] * c["startupProbe"]["failureThreshold"] >= 120
        assert c["args"] == ["serve", "--service", component]


def test_hpa_replaces_fixed_replicas_and_pdbs_cover_every_service() -> None:
    objs = render("ab-split-values.yaml")
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in by_kind(objs, "HorizontalPodAutoscaler")}
    assert set(hpas) == {f"{FULL}-gateway"}
    assert "replicas" not in named(objs, "Deployment", f"{FULL}-gateway")["spec"]
    assert hpas[f"{FULL}-gateway"]["spec"]["minReplicas"] == 2
    pdbs = {p["metadata"]["name"] for p in by_kind(objs, "PodDisruptionBudget")}
    services = {
        d["metadata"]["name"]
        for d in by_kind(objs, "Deployment")
        if not d["metadata"]["name"].endswith("-redis")
    }
    assert pdbs == services


def test_istio_mode_pins_by_header_and_splits_by_weight(tmp_path: Path) -> None:
    objs = render("istio-values.yaml")
    vs = by_kind(objs, "VirtualService")[0]["spec"]
    assert vs["hosts"] == ["newsrec.example.com"]
    routes = {r["name"]: r for r in vs["http"]}
    assert routes["pinned-b"]["match"] == [{"headers": {"x-newsrec-variant": {"exact": "b"}}}]
    assert routes["pinned-b"]["route"][0]["destination"]["subset"] == "b"
    assert [(d["destination"]["subset"], d["weight"]) for d in routes["weighted"]["route"]] == [
        ("a", 80),
        ("b", 20),
    ]
    dr = by_kind(objs, "DestinationRule")[0]["spec"]
    assert {s["name"]: s["labels"] for s in dr["subsets"]} == {
        "a": {"newsrec.io/variant": "a"},
        "b": {"newsrec.io/variant": "b"},
    }
    # One gateway per variant, each serving only its own variant.
    for variant, version in (("a", "v1"), ("b", "v2")):
        gw = named(objs, "Deployment", f"{FULL}-{variant}-gateway")
        config = _serve_config(objs, gw, tmp_path)
        assert [(v.name, v.model_version, v.weight) for v in config.gateway.variants] == [
            (variant, version, 100)
        ]
    assert by_kind(render(), "VirtualService") == []


def test_pipeline_submit_job_runs_the_cli() -> None:
    assert not [o for o in render() if o["kind"] in ("Job", "CronJob")]
    job = by_kind(render(sets=["pipelineSubmit.enabled=true"]), "Job")[0]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:4] == ["pipeline", "submit", "--host", "http://ml-pipeline.kubeflow.svc.cluster.local:8888"]
    cron = by_kind(render("ab-split-values.yaml"), "CronJob")[0]
    assert cron["spec"]["schedule"] == "0 3 * * *"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"][-2:] == ["--param", "epochs=3"]
    token = next(v for v in pod["volumes"] if v["name"] == "kfp-token")
    assert token["projected"]["sources"][0]["serviceAccountToken"]["audience"] == "pipelines.kubeflow.org"


@pytest.mark.parametrize("values_file", sorted(INVALID_VALUES.glob("*.yaml")), ids=lambda p: p.stem)
def test_bad_values_fail_with_the_expected_message(values_file: Path) -> None:
    first_line = values_file.read_text().splitlines()[0]
    assert first_line.startswith("# expect: ")
    with pytest.raises(RenderError) as err:
        render(values_file)
    assert first_line.removeprefix("# expect: ") in str(err.value)


def test_kubernetes_validate_rejects_a_broken_object() -> None:
    """The strict validator used by check-deploy.sh does catch a wrong field."""
    from kubernetes_validate import ValidationError, validate

    deploy = named(render(), "Deployment", f"{FULL}-gateway")
    assert validate(deploy, "1.30.0", strict=True)
    broken = copy.deepcopy(deploy)
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["grpc"]["prot"] = 1
    with pytest.raises(ValidationError):
        validate(broken, "1.30.0", strict=True)


def _service_deployments(objs: list[Obj]) -> list[Obj]:
    return [
        d for d in by_kind(objs, "Deployment") if d["metadata"]["labels"]["newsrec.io/component"] != "redis"
    ]


@pytest.mark.parametrize("scenario", [(), ("tls-auth-values.yaml",)], ids=["default", "tls-auth"])
def test_pods_drain_before_they_stop(scenario: tuple[str, ...], tmp_path: Path) -> None:
    """Issue 15 defect 5: a preStop sleep, then the service's own drain (NOT_SERVING while
    answering) and grace, all inside terminationGracePeriodSeconds."""
    objs = render(*scenario)
    source = CI_VALUES / scenario[0] if scenario else CHART / "values.yaml"
    values = yaml.safe_load(source.read_text())["shutdown"]
    for deploy in _service_deployments(objs):
        pod, c = deploy["spec"]["template"]["spec"], _container(deploy)
        assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", str(values["preStopSeconds"])]
        config = _serve_config(objs, deploy, tmp_path)
        assert (config.drain_seconds, config.grace_seconds) == (
            values["drainSeconds"],
            values["graceSeconds"],
        )
        budget = values["preStopSeconds"] + config.drain_seconds + config.grace_seconds
        assert pod["terminationGracePeriodSeconds"] > budget, deploy["metadata"]["name"]


def test_tls_and_token_come_from_secrets_and_probes_speak_tls(tmp_path: Path) -> None:
    objs = render("tls-auth-values.yaml")
    for deploy in _service_deployments(objs):
        name = deploy["metadata"]["name"]
        pod, c = deploy["spec"]["template"]["spec"], _container(deploy)
        env = env_of(c)
        assert env["NEWSREC_AUTH_TOKEN"] == {"secretKeyRef": {"name": "newsrec-grpc-token", "key": "token"}}
        assert {"name": "tls", "secret": {"secretName": "newsrec-grpc-tls", "defaultMode": 0o440}} in pod[
            "volumes"
        ]
        assert {"name": "tls", "mountPath": "/etc/newsrec/tls", "readOnly": True} in c["volumeMounts"]
        config = _serve_config(objs, deploy, tmp_path)
        assert config.tls.enabled and config.tls.client_ca_file == Path("/etc/newsrec/tls/ca.crt")
        assert config.tls.server_name == "newsrec.recs.svc"
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):  # kubelet grpc probes: no TLS
            assert c[probe]["exec"]["command"] == ["python", "-m", "services.healthcheck"], (name, probe)
    for deploy in _service_deployments(render()):  # off by default
        env = env_of(_container(deploy))
        assert not any(k.startswith(("NEWSREC_TLS_", "NEWSREC_AUTH_")) for k in env)
