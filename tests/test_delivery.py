"""Ready to run and ready to keep: each rendered project's container image, compose file,
CI workflow, Dependabot config, pre-commit hooks and Makefile, checked with the real
linters and schemas (no Docker engine, no network); the template's own workflow; and
the update path, with cruft, from an older template commit to a newer one.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.combinations import ALL, FULL_IN_COMMAND_2, MYPY_IN_COMMAND_2, Combination
from tests.rendering import (
    EVERY,
    PAIRWISE_NOW_THE_REST_SLOW,
    TEMPLATE,
    capture,
    clean_env,
    mypy_env,
    run,
)

# The checkers come with the template's dev dependencies, next to this interpreter.
BIN = Path(sys.executable).parent
PINNED = re.compile(r"^\s*-?\s*uses:\s*([\w.-]+/[\w./-]+)@([0-9a-f]{40}) # v\d+\.\d+\.\d+$")
USES = re.compile(r"^\s*-?\s*uses:\s*(\S+)")
# Prints the arguments that name no importable module.
UNFOUND = "import importlib.util as u, sys; print(*(m for m in sys.argv[1:] if not u.find_spec(m)))"
# In command 3: a combination whose pre-commit and type check both run there.
MYPY_HOOK_RUNS_FOR = next(
    c.id for c in ALL if c.id not in FULL_IN_COMMAND_2 and c.id not in MYPY_IN_COMMAND_2
)
CACHES = shutil.ignore_patterns(
    ".git", ".venv", ".mypy_cache", ".ruff_cache", ".pytest_cache", "__pycache__"
)


def tool(name: str) -> str:
    path = BIN / name
    assert path.exists(), f"{name} not found next to {sys.executable}: run `uv sync`"
    return str(path)


def checker_env() -> dict[str, str]:
    # actionlint runs shellcheck on `run:` scripts when it finds it on PATH.
    return {**clean_env(), "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def backing_services(combination: Combination) -> set[str]:
    database = "postgres" if combination.database == "postgres" else "mongodb"
    return {database, "redis", combination.broker}


def check_workflow_files(workflows: list[Path], dependabot: Path, cwd: Path) -> None:
    """Schemas (check-jsonschema's own copies), actionlint, zizmor, and pinned actions."""
    env = checker_env()
    schema = [tool("check-jsonschema"), "--builtin-schema"]
    run([*schema, "vendor.github-workflows", *map(str, workflows)], cwd=cwd, env=env)
    run([*schema, "vendor.dependabot", str(dependabot)], cwd=cwd, env=env)
    run([tool("actionlint"), *map(str, workflows)], cwd=cwd, env=env)
    run([tool("zizmor"), "--offline", *map(str, [*workflows, dependabot])], cwd=cwd, env=env)
    ecosystems = {u["package-ecosystem"] for u in load_yaml(dependabot)["updates"]}
    assert {"uv", "github-actions"} <= ecosystems
    for workflow in workflows:
        assert load_yaml(workflow)["permissions"] == {"contents": "read"}
        for line in workflow.read_text().splitlines():
            # A workflow of this repository (`uses: $/...`) comes from the same commit.
            if (match := USES.match(line)) and not match.group(1).startswith(("$/", "./")):
                assert PINNED.match(line), f"{workflow.name}: not pinned to a SHA: {line}"
        jobs = load_yaml(workflow)["jobs"].values()
        steps = [step for job in jobs for step in job.get("steps", [])]
        for step in steps:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


def pins(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2) for line in text.splitlines() if (m := PINNED.match(line))}


# --- the container image -------------------------------------------------------------


