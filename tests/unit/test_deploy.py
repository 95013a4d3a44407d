"""The alerting rules and the dashboard name only families osago exports (promtool is not
here: the files are parsed and every ``osago_*`` name is checked against the registry)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from osago.metrics import BreakerStates, GcPauses, Metrics

DEPLOY = Path(__file__).parents[2] / "deploy"
REQUIRED_ALERTS = {
    "OsagoQueueNotDraining",
    "OsagoJobWaitHigh",
    "OsagoOutboxBacklogOld",
    "OsagoDeadLetters",
    "OsagoBreakerOpenLong",
    "OsagoStubRateHigh",
    "OsagoLoopLagHigh",
}


def exported() -> set[str]:
    """Every sample name the registry can produce (counters' _total, histograms' parts)."""
    metrics = Metrics()
    metrics.registry.register(BreakerStates({}))
    metrics.registry.register(GcPauses())
    names = {"osago_circuit_breaker_state"}
    for family in metrics.registry.collect():
        names.add(family.name)
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names.update(family.name + part for part in ("_bucket", "_sum", "_count"))
    return names


def names_in(expr: str) -> set[str]:
    return set(re.findall(r"\bosago_[a-z_]+", expr))


def test_every_alert_expression_names_real_families() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "rules.yml").read_text())
    alerts = {r["alert"]: r["expr"] for g in rules["groups"] for r in g["rules"]}
    assert set(alerts) >= REQUIRED_ALERTS
    known = exported()
    for alert, expr in alerts.items():
        used = names_in(expr)
        assert used, f"{alert} names no osago family"
        assert used <= known, f"{alert}: unknown {used - known}"


def test_every_dashboard_panel_queries_real_families() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "osago.json").read_text())
    known = exported()
    queried = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used = names_in(target["expr"])
            assert used <= known, f"{panel['title']}: unknown {used - known}"
            queried |= used
    # Every family is on the dashboard somewhere.
    families = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in known}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in queried}
    assert families <= shown, f"not on the dashboard: {families - shown}"
