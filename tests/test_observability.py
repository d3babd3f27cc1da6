"""The rendered observability/ files: Prometheus' own checker passes on the shipped
config and rules, every PromQL expression of the rules and dashboards parses and names
only metrics the service exposes, and a real Prometheus server scraping a served render
gets data for the dashboard's request-rate and latency queries.

promtool and prometheus come from Debian's `prometheus` package (.ci/run installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.combinations import ALL, Combination
from tests.rendering import (
    EVERY,
    PAIRWISE_NOW_THE_REST_SLOW,
    clean_env,
    params,
    run,
    service_env,
)
from tests.services import free_ports
from tests.serving import call, serving

PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing: apt-get install prometheus (.ci/run does)"
)
# Metrics a Prometheus server makes itself for each target, not the service's.
SCRAPE_METRICS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}
_KEYWORDS |= {"unless", "bool", "offset", "inf", "nan"}
# The metric families the render's registry declares, as /metrics lists them.
_EXPOSITION = (
    "from prometheus_client import generate_latest; import app.main; "
    "print(generate_latest().decode())"
)


def expressions(project: Path) -> dict[str, str]:
    """Every PromQL expression shipped: alert rules and dashboard panels, by where."""
    found: dict[str, str] = {}
    for path in sorted((project / "observability" / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                found[f"{path.name}: {rule['alert']}"] = rule["expr"]
    for path in sorted((project / "observability" / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                found[f"{path.name}: {panel['title']} {target['refId']}"] = target["expr"]
    return found


def metric_names(expression: str) -> set[str]:
    """The metric names a PromQL expression selects (the expression parses: promtool)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    grouping = r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)"
    text = re.sub(grouping, " ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        if text[match.end() :].lstrip().startswith("(") or match.group() in _KEYWORDS:
            continue  # a function or an operator
        names.add(match.group())
    return names


def exposed_names(exposition: str) -> set[str]:
    """The series names a /metrics text offers: its samples, and for a labelled family
    with no sample yet, the names its type gives it."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            suffixes = {"histogram": ("_bucket", "_count", "_sum"), "summary": ("_count", "_sum")}
            names |= {name + suffix for suffix in suffixes.get(kind, ("",))}
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def test_metric_names_are_read_from_expressions() -> None:
    expression = (
        "histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket"
        '{route!="unmatched"}[5m]))) > 0.5 and on(job) max(up) or vector(0) '
        "unless time() - max(audit_last_verification_timestamp_seconds) > 3 * 3600"
    )
    assert metric_names(expression) == {
        "http_request_duration_seconds_bucket",
        "up",
        "audit_last_verification_timestamp_seconds",
    }


@needs_promtool
@pytest.mark.parametrize("combination", EVERY)
def test_prometheus_files_pass_promtool(
    combination: Combination, project: Path, tmp_path: Path
) -> None:
    shipped = project / "observability" / "prometheus"
    assert PROMTOOL is not None
    # As shipped: the syntax (the token file is mounted by compose at run time) ...
    run([PROMTOOL, "check", "config", "--syntax-only", str(shipped / "prometheus.yml")], tmp_path)
    # ... and everything, rule files included, as compose mounts it with the token.
    mounted = tmp_path / "prometheus"
    shutil.copytree(shipped, mounted)
    (mounted / "metrics-token").write_text("a-token\n")
    checked = run([PROMTOOL, "check", "config", str(mounted / "prometheus.yml")], tmp_path)
    rules = sorted((shipped / "rules").glob("*.yml"))
    assert f"SUCCESS: {len(rules)} rule files found" in checked, checked
    run([PROMTOOL, "check", "rules", *map(str, rules)], tmp_path)
    # The dashboards' expressions, as rules, so promtool parses each of them too.
    panels = {
        where: expression
        for where, expression in expressions(project).items()
        if where.split(":")[0].endswith(".json")
    }
    assert len(panels) >= 12
    recorded = {
        "groups": [
            {
                "name": "dashboards",
                "rules": [
                    {"record": f"dashboard:expression_{n}", "expr": expression}
                    for n, expression in enumerate(panels.values())
                ],
            }
        ]
    }
    wrapped = tmp_path / "dashboards.yml"
    wrapped.write_text(yaml.safe_dump(recorded))
    run([PROMTOOL, "check", "rules", str(wrapped)], tmp_path)


AUDITED = params([c for c in ALL if c.id == "postgres-rest-rabbitmq-audit"])


@needs_promtool
@pytest.mark.parametrize("combination", AUDITED)
def test_the_alerts_fire_on_their_first_sign(
    combination: Combination, project: Path, tmp_path: Path
) -> None:
    """promtool's unit tests of the shipped rules: the first dead letter of a consumer
    (its count starts at zero), an audit verification that never reported (the
    overdue rule needs a result to compare), audit records left unsealed past the
    window, and a scrape that fails under the job the shipped prometheus.yml names."""
    files = sorted((project / "observability" / "prometheus" / "rules").glob("*.yml"))
    shipped = {
        rule["alert"]: rule
        for path in files
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    }

    def fires(alert: str, at: str, **labels: str) -> list[dict[str, Any]]:
        expected = {
            "exp_labels": shipped[alert]["labels"] | labels,
            "exp_annotations": shipped[alert]["annotations"],
        }
        return [
            {"eval_time": "1m", "alertname": alert, "exp_alerts": []},
            {"eval_time": at, "alertname": alert, "exp_alerts": [expected]},
        ]

    up = 'up{job="' + project.name + '"}'
    dead = {"consumer": "activity-feed", "event_type": "item.created"}
    series = "events_dead_lettered_total{" + ",".join(f'{k}="{v}"' for k, v in dead.items()) + "}"
    cases = {
        "rule_files": [str(path) for path in files],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": series, "values": "0 0 0 1 1 1"}],
                "alert_rule_test": fires("DeadLettersAppearing", "5m", **dead),
            },
            {
                "interval": "1m",
                "input_series": [{"series": up, "values": "1x300"}],
                "alert_rule_test": fires("AuditVerificationMissing", "4h"),
            },
            {
                # Records kept unsealed past the window by a sealer that is not let work.
                "interval": "1m",
                "input_series": [
                    {"series": "audit_unsealed_oldest_age_seconds", "values": "0 0 45 105 165"}
                ],
                "alert_rule_test": fires("AuditSealingStalled", "4m"),
            },
            {
                # A Prometheus of the user's own names the job after the service, as the
                # shipped one does: ServiceDown selected a job named `service` only.
                "interval": "1m",
                "input_series": [{"series": up, "values": "1 1 0x10"}],
                "alert_rule_test": fires("ServiceDown", "5m", job=project.name),
            },
        ],
    }
    tests = tmp_path / "alerts_test.yml"
    tests.write_text(yaml.safe_dump(cases))
    assert PROMTOOL is not None
    run([PROMTOOL, "test", "rules", str(tests)], tmp_path)


# The pairwise five in command 2, the other eleven in command 3: importing the app to
# read its registry is 2 s of CPU a combination.
@pytest.mark.parametrize("combination", PAIRWISE_NOW_THE_REST_SLOW)
def test_expressions_name_only_metrics_the_service_declares(
    combination: Combination, project: Path
) -> None:
    """Against the metric families the render's own registry declares (the served
    /metrics after traffic is the slow test below)."""
    python = str(project / ".venv" / "bin" / "python")
    # No bytecode left in the render: its completeness check runs on the same copy.
    env = clean_env() | {"PYTHONDONTWRITEBYTECODE": "1"}
    declared = exposed_names(run([python, "-c", _EXPOSITION], cwd=project, env=env))
    unknown = {
        where: sorted(metric_names(expression) - declared - SCRAPE_METRICS)
        for where, expression in expressions(project).items()
    }
    assert not {where: names for where, names in unknown.items() if names}
    names = set().union(*map(metric_names, expressions(project).values()))
    assert {"outbox_oldest_pending_age_seconds", "events_dead_lettered_total"} <= names
    if combination.api == "graphql":
        assert "graphql_operations_total" in names
    if combination.compliance_logging:
        assert "audit_last_verification_timestamp_seconds" in names


def _prometheus_query(port: int, expression: str) -> list[Any]:
    query = urllib.parse.urlencode({"query": expression})
    url = f"http://127.0.0.1:{port}/api/v1/query?{query}"
    with urllib.request.urlopen(url, timeout=10) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    result: list[Any] = answer["data"]["result"]
    return result


def _metrics_token(project: Path) -> str:
    match = re.search(r"^METRICS_TOKEN=(.+)$", (project / ".env").read_text(), re.M)
    assert match, "the generator writes METRICS_TOKEN into .env"
    return match.group(1)


SCRAPED = params(
    [c for c in ALL if c.id in {"postgres-rest-rabbitmq-audit", "mongodb-graphql-kafka-plain"}]
)


@pytest.mark.slow
@pytest.mark.skipif(PROMETHEUS is None, reason="prometheus missing: apt-get install prometheus")
@pytest.mark.parametrize("combination", SCRAPED)
def test_a_real_prometheus_scrapes_a_served_render(
    combination: Combination, project: Path, tmp_path: Path
) -> None:
    """uvicorn serves the render on loopback; Debian's Prometheus scrapes it every
    second with the shipped scrape settings; after some traffic the dashboard's
    request-rate and latency queries return series for the routes that were called,
    and the served /metrics offers every metric the rules and dashboards name."""
    assert PROMETHEUS is not None
    env = service_env(combination) | {
        "APP_ENVIRONMENT": "test",
        "BROKER_PREFIX": f"scrape-{uuid.uuid4().hex[:8]}.",
        "RATE_LIMIT_API_PER_MINUTE": "100000",
    }
    if combination.database == "postgres":
        run(["uv", "run", "--no-sync", "alembic", "upgrade", "head"], cwd=project, env=env)
    token = _metrics_token(project)
    shipped = yaml.safe_load((project / "observability/prometheus/prometheus.yml").read_text())
    # The job named after the service, as ServiceDown selects it.
    (job,) = [job for job in shipped["scrape_configs"] if job["job_name"] == project.name]
    with serving(project, env, tmp_path / "service.log") as app_port:
        for _ in range(20):
            assert call(app_port, "GET", "/health/live")[0] == 200
            assert call(app_port, "GET", f"/no-such-page-{uuid.uuid4().hex}")[0] == 404
        served = _served_metrics(app_port, token)
        config = tmp_path / "prometheus.yml"
        (tmp_path / "metrics-token").write_text(token)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{app_port}"]}]
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "scrape_configs": [job],
                }
            )
        )
        (prometheus_port,) = free_ports(1)
        server = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ],
            cwd=tmp_path,
            stdout=(tmp_path / "prometheus.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        try:
            results = _dashboard_data(project, prometheus_port, app_port, server)
        finally:
            server.terminate()
            server.wait(30)
    unknown = {
        where: sorted(metric_names(expression) - exposed_names(served) - SCRAPE_METRICS)
        for where, expression in expressions(project).items()
    }
    assert not {where: names for where, names in unknown.items() if names}
    rate, latency = results
    assert "/health/live" in {series["metric"].get("route") for series in rate}, rate
    assert "unmatched" in {series["metric"].get("route") for series in rate}, rate
    assert "/health/live" in {series["metric"].get("route") for series in latency}, latency


def _served_metrics(port: int, token: str) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.read().decode())


def _dashboard_data(
    project: Path, prometheus_port: int, app_port: int, server: subprocess.Popen[bytes]
) -> tuple[list[Any], list[Any]]:
    """Keep calling the service while Prometheus scrapes, until the dashboard's request
    rate and p99 latency queries both return series (a bounded wait, not a timing)."""
    dashboard = json.loads((project / "observability/grafana/dashboards/service.json").read_text())
    by_title = {panel["title"]: panel["targets"][0]["expr"] for panel in dashboard["panels"]}
    rate_query = by_title["Request rate by route"]
    latency_query = by_title["p99 latency by route"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, "prometheus exited"
        call(app_port, "GET", "/health/live")
        call(app_port, "GET", f"/no-such-page-{uuid.uuid4().hex}")
        try:
            rate = _prometheus_query(prometheus_port, rate_query)
            latency = _prometheus_query(prometheus_port, latency_query)
        except OSError:
            rate = latency = []
        if rate and [s for s in latency if s["value"][1] != "NaN"]:
            return rate, latency
        time.sleep(0.5)
    pytest.fail("no data from Prometheus for the dashboard's queries within 60 s")