def build_context(project: Path) -> set[str]:
    """Top-level names that .dockerignore lets into the build context (last match wins)."""
    rules = [
        line.strip()
        for line in (project / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sent: set[str] = set()
    for path in project.iterdir():
        included = True
        for rule in rules:
            pattern = rule.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path.name, pattern):
                included = rule.startswith("!")
        if included:
            sent.add(path.name)
    return sent


def third_party_imports(package: Path) -> set[str]:
    """Top-level names of the modules imported from outside the package and the stdlib."""
    names: set[str] = set()
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {package.name, "__future__"}


@pytest.mark.parametrize("combination", EVERY)
def test_container_image(combination: Combination, project: Path, tmp_path: Path) -> None:
    dockerfile = project / "Dockerfile"
    run([tool("hadolint"), str(dockerfile)], cwd=project)
    text = dockerfile.read_text()
    assert re.search(r"^USER \d+", text, re.M), "the image must not run as root"
    assert "HEALTHCHECK" in text
    assert "/health/live" in text

    context = build_context(project)
    assert not context & {".env", ".git", ".venv", "tests"}, context
    copies = [
        line.split()[1:-1]
        for line in text.splitlines()
        if line.startswith("COPY ") and "--from=" not in line
    ]
    for sources in copies:
        for source in sources:
            if "*" not in source:
                assert source.rstrip("/") in context, f"COPY {source}: not in the build context"

    # What the builder stage does, outside Docker: the runtime dependencies alone, from
    # the lock, in a fresh virtualenv, from the files the build context holds.
    ctx = tmp_path / "context"
    ctx.mkdir()
    for name in context:
        if (project / name).is_dir():
            shutil.copytree(project / name, ctx / name, ignore=CACHES)
        else:
            shutil.copy2(project / name, ctx / name)
    venv = tmp_path / "venv"
    env = {**clean_env(), "UV_PROJECT_ENVIRONMENT": str(venv)}
    run(["uv", "sync", "--locked", "--no-dev", "--quiet"], cwd=ctx, env=env)
    # Every module the app imports resolves there (found, not imported: importing the
    # app is the project's own suite's job, against real services).
    imported = sorted(third_party_imports(ctx / "app"))
    python = str(venv / "bin" / "python")
    missing = run([python, "-c", UNFOUND, *imported, "pytest"], cwd=ctx, env=clean_env()).split()
    assert missing == ["pytest"], f"missing at runtime, or a dev dependency leaked in: {missing}"
    if combination.database == "postgres":
        assert (venv / "bin" / "alembic").exists(), "the migrate service runs alembic"


# --- docker compose ----------------------------------------------------------------------


@pytest.mark.parametrize("combination", EVERY)
def test_compose_file(combination: Combination, project: Path) -> None:
    compose = project / "compose.yaml"
    run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(compose)],
        cwd=project,
    )
    everything: dict[str, Any] = load_yaml(compose)["services"]
    # `docker compose up` starts the services of no profile; the observability stack
    # comes only with `--profile observability`.
    services = {name: s for name, s in everything.items() if not s.get("profiles")}
    backing = backing_services(combination)
    one_shot = {"migrate"} if combination.database == "postgres" else set()
    assert set(services) == {"app"} | backing | one_shot
    check_observability_profile(project, everything)

    images = {
        "postgres": "postgres:",
        "mongodb": "mongo:",
        "redis": "redis:",
        "rabbitmq": "rabbitmq:",
        "kafka": "apache/kafka:",
    }
    for name in backing:
        assert services[name]["image"].startswith(images[name]), services[name]["image"]
        assert services[name]["healthcheck"]["test"], f"{name} has no healthcheck"
    if combination.database == "mongodb":
        # A single-node replica set (transactions), initiated by its healthcheck, which
        # passes only once the node is primary.
        mongodb = services["mongodb"]
        assert mongodb["command"][:2] == ["--replSet", "rs0"]
        check = " ".join(mongodb["healthcheck"]["test"])
        assert "rs.initiate" in check
        assert "isWritablePrimary" in check
        assert "replicaSet=rs0" in services["app"]["environment"]["MONGODB_URL"]
        host_url = re.search(r"^MONGODB_URL=(.*)$", (project / ".env.example").read_text(), re.M)
        assert host_url
        assert "directConnection=true" in host_url.group(1)

    app = services["app"]
    assert app["env_file"] == ".env"  # the secrets
    conditions = {name: dep["condition"] for name, dep in app["depends_on"].items()}
    expected = dict.fromkeys(backing, "service_healthy")
    if one_shot:
        expected["migrate"] = "service_completed_successfully"
        migrate = services["migrate"]
        assert migrate["command"] == ["alembic", "upgrade", "head"]
        assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert conditions == expected

    # The app's URLs are the settings' own variables (the ones .env.example documents),
    # each pointing at a compose service by name.
    url_vars = {"REDIS_URL": "redis", "BROKER_URL": combination.broker}
    if combination.database == "postgres":
        url_vars["DATABASE_URL"] = "postgres"
    else:
        url_vars["MONGODB_URL"] = "mongodb"
    environment: dict[str, str] = app["environment"]
    assert set(environment) == set(url_vars)
    documented = (project / ".env.example").read_text()
    for variable, host in url_vars.items():
        assert f"\n{variable}=" in documented, f"{variable} is not a setting"
        assert re.search(rf"(//|^|@){host}:\d+", environment[variable]), environment[variable]


