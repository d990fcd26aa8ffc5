"""Metrics hygiene, read the way Prometheus reads it: a scrape of a live stack's /metrics.

Counters with known label values exist at 0 before the first event (a `rate()` alert on
an absent series reads empty, never 0); no `_created` twins; the user-encoder cache is
exported as hit/miss/error counters a dashboard can take a rate-based ratio of."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import grpc
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from services.generated.newsrec.v1 import recommend_pb2, recommend_pb2_grpc
from services.metrics import CACHE_RESULTS, DEGRADED_REASONS
from services.stack import Stack

SERVICES = Path(__file__).resolve().parents[3] / "services"


def _scrape(stack: Stack) -> list[Sample]:
    url = f"http://127.0.0.1:{stack.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        body = resp.read().decode()
    return [s for family in text_string_to_metric_families(body) for s in family.samples]


def _value(samples: list[Sample], name: str, **labels: str) -> float | None:
    for s in samples:
        if s.name == name and s.labels == labels:
            return float(s.value)
    return None


def test_known_counters_start_at_zero_before_any_call(fake_stack: Stack) -> None:
    samples = _scrape(fake_stack)
    for variant in ("a", "b"):
        for reason in DEGRADED_REASONS:
            got = _value(samples, "newsrec_gateway_degraded_total", variant=variant, reason=reason)
            assert got == 0.0, (variant, reason, got)
        for result in CACHE_RESULTS:
            name = "newsrec_user_encoder_cache_requests_total"
            assert _value(samples, name, variant=variant, result=result) == 0.0, (variant, result)
            name = "newsrec_gateway_user_cache_total"
            assert _value(samples, name, variant=variant, result=result) == 0.0, (variant, result)
        for assignment in ("hash", "forced"):
            name = "newsrec_gateway_variant_requests_total"
            assert _value(samples, name, variant=variant, assignment=assignment) == 0.0
        assert _value(samples, "newsrec_news_upserts_total", variant=variant) == 0.0
    # the gateway's own config variant ("default") is not a routed variant: no series for it
    assert not [s for s in samples if s.labels.get("variant") == "default"]


def test_no_created_series(fake_stack: Stack) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{fake_stack.ports['gateway']}") as channel:
        stub = recommend_pb2_grpc.RecommendServiceStub(channel)
        stub.Recommend(recommend_pb2.RecommendRequest(user_id="U1", history_ids=["N1"], k=5), timeout=5)
    samples = _scrape(fake_stack)
    assert any(s.name == "newsrec_gateway_request_seconds_count" and s.value == 1 for s in samples)
    created = sorted({s.name for s in samples if s.name.endswith("_created")})
    assert not created, created


def test_cache_lookups_are_counters_for_a_rate_ratio(fake_stack: Stack) -> None:
    """Two calls of one user: the first misses the cache, the second hits it (in the
    gateway's look-aside or in the encoder); hits / (hits + misses) comes from counters."""
    before = _scrape(fake_stack)
    with grpc.insecure_channel(f"127.0.0.1:{fake_stack.ports['gateway']}") as channel:
        stub = recommend_pb2_grpc.RecommendServiceStub(channel)
        req = recommend_pb2.RecommendRequest(
            user_id="U-cache", history_ids=["N1", "N2"], k=5, forced_variant="a"
        )
        stub.Recommend(req, timeout=5)
        assert stub.Recommend(req, timeout=5).cache_hit
    after = _scrape(fake_stack)

    def delta(result: str) -> float:
        total = 0.0
        for name in ("newsrec_user_encoder_cache_requests_total", "newsrec_gateway_user_cache_total"):
            total += (_value(after, name, variant="a", result=result) or 0.0) - (
                _value(before, name, variant="a", result=result) or 0.0
            )
        return total

    assert delta("miss") >= 1 and delta("hit") >= 1 and delta("error") == 0


def test_every_reason_the_code_counts_is_started_at_zero() -> None:
    """The reasons passed to the gateway's `degrade(...)` and the reason constants of the
    encoder and retrieval are all in DEGRADED_REASONS (else that series starts absent)."""
    found: set[str] = set()
    for path in SERVICES.glob("*.py"):
        text = path.read_text()
        found |= set(re.findall(r'\bdegrade\("([a-z_]+)"', text))
        found |= set(re.findall(r'^[A-Z_]+ = "([a-z_]+_(?:unavailable|stale))"$', text, re.M))
        if 'f"{stage}_rejected"' in text:  # gateway.stage_reason: both outcomes of each stage
            found |= {
                f"{s}_{o}"
                for s in ("user_encoder", "retrieval", "ranker")
                for o in ("rejected", "unavailable")
            }
    assert {"ranker_unavailable", "index_stale", "cache_unavailable"} <= found  # the scan works
    assert found <= set(DEGRADED_REASONS), found - set(DEGRADED_REASONS)


CHART = SERVICES.parent / "helm" / "newsrec"
_METRIC = re.compile(r"\bnewsrec_[a-z0-9_]+\b")


def _exported_names(stack: Stack) -> set[str]:
    """Sample names a live stack can export, from its families' types (a labelled family
    with no child yet has no samples, but Prometheus will see its series once it has)."""
    url = f"http://127.0.0.1:{stack.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        families = list(text_string_to_metric_families(resp.read().decode()))
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    return {f.name + s for f in families for s in suffixes.get(f.type, ("",))}


def test_dashboard_and_alerts_use_only_exported_metrics(fake_stack: Stack) -> None:
    """Every newsrec_* metric in the Grafana dashboard's queries and in the PrometheusRule
    template is one the services export (a typo would be a panel or alert that never shows)."""
    import json

    exported = _exported_names(fake_stack)
    # labels the ServiceMonitor adds to every target (relabelings), not metric names
    relabelled = set(re.findall(r"targetLabel: (\w+)", (CHART / "templates/servicemonitor.yaml").read_text()))
    dashboard = json.loads((CHART / "dashboards/newsrec.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 15
    sources = {"dashboard": " ".join(exprs), "rules": (CHART / "templates/prometheusrule.yaml").read_text()}
    for where, text in sources.items():
        used = set(_METRIC.findall(text)) - relabelled
        assert used, where
        assert used <= exported, (where, sorted(used - exported))
