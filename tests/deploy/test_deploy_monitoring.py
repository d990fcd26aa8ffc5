"""The chart's alerts and dashboard: rendered by real helm, checked by real promtool.

`promtool check rules` parses every rule and annotation template; `promtool test rules`
runs tests/deploy/rules_test.yaml (each alert fires on synthetic series of a sick
release and stays quiet on a healthy one). The dashboard's queries are parsed by
promtool too (as recording rules), and its ConfigMap carries the Grafana sidecar label.

promtool comes from Debian's `prometheus` package (scripts/install-promtool.sh, run by
`make tools`). Missing, these tests fail under CI=true and skip loudly elsewhere.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_render import CHART, NAMESPACE, Obj, by_kind, render

ROOT = Path(__file__).resolve().parents[2]
RULES_TEST = Path(__file__).with_name("rules_test.yaml")
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
ON = ("monitoring.prometheusRule.enabled=true", "monitoring.grafanaDashboard.enabled=true")


def _promtool() -> str:
    found = shutil.which("promtool")
    if found:
        return found
    message = "promtool is NOT installed: run `make tools` (scripts/install-promtool.sh) as root with apt"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _rule(objs: list[Obj]) -> Obj:
    rules = by_kind(objs, "PrometheusRule")
    assert len(rules) == 1, rules
    return rules[0]


def _promtool_run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def _alerts(rule: Obj) -> list[dict[str, Any]]:
    return [r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r]


def test_monitoring_off_renders_no_rule_and_no_dashboard() -> None:
    objs = render()
    assert not by_kind(objs, "PrometheusRule")
    assert not [o for o in by_kind(objs, "ConfigMap") if "grafana_dashboard" in o["metadata"]["labels"]]


def test_rules_pass_promtool_check(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(_rule(render(sets=ON))["spec"]))
    got = _promtool_run(["check", "rules", "rules.yaml"], tmp_path)
    assert got.returncode == 0, got.stdout + got.stderr
    assert "SUCCESS" in got.stdout


def test_alerts_fire_when_sick_and_stay_quiet_when_healthy(tmp_path: Path) -> None:
    """promtool test rules with tests/deploy/rules_test.yaml; only `summary` is kept of the
    annotations (the test file states why)."""
    spec = copy.deepcopy(_rule(render(sets=ON))["spec"])  # render() results are cached: no edits
    for alert in (r for g in spec["groups"] for r in g["rules"] if "alert" in r):
        alert["annotations"] = {"summary": alert["annotations"]["summary"]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(spec))
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    got = _promtool_run(["test", "rules", RULES_TEST.name], tmp_path)
    assert got.returncode == 0, got.stdout + got.stderr


def test_every_alert_is_tested_both_ways() -> None:
    """rules_test.yaml names every alert in its healthy test and its sick test."""
    names = {a["alert"] for a in _alerts(_rule(render(sets=ON)))}
    tests = {t["name"]: t for t in yaml.safe_load(RULES_TEST.read_text())["tests"]}
    for name in ("healthy", "sick"):
        tested = {
            a["alertname"] for a in tests[name]["alert_rule_test"] if name == "healthy" or a["exp_alerts"]
        }
        assert tested == names, (name, names ^ tested)


def test_every_alert_has_a_runbook_section_and_severity() -> None:
    headings = set(re.findall(r"^#{2,4} (Newsrec\w+)$", DEPLOY_DOC.read_text(), re.M))
    base = "https://github.com/newsrec/newsrec/blob/main/docs/deploy.md"
    alerts = _alerts(_rule(render(sets=ON)))
    assert len(alerts) >= 8
    for alert in alerts:
        name = alert["alert"]
        assert alert["annotations"]["runbook_url"] == f"{base}#{name.lower()}", name
        assert name in headings, f"docs/deploy.md has no runbook heading for {name}"
        assert alert["labels"]["severity"] in ("warning", "critical"), name
        assert alert["annotations"]["summary"] and alert["annotations"]["description"], name
    assert headings == {a["alert"] for a in alerts}, "a runbook section for an alert that does not exist"


def test_thresholds_and_labels_come_from_values(tmp_path: Path) -> None:
    values = tmp_path / "values.yaml"  # a file: `--set` would pass 0.1 as a string
    values.write_text(yaml.safe_dump({"monitoring": {"prometheusRule": {"thresholds": {"p99Seconds": 0.1}}}}))
    objs = render(
        values,
        sets=(
            *ON,
            "monitoring.prometheusRule.for.errors=15m",
            "monitoring.prometheusRule.labels.release=kube-prometheus-stack",
            "monitoring.prometheusRule.runbookUrl=https://wiki.example/runbooks",
        ),
    )
    rule = _rule(objs)
    alerts = {a["alert"]: a for a in _alerts(rule)}
    assert alerts["NewsrecHighP99Latency"]["expr"].endswith("> 0.1")
    assert alerts["NewsrecHighErrorRate"]["for"] == "15m"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert (
        alerts["NewsrecRedisDown"]["annotations"]["runbook_url"]
        == "https://wiki.example/runbooks#newsrecredisdown"
    )
    # every selector is scoped to the release's namespace
    for group in rule["spec"]["groups"]:
        for r in group["rules"]:
            for selector in re.findall(r"\b(?:newsrec_\w+|up)\{([^}]*)\}", r["expr"]):
                assert f'namespace="{NAMESPACE}"' in selector, (r.get("alert") or r.get("record"), selector)


def _dashboard_configmap(objs: list[Obj]) -> Obj:
    maps = [o for o in by_kind(objs, "ConfigMap") if o["metadata"]["labels"].get("grafana_dashboard") == "1"]
    assert len(maps) == 1, maps
    return maps[0]


def test_dashboard_configmap_ships_the_json_with_the_sidecar_label() -> None:
    cm = _dashboard_configmap(render(sets=ON))
    shipped = cm["data"]["newsrec.json"]
    assert json.loads(shipped) == json.loads((CHART / "dashboards" / "newsrec.json").read_text())
    assert cm["metadata"]["namespace"] == NAMESPACE
    assert cm["metadata"]["annotations"]["grafana_folder"] == "newsrec"
    other = _dashboard_configmap(render(sets=(*ON, "monitoring.grafanaDashboard.namespace=monitoring")))
    assert other["metadata"]["namespace"] == "monitoring"


def test_dashboard_panels_cover_what_on_call_needs() -> None:
    dashboard = json.loads((CHART / "dashboards" / "newsrec.json").read_text())
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for needed in (
        "newsrec_gateway_stage_seconds_bucket",  # latency per stage and variant
        "sum by (variant) (rate(newsrec_gateway_request_seconds_count",  # RPS
        "sum by (variant, reason) (rate(newsrec_gateway_degraded_total",  # degraded reasons
        'newsrec_user_encoder_cache_requests_total{namespace="$namespace",variant=~"$variant",result="hit"}',
    ):
        assert needed in exprs, needed
    assert "cache_hit_ratio" not in exprs  # the rate of counters, not the since-start gauge
    assert {v["name"] for v in dashboard["templating"]["list"]} == {"datasource", "namespace", "variant"}
    # every panel reads the chosen data source, and no two panels overlap on the 24-wide grid
    assert all(p["datasource"]["uid"] == "${datasource}" for p in panels)
    cells: dict[tuple[int, int], str] = {}
    for p in dashboard["panels"]:
        pos = p["gridPos"]
        assert pos["x"] + pos["w"] <= 24, p["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, (p["title"], cells.get((x, y)))
                cells[(x, y)] = p["title"]


def test_dashboard_queries_parse(tmp_path: Path) -> None:
    """Each query, with Grafana's variables substituted, as a recording rule for promtool."""
    dashboard = json.loads((CHART / "dashboards" / "newsrec.json").read_text())
    rules = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"].replace("$__rate_interval", "5m")
            expr = expr.replace("$namespace", NAMESPACE).replace("$variant", ".*")
            assert "$" not in expr, (panel["title"], expr)
            rules.append({"record": f"dashboard:panel{panel['id']}{target['refId']}", "expr": expr})
    (tmp_path / "dashboard.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]})
    )
    got = _promtool_run(["check", "rules", "dashboard.yaml"], tmp_path)
    assert got.returncode == 0, got.stdout + got.stderr