OBSERVABILITY = {"otel-collector", "jaeger", "prometheus", "grafana"}


def check_observability_profile(project: Path, services: dict[str, Any]) -> None:
    """The profile's services, each mounting files the project has, ports on loopback."""
    profiled = {name for name, s in services.items() if s.get("profiles")}
    assert profiled == OBSERVABILITY
    for name in OBSERVABILITY:
        service = services[name]
        assert service["profiles"] == ["observability"], name
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (project / source).exists(), f"{name} mounts a missing {source}"
    collector = load_yaml(project / "observability" / "otel-collector.yaml")
    protocols = collector["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].endswith(":4317")
    assert protocols["http"]["endpoint"].endswith(":4318")
    assert collector["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    assert collector["service"]["pipelines"]["traces"]["exporters"] == ["otlp/jaeger"]
    prometheus = load_yaml(project / "observability" / "prometheus" / "prometheus.yml")
    # The job named after the service, as the ServiceDown alert selects it.
    (job,) = [job for job in prometheus["scrape_configs"] if job["job_name"] == project.name]
    assert job["static_configs"] == [{"targets": ["app:8000"]}]
    mounted = {config["target"] for config in services["prometheus"]["configs"]}
    token = "/etc/prometheus/" + job["authorization"]["credentials_file"]
    assert token in mounted, "the metrics token is mounted where the scrape config reads it"
    datasources = load_yaml(
        project / "observability" / "grafana" / "provisioning" / "datasources" / "datasources.yaml"
    )
    urls = {source["type"]: source["url"] for source in datasources["datasources"]}
    assert urls == {"prometheus": "http://prometheus:9090", "jaeger": "http://jaeger:16686"}


# --- CI and Dependabot -------------------------------------------------------------------


@pytest.mark.parametrize("combination", EVERY)
def test_ci_workflow(combination: Combination, project: Path) -> None:
    workflow = project / ".github" / "workflows" / "ci.yml"
    dependabot = project / ".github" / "dependabot.yml"
    check_workflow_files([workflow], dependabot, cwd=project)
    jobs = load_yaml(workflow)["jobs"]
    # MongoDB runs as a replica set, which a service container cannot (it takes no
    # command): a step starts it.
    containers = backing_services(combination) - {"mongodb"}
    assert set(jobs["test"]["services"]) == containers
    if combination.database == "mongodb":
        (start,) = [s for s in jobs["test"]["steps"] if "docker run" in s.get("run", "")]
        assert re.search(r"mongo:[0-9.]+ --replSet rs0", start["run"]), start["run"]
        assert "rs.initiate" in start["run"]
        assert jobs["test"]["env"]["MONGODB_URL"].endswith("?replicaSet=rs0")
    commands = " ".join(s.get("run", "") for job in jobs.values() for s in job["steps"])
    for command in ("ruff check", "ruff format --check", "mypy", "pytest", "docker build"):
        assert command in commands, command
    ecosystems = {u["package-ecosystem"] for u in load_yaml(dependabot)["updates"]}
    assert ecosystems == {"uv", "docker", "docker-compose", "github-actions"}


# --- the linters a team runs on day one ---------------------------------------------------


@pytest.mark.parametrize("combination", EVERY)
def test_yamllint_passes_with_the_shipped_config(combination: Combination, project: Path) -> None:
    """yamllint as a user runs it in the project (`yamllint .` reads `.yamllint`),
    strict: warnings fail too."""
    assert (project / ".yamllint").is_file()
    run([tool("yamllint"), "--strict", "."], cwd=project)


@pytest.mark.parametrize("combination", EVERY)
def test_compose_credentials_come_from_env(combination: Combination, project: Path) -> None:
    """No credential is written in compose.yaml: each comes from .env, where `${VAR:?}`
    names it when missing, and .env.example defines every one of them."""
    lines = (project / "compose.yaml").read_text().splitlines()
    text = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    assert not re.search(r"://[^/\s$]+:[^@\s$]+@", text), "a user:password in a URL"
    documented = (project / ".env.example").read_text()
    used = set(re.findall(r"\$\{(\w+):\?", text))
    for variable in used:
        assert re.search(rf"^{variable}=", documented, re.M), f"{variable} not in .env.example"
    services: dict[str, Any] = load_yaml(project / "compose.yaml")["services"]
    for service in services.values():
        for key, value in (service.get("environment") or {}).items():
            if key.endswith(("PASSWORD", "PASS")):
                assert str(value).startswith("${"), f"{key} is written in compose.yaml"


@pytest.mark.slow
def test_checkov_finds_nothing_in_any_combination(cookies_session: Any, tmp_path: Path) -> None:
    """checkov (secrets, Dockerfile, GitHub Actions) over all 16 renders in one run:
    importing checkov takes 20-30 s here, so one process scans every combination."""
    renders = {}
    for combination in ALL:
        result = cookies_session.bake(extra_context=combination.answers())
        assert result.exit_code == 0, result.exception
        renders[combination.id] = result.project_path
    args = [tool("checkov"), "--quiet", "--compact", "--skip-download", "--output", "json"]
    args += ["--framework", "secrets", "dockerfile", "github_actions"]
    for path in renders.values():
        args += ["--directory", str(path)]
    result = capture(args, tmp_path, checker_env(), timeout=900)
    # One JSON document per directory, each a report or a list of reports.
    reports: list[dict[str, Any]] = []
    decoder, text, at = json.JSONDecoder(), result.stdout, 0
    while text[at:].strip():
        document, at = decoder.raw_decode(text, at + len(text[at:]) - len(text[at:].lstrip()))
        reports.extend(document if isinstance(document, list) else [document])
    failed = [
        f"{check['check_id']} {check['repo_file_path']}:{check['file_line_range']} "
        f"({check['check_name']})"
        for report in reports
        for check in report.get("results", {}).get("failed_checks", [])
    ]
    assert not failed, "\n".join(failed)
    assert result.returncode == 0, result.stderr[-3000:]
    passed = sum(report.get("summary", {}).get("passed", 0) for report in reports)
    assert passed > 100, reports


# --- pre-commit and the Makefile ---------------------------------------------------------


# The pairwise five in command 2, the other eleven in command 3 (about 2 s of CPU each).
@pytest.mark.parametrize("combination", PAIRWISE_NOW_THE_REST_SLOW)
def test_pre_commit_passes_offline_and_changes_nothing(
    combination: Combination,
    project: Path,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    config = load_yaml(project / ".pre-commit-config.yaml")
    assert [repo["repo"] for repo in config["repos"]] == ["local"]  # nothing to download
    hooks = {hook["id"]: hook for hook in config["repos"][0]["hooks"]}
    assert {hook["language"] for hook in hooks.values()} == {"system"}
    assert hooks["mypy"]["pass_filenames"] is False

    # In a copy turned into a git repository: the rendered project itself stays as made.
    repo = tmp_path / "repo"
    shutil.copytree(project, repo, ignore=CACHES)
    run(["git", "init", "--quiet"], cwd=repo)
    run(["git", "add", "--all"], cwd=repo)
    env = {
        **mypy_env(tmp_path_factory),
        "UV_PROJECT_ENVIRONMENT": str(project / ".venv"),
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
    }
    # mypy runs on every combination in test_matrix with this same configuration; here
    # it runs through its hook once, which is enough to prove the hook's wiring: in
    # command 3, on a combination test_matrix type-checks there too (same worker, same
    # cache).
    if combination.id != MYPY_HOOK_RUNS_FOR:
        env["SKIP"] = "mypy"
    pre_commit = str(project / ".venv" / "bin" / "pre-commit")
    run([pre_commit, "run", "--all-files", "--show-diff-on-failure"], cwd=repo, env=env)
    run(["git", "diff", "--exit-code"], cwd=repo)
    untracked = run(["git", "ls-files", "--others", "--exclude-standard"], cwd=repo)
    assert not untracked.strip(), f"pre-commit left new files: {untracked}"


@pytest.mark.parametrize("combination", EVERY)
def test_makefile_targets(combination: Combination, project: Path) -> None:
    targets = ["install", "run", "test", "lint", "format", "typecheck", "up", "services", "down"]
    if combination.database == "postgres":
        targets.append("migrate")
    else:
        assert "migrate:" not in (project / "Makefile").read_text()
    # -n prints each recipe without running it: every target exists and the file parses.
    printed = run(["make", "--dry-run", *targets], cwd=project)
    assert "docker compose up" in printed
    assert "make install" in run(["make", "help"], cwd=project)


# --- the template's own repository -------------------------------------------------------


def test_template_workflow_and_dependabot() -> None:
    workflows = sorted((TEMPLATE / ".github" / "workflows").glob("*.yml"))
    check_workflow_files(workflows, TEMPLATE / ".github" / "dependabot.yml", cwd=TEMPLATE)
    template = load_yaml(TEMPLATE / ".github" / "workflows" / "template.yml")
    matrix = template["jobs"]["combination"]["strategy"]["matrix"]
    ids = {
        f"{d}-{a}-{b}-{c}"
        for d in matrix["database"]
        for a in matrix["api"]
        for b in matrix["broker"]
        for c in matrix["compliance"]
    }
    assert ids == {combination.id for combination in ALL}
    # The matrix also runs weekly on the current pins, and is what the pin bump calls.
    triggers = template[True]  # YAML 1.1 reads the key `on` as true
    assert {"schedule", "workflow_call", "push", "pull_request"} <= triggers.keys()
    assert triggers["workflow_call"]["inputs"]["ref"]["required"] is True

    # The weekly bump: newest releases a week old, the matrix on them, then a pull request.
    bump = load_yaml(TEMPLATE / ".github" / "workflows" / "bump-pins.yml")
    assert "schedule" in bump[True]
    jobs = bump["jobs"]
    commands = " ".join(step.get("run", "") for step in jobs["bump"]["steps"])
    assert "python -m scripts.bump_pins --cooldown-days 7" in commands
    assert jobs["matrix"]["uses"] == "$/.github/workflows/template.yml"
    assert jobs["matrix"]["needs"] == "bump"
    assert set(jobs["pull-request"]["needs"]) == {"bump", "matrix"}
    # Least privilege, job by job: only the bump pushes, only the last job opens the PR.
    assert jobs["bump"]["permissions"] == {"contents": "write"}
    assert jobs["matrix"]["permissions"] == {"contents": "read"}
    assert jobs["pull-request"]["permissions"] == {"pull-requests": "write"}
    # One version of each action across the template's workflow and the rendered one, so a
    # Dependabot bump of the template's pins shows up here until the project's follows.
    # MongoDB is a single-node replica set there too, started by a step in each job.
    assert "replicaSet=rs0" in template["env"]["MONGODB_URL"]
    for job in template["jobs"].values():
        assert "mongodb" not in job["services"]
        assert any("--replSet rs0" in step.get("run", "") for step in job["steps"])
    rendered = TEMPLATE / "{{cookiecutter.project_slug}}" / ".github" / "workflows" / "ci.yml"
    ours = {k: v for workflow in workflows for k, v in pins(workflow.read_text()).items()}
    theirs = pins(rendered.read_text())
    for action in ours.keys() & theirs.keys():
        assert ours[action] == theirs[action], f"{action} pinned differently"


IMAGE = re.compile(r"^\s*(?:image:|FROM)\s+([a-z0-9][\w./-]*):([\w.-]+)", re.M)
EXACT_TAG = re.compile(r"^v?\d+\.\d+(\.\d+)?(-[a-z][\w.-]*)?$")


def test_images_are_at_exact_tags_and_the_same_everywhere() -> None:
    """The Dockerfile's, compose's and both CI workflows' images: one exact tag each, so
    the template's CI tests the very images a rendered project runs."""
    slug = TEMPLATE / "{{cookiecutter.project_slug}}"
    files = [
        slug / "Dockerfile",
        slug / "compose.yaml",
        slug / ".github" / "workflows" / "ci.yml",
        TEMPLATE / ".github" / "workflows" / "template.yml",
    ]
    tags: dict[str, dict[str, str]] = {}
    for path in files:
        for match in IMAGE.finditer(path.read_text()):
            tags.setdefault(match.group(1), {})[str(path.relative_to(TEMPLATE))] = match.group(2)
    assert {"python", "postgres", "mongo", "redis", "rabbitmq", "apache/kafka"} <= tags.keys()
    for image, where in tags.items():
        assert len(set(where.values())) == 1, f"{image} is tagged differently: {where}"
        tag = next(iter(where.values()))
        assert EXACT_TAG.match(tag), f"{image}:{tag} is not an exact version ({where})"
    # Python's two-part tags (3.12-slim) move with each patch release; its exact ones have three.
    assert re.match(r"\d+\.\d+\.\d+-", next(iter(tags["python"].values()))), tags["python"]
    # The services the template's CI starts are exactly the ones the projects use.
    services = load_yaml(files[3])["jobs"]["combination"]["services"]
    for name, service in services.items():
        image, _, tag = service["image"].rpartition(":")
        assert tags[image][str(files[2].relative_to(TEMPLATE))] == tag, name


# --- the update path ---------------------------------------------------------------------


def git(cwd: Path, *args: str) -> str:
    identity = ["-c", "user.name=Template Test", "-c", "user.email=test@example.com"]
    return run(["git", *identity, *args], cwd=cwd)


def _template_repo(tmp_path: Path) -> Path:
    template = tmp_path / "template"
    shutil.copytree(TEMPLATE, template, ignore=CACHES)
    git(template, "init", "--quiet")
    git(template, "add", "--all")
    git(template, "commit", "--quiet", "-m", "the template as it is")
    return template


def _change_template(template: Path, line: str) -> str:
    makefile = template / "{{cookiecutter.project_slug}}" / "Makefile"
    makefile.write_text(makefile.read_text() + line + "\n")
    git(template, "commit", "--quiet", "-am", "a later template change")
    return git(template, "rev-parse", "HEAD").strip()


def _commit_all(project: Path, message: str) -> None:
    git(project, "init", "--quiet")
    git(project, "add", "--all")
    git(project, "commit", "--quiet", "-m", message)


def test_cruft_update_brings_template_changes_and_keeps_user_edits(tmp_path: Path) -> None:
    """Render from an older template commit, change the template, update the project:
    twice, as the README says (`cruft create`, `.env` skipped by the project's own
    `[tool.cruft]`), with `.cruft.json` the same but for the commit after each update."""
    template = _template_repo(tmp_path)
    older = git(template, "rev-parse", "HEAD").strip()

    combination = ALL[-1]  # not the defaults: the answers must be replayed on update
    answers = combination.answers()
    answers["project_slug"] = "kept-service"
    cruft = tool("cruft")
    out = tmp_path / "out"
    run(
        [
            *(cruft, "create", "--no-input", "--output-dir", str(out)),
            *("--extra-context", json.dumps(answers), str(template)),
        ],
        cwd=tmp_path,
    )
    project = out / "kept-service"
    state = json.loads((project / ".cruft.json").read_text())
    assert state["context"]["cookiecutter"]["database"] == combination.database
    assert json.loads((project / ".cookiecutter.json").read_text())["_commit"] == older
    secrets_before = (project / ".env").read_text()
    # Fresh from the template, the project has no differences from it (.env skipped).
    run([cruft, "diff", "--exit-code"], cwd=project)

    _commit_all(project, "generated")
    readme = project / "README.md"
    user_line = "Our team's notes: deploys go through the platform pipeline."
    readme.write_text(readme.read_text().replace("\n", f"\n\n{user_line}\n", 1))
    git(project, "commit", "--quiet", "-am", "our own notes")

    for round_ in (1, 2):
        template_line = f"# Added by a later version of the template ({round_})."
        newer = _change_template(template, template_line)
        outdated = subprocess.run([cruft, "check"], cwd=project, capture_output=True, check=False)
        assert outdated.returncode != 0, "cruft check should see the newer template commit"
        run([cruft, "update", "--skip-apply-ask", "--allow-untracked-files"], cwd=project)
        run([cruft, "check"], cwd=project)

        assert template_line in (project / "Makefile").read_text(), "the change is missing"
        assert user_line in readme.read_text(), "the user's edit was lost"
        updated = json.loads((project / ".cruft.json").read_text())
        assert updated["commit"] == newer
        # Only the commit and its record in the context move; no list grows.
        assert {k: v for k, v in updated.items() if k not in {"commit", "context"}} == {
            k: v for k, v in state.items() if k not in {"commit", "context"}
        }, updated
        assert updated.get("skip", []) == [], "skip belongs to [tool.cruft] in pyproject.toml"
        assert (project / ".env").read_text() == secrets_before, "the project's secrets changed"
        assert not list(project.rglob("*.rej")), "the update left conflicts"
        recorded = json.loads((project / ".cookiecutter.json").read_text())
        assert recorded["_commit"] == newer
        changed = set(git(project, "status", "--porcelain").split())
        assert changed == {"M", "Makefile", ".cruft.json", ".cookiecutter.json"}, changed
        git(project, "commit", "--quiet", "-am", f"template update {round_}")


def test_a_plain_cookiecutter_render_links_to_its_own_commit_and_updates(tmp_path: Path) -> None:
    """A project made with plain cookiecutter from an older template commit, linked as
    its README says (`cruft link --checkout <_commit>`): the newer change arrives."""
    template = _template_repo(tmp_path)
    older = git(template, "rev-parse", "HEAD").strip()
    out = tmp_path / "out"
    run(
        [
            str(BIN / "cookiecutter"),
            "--no-input",
            "-o",
            str(out),
            str(template),
            "database=mongodb",
        ],
        cwd=tmp_path,
    )
    project = out / "orders-service"
    recorded = json.loads((project / ".cookiecutter.json").read_text())
    assert recorded["_commit"] == older
    assert recorded["database"] == "mongodb"
    _commit_all(project, "generated")
    template_line = "# Added after the project was rendered."
    newer = _change_template(template, template_line)

    # The README's command, with TEMPLATE and the commit taken from .cookiecutter.json.
    readme = (project / "README.md").read_text()
    assert 'cruft link --no-input --checkout "$(' in readme
    cruft = tool("cruft")
    run(
        [
            *(cruft, "link", "--no-input", "--checkout", recorded["_commit"]),
            *(str(template), "--extra-context", json.dumps(recorded)),
        ],
        cwd=project,
    )
    state = json.loads((project / ".cruft.json").read_text())
    assert state["commit"] == older, "linked to the latest commit: the newer change would hide"
    assert state["context"]["cookiecutter"]["database"] == "mongodb"
    git(project, "add", ".cruft.json")
    git(project, "commit", "--quiet", "-m", "linked")
    run([cruft, "update", "--skip-apply-ask", "--allow-untracked-files"], cwd=project)
    assert template_line in (project / "Makefile").read_text(), "the template change is missing"
    assert json.loads((project / ".cruft.json").read_text())["commit"] == newer
    assert not list(project.rglob("*.rej")), "the update left conflicts"
