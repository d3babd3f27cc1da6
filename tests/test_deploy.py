"""Each rendered project's Kubernetes manifests (deploy/), checked offline.

kustomize: `kubectl kustomize`, the kustomize that `kubectl apply -k` (the README's
command) runs. No registry here offers a current one on its own: Debian's
kubernetes-client is kubectl 1.20, whose kustomize 2.0.3 cannot even load a directory
listed in `resources`; PyPI's wheels that bundle kustomize are not served, or download
the binary at install time. The kubectl of this machine image (kustomize 5) is used, and
.ci/run says so when it is missing.

Every built document is validated against the Kubernetes JSON schemas that
kubernetes-validate ships, strictly (an unknown field fails), for the oldest version the
manifests promise and the newest the checker knows. checkov runs in-process through its
Kubernetes runner, once per combination over both overlays and the optional Ingress:
the command line loads every framework checkov has (about 20 s a run here), the runner
imports in about 10 s once per worker and then checks a combination in well under a
second, with the same checks and the same annotation-based skips.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.combinations import ALL, Combination
from tests.rendering import EVERY, clean_env, run

# The oldest Kubernetes the manifests promise to fit, and the newest the checker ships.
KUBERNETES_VERSIONS = ("1.30.0", "newest")
# The checks the manifests skip, each with its reason written next to it.
ALLOWED_SKIPS = {"CKV_K8S_35", "CKV_K8S_43"}
OVERLAYS = ("development", "production")
# Prints the environment variables the settings read: one per field of each section.
SETTINGS_ENV = """
import json
from app.settings import Settings
print(json.dumps([
    f"{section}_{field}".upper()
    for section, info in Settings.model_fields.items()
    for field in info.annotation.model_fields
]))
"""


def kustomize(directory: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with kustomize 5) is needed to build deploy/: see .ci/run"
    out = run([kubectl, "kustomize", str(directory)], cwd=directory)
    return [doc for doc in yaml.safe_load_all(out) if doc]


_builds: dict[Path, dict[str, list[dict[str, Any]]]] = {}


def built(project: Path, tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    """Both overlays, and production with the optional Ingress component added.

    Built once per combination: both tests of a combination run on one worker.
    """
    if project not in _builds:
        _builds[project] = build(project, tmp_path)
    return _builds[project]


def build(project: Path, tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    builds = {name: kustomize(project / "deploy" / "overlays" / name) for name in OVERLAYS}
    # As the README says to: the commented lines of the production overlay, uncommented.
    deploy = tmp_path / "deploy"
    shutil.copytree(project / "deploy", deploy)
    overlay = deploy / "overlays" / "production" / "kustomization.yaml"
    commented = "# components:\n#   - ../../components/ingress\n"
    assert commented in overlay.read_text()
    overlay.write_text(overlay.read_text().replace(commented, commented.replace("# ", "")))
    builds["production-with-ingress"] = kustomize(overlay.parent)
    return builds


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def pod_specs(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = [doc["spec"]["template"]["spec"] for doc in by_kind(docs, "Deployment")]
    specs += [
        doc["spec"]["jobTemplate"]["spec"]["template"]["spec"] for doc in by_kind(docs, "CronJob")
    ]
    return specs


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def checkov_report(directory: Path) -> Any:
    from checkov.kubernetes.runner import Runner
    from checkov.runner_filter import RunnerFilter

    return Runner().run(
        root_folder=str(directory), runner_filter=RunnerFilter(framework=["kubernetes"])
    )


def validate(doc: dict[str, Any]) -> None:
    import kubernetes_validate

    for version in KUBERNETES_VERSIONS:
        if version == "newest":
            version = kubernetes_validate.latest_version()
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.slow
@pytest.mark.parametrize("combination", EVERY)
def test_deploy_builds_validates_and_passes_checkov(
    combination: Combination, project: Path, tmp_path: Path, record_property: Any
) -> None:
    builds = built(project, tmp_path)
    expected = {
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    cronjobs = {"audit-purge", "audit-verify"} if combination.compliance_logging else set()
    if cronjobs:
        expected.add("CronJob")
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for name, docs in builds.items():
        kinds = {doc["kind"] for doc in docs}
        assert kinds == expected | ({"Ingress"} if "ingress" in name else set()), name
        assert {doc["metadata"]["name"] for doc in by_kind(docs, "CronJob")} == cronjobs
        assert {doc["metadata"]["namespace"] for doc in docs} == {combination.slug}
        (manifests / f"{name}.yaml").write_text(yaml.safe_dump_all(docs))

    # Each distinct document once: the builds share most of them.
    distinct = {json.dumps(doc, sort_keys=True): doc for docs in builds.values() for doc in docs}
    for doc in distinct.values():
        validate(doc)
    record_property("documents_validated", len(distinct))

    report = checkov_report(manifests)
    failed = [
        f"{c.check_id} {c.check_name}: {c.resource} ({c.file_path})" for c in report.failed_checks
    ]
    assert not failed, "checkov:\n" + "\n".join(failed)
    assert len(report.passed_checks) > 100, "checkov found almost nothing to check"
    for skipped in report.skipped_checks:
        assert skipped.check_id in ALLOWED_SKIPS, f"unexpected skip: {skipped.check_id}"
        assert skipped.check_result.get("suppress_comment", "").strip(), "a skip with no reason"
    record_property("checkov_passed", len(report.passed_checks))
    record_property("checkov_skipped", len(report.skipped_checks))

    # The overlays differ where they say they do.
    development, production = builds["development"], builds["production"]
    hpa = {name: by_kind(builds[name], "HorizontalPodAutoscaler")[0]["spec"] for name in OVERLAYS}
    assert (hpa["development"]["minReplicas"], hpa["production"]["minReplicas"]) == (1, 2)
    config = {name: by_kind(builds[name], "ConfigMap")[0]["data"] for name in OVERLAYS}
    assert config["production"]["APP_ENVIRONMENT"] == "production"
    assert config["development"]["APP_ENVIRONMENT"] == "development"
    for docs in (development, production):
        deployment = by_kind(docs, "Deployment")[0]
        assert "replicas" not in deployment["spec"], "the autoscaler owns the replica count"
        init = [c["name"] for c in deployment["spec"]["template"]["spec"].get("initContainers", [])]
        assert init == (["migrate"] if combination.database == "postgres" else [])


def settings_env_names(project: Path) -> set[str]:
    """Imported in the project's own environment: the settings module alone is quick."""
    python = str(project / ".venv" / "bin" / "python")
    out = subprocess.run(
        [python, "-c", SETTINGS_ENV],
        cwd=project,
        # No bytecode left in the render: its completeness check runs on the same copy.
        env=clean_env() | {"PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def health_paths(project: Path) -> set[str]:
    """The health router's paths, read from its source (importing the app costs ~2 s of
    CPU a combination): its prefix and each route decorator, mounted as they are."""
    main = (project / "app" / "main.py").read_text()
    assert "app.include_router(health.router)\n" in main, "health is mounted differently"
    tree = ast.parse((project / "app" / "api" / "health.py").read_text())
    prefix = str(
        next(
            keyword.value.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "APIRouter"
            for keyword in node.keywords
            if keyword.arg == "prefix" and isinstance(keyword.value, ast.Constant)
        )
    )
    return {
        prefix + str(decorator.args[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
        for decorator in node.decorator_list
        if isinstance(decorator, ast.Call)
        and isinstance(decorator.func, ast.Attribute)
        and getattr(decorator.func.value, "id", "") == "router"
        and decorator.args
        and isinstance(decorator.args[0], ast.Constant)
    }


def audit_commands(project: Path) -> list[str]:
    """The keys of COMMANDS in app/audit/__main__.py, the commands it accepts."""
    source = project / "app" / "audit" / "__main__.py"
    if not source.exists():
        return []
    for node in ast.walk(ast.parse(source.read_text())):
        if isinstance(node, ast.AnnAssign | ast.Assign) and isinstance(node.value, ast.Dict):
            targets = [node.target] if isinstance(node, ast.AnnAssign) else node.targets
            if any(getattr(target, "id", "") == "COMMANDS" for target in targets):
                return sorted(
                    str(key.value) for key in node.value.keys if isinstance(key, ast.Constant)
                )
    raise AssertionError("no COMMANDS in app/audit/__main__.py")


def found_in(pattern: str, text: str) -> re.Match[str]:
    match = re.search(pattern, text, re.M)
    assert match, f"{pattern} not found"
    return match


def secret_keys_in_readme(project: Path) -> set[str]:
    readme = (project / "README.md").read_text()
    command = re.search(r"create secret generic app-secrets((?:.*\\\n)*.*)", readme)
    assert command, "the README does not say how to create the Secret"
    return set(re.findall(r"--from-literal=([A-Z0-9_]+)=", command.group(1)))


@pytest.mark.parametrize("combination", EVERY)
def test_deploy_matches_dockerfile_settings_and_app(
    combination: Combination, project: Path, tmp_path: Path
) -> None:
    """Image, user, port, probe paths, commands and variable names as the project has them."""
    dockerfile = (project / "Dockerfile").read_text()
    exposed = int(found_in(r"^EXPOSE (\d+)$", dockerfile).group(1))
    cmd = json.loads(found_in(r"^CMD (\[.*\])$", dockerfile).group(1))
    assert cmd[cmd.index("--port") + 1] == str(exposed)
    uid, gid = map(int, found_in(r"^USER (\d+):(\d+)$", dockerfile).groups())
    healthcheck = found_in(r"127\.0\.0\.1:(\d+)(/[\w/]+)", dockerfile)
    assert int(healthcheck.group(1)) == exposed
    compose = yaml.safe_load((project / "compose.yaml").read_text())
    image = compose["services"]["app"]["image"].split(":")[0]
    env_names = settings_env_names(project)
    routes = health_paths(project)
    assert routes == {"/health/live", "/health/ready"}

    secret_keys = secret_keys_in_readme(project)
    database_url = "DATABASE_URL" if combination.database == "postgres" else "MONGODB_URL"
    expected_secrets = {database_url, "REDIS_URL", "BROKER_URL", "AUTH_SECRET_KEY", "METRICS_TOKEN"}
    if combination.compliance_logging:
        expected_secrets.add("AUDIT_SECRET_KEY")
    assert secret_keys == expected_secrets
    assert secret_keys <= env_names

    # The settings offered commented out in the ConfigMap (`# - NAME=value`) are settings too.
    kustomization = (project / "deploy" / "base" / "kustomization.yaml").read_text()
    offered = set(re.findall(r"^\s*# - ([A-Z][A-Z0-9_]*)=", kustomization, re.M))
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in offered
    assert offered <= env_names, offered - env_names
    mongo_purge = combination.database == "mongodb" and combination.compliance_logging
    for name, docs in built(project, tmp_path).items():
        config = by_kind(docs, "ConfigMap")[0]
        assert set(config["data"]) <= env_names, f"{name}: {set(config['data']) - env_names}"
        for spec in pod_specs(docs):
            assert spec["securityContext"]["runAsUser"] == uid
            assert spec["securityContext"]["runAsGroup"] == gid
            for container in containers(spec):
                assert container["image"].rsplit(":", 1)[0] == image, container["image"]
                refs = [(kind, ref[kind]["name"]) for ref in container["envFrom"] for kind in ref]
                assert refs[:2] == [
                    ("configMapRef", config["metadata"]["name"]),
                    ("secretRef", "app-secrets"),
                ]
                # On MongoDB the purge reads its own database user last, when given.
                purge = mongo_purge and container.get("command", [])[-1:] == ["purge"]
                optional = {"name": "audit-purge-secrets", "optional": True}
                assert container["envFrom"][2:] == ([{"secretRef": optional}] if purge else [])
                unknown = {var["name"] for var in container.get("env", [])} - env_names
                assert not unknown, f"{name}/{container['name']}: not settings: {unknown}"

        deployment = by_kind(docs, "Deployment")[0]
        spec = deployment["spec"]["template"]["spec"]
        (app,) = spec["containers"]
        assert "command" not in app, "the app runs the image's CMD"
        assert "args" not in app, "the app runs the image's CMD"
        ports = {port["name"]: port["containerPort"] for port in app["ports"]}
        assert ports == {"http": exposed}
        probes = {
            kind: app[kind]["httpGet"]
            for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        }
        for probe in probes.values():
            assert probe["port"] == "http"
            assert probe["path"] in routes, probe["path"]
        assert probes["livenessProbe"]["path"] == healthcheck.group(2) == "/health/live"
        assert probes["startupProbe"]["path"] == "/health/live"
        assert probes["readinessProbe"]["path"] == "/health/ready"
        # The grace period covers the preStop pause, readiness 503 before uvicorn stops
        # accepting, the requests in flight (the image's --timeout-graceful-shutdown;
        # without it uvicorn waits for them without end) and the consumers' drain.
        pause = int(app["lifecycle"]["preStop"]["exec"]["command"][-1])
        drain = float(config["data"]["EVENTS_GRACEFUL_TIMEOUT_SECONDS"])
        unready = float(config["data"]["APP_DRAIN_SECONDS"])
        in_flight = found_in(r'"--timeout-graceful-shutdown", "(\d+)"', dockerfile)
        budget = pause + unready + int(in_flight.group(1)) + drain
        assert spec["terminationGracePeriodSeconds"] >= budget
        (service,) = by_kind(docs, "Service")
        assert service["spec"]["ports"][0]["targetPort"] == "http"

        init = spec.get("initContainers", [])
        if combination.database == "postgres":
            assert [c["command"] for c in init] == [compose["services"]["migrate"]["command"]]
        else:
            assert not init
        commands = [
            c["command"]
            for job in by_kind(docs, "CronJob")
            for c in job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        ]
        audit = [["python", "-m", "app.audit", command] for command in audit_commands(project)]
        assert sorted(commands) == audit  # both commands on a schedule, or none

        ports_out = {
            port["port"]
            for rule in by_kind(docs, "NetworkPolicy")[0]["spec"]["egress"]
            for port in rule["ports"]
        }
        database_port = 5432 if combination.database == "postgres" else 27017
        broker_port = 5672 if combination.broker == "rabbitmq" else 9092
        assert ports_out == {53, database_port, 6379, broker_port}
        policy = by_kind(docs, "NetworkPolicy")[0]["spec"]
        (ingress,) = policy["ingress"]
        assert [set(source) for source in ingress["from"]] == [{"namespaceSelector"}]


@pytest.mark.slow
@pytest.mark.xdist_group(ALL[0].id)
def test_checkov_and_the_schemas_catch_an_unhardened_pod(tmp_path: Path) -> None:
    """The checkers are not vacuous: a plain pod fails both."""
    import kubernetes_validate

    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "plain", "namespace": "somewhere"},
        "spec": {"containers": [{"name": "app", "image": "app:1", "bogus": True}]},
    }
    with pytest.raises(kubernetes_validate.ValidationError, match="bogus"):
        validate(pod)
    del pod["spec"]["containers"][0]["bogus"]  # type: ignore[index]
    validate(pod)
    (tmp_path / "pod.yaml").write_text(yaml.safe_dump(pod))
    failed = {check.check_id for check in checkov_report(tmp_path).failed_checks}
    # No security context, resources or probes.
    assert {"CKV_K8S_20", "CKV_K8S_22", "CKV_K8S_11", "CKV_K8S_8"} <= failed, failed
