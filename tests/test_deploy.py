"""The deployment files (Dockerfile, compose.yaml, deploy/) agree with the code: ports, probe and
scrape paths, STREAMLIMIT_* settings and their values, metric names, and Kubernetes wiring.

No Docker engine or cluster is needed: every file is parsed and checked against ``Settings``,
the app's routes and (when it has them) its ``/metrics`` exposition.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import ValidationError

from streamlimit import cli
from streamlimit.api.app import create_app
from streamlimit.api.routing import labels
from streamlimit.settings import ENV_PREFIX, Settings

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
NGINX_CONF = ROOT / "deploy" / "compose" / "nginx.conf"
K8S = ROOT / "deploy" / "k8s"
DASHBOARD = ROOT / "deploy" / "grafana" / "streamlimit-dashboard.json"
ALERTS = ROOT / "deploy" / "grafana" / "alerts.yaml"

# the documented metrics: name -> type
METRICS = {
    "streamlimit_requests": "counter",
    "streamlimit_request_duration_seconds": "histogram",
    "streamlimit_store_call_duration_seconds": "histogram",
    "streamlimit_store_errors": "counter",
    "streamlimit_active_streams": "gauge",
    "streamlimit_build_info": "gauge",
    "streamlimit_webhook_sent": "counter",
    "streamlimit_webhook_failed": "counter",
    "streamlimit_webhook_given_up": "counter",
    "streamlimit_webhook_queue_depth": "gauge",
    "streamlimit_webhook_oldest_age_seconds": "gauge",
    # prometheus_client's standard process metrics, one series per worker (label pid)
    "process_cpu_seconds": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
SERIES = {name + suffix: name for name, kind in METRICS.items() for suffix in SUFFIXES[kind]}
OUTCOMES = {
    "admitted", "evicted", "replaced", "readmitted", "renewed", "limit_reached", "too_many_starts",
    "not_active", "ended", "degraded", "store_error", "ok", "rejected",
}  # fmt: skip
ERROR_KINDS = {"timeout", "connection", "refused"}
REASONS = {"status", "timeout", "connection"}  # why a webhook attempt failed
# the metrics' own labels, plus the ones Prometheus adds when it scrapes
LABELS = {
    "route", "outcome", "script", "kind", "reason", "version", "pid", "le",
    "instance", "job", "pod", "namespace",
}  # fmt: skip
PROMQL_FUNCTIONS = {
    "sum", "count", "max", "min", "avg", "rate", "irate", "increase", "histogram_quantile", "absent",
    "clamp_min", "clamp_max", "topk", "bottomk", "label_values", "abs", "vector", "scalar",
}  # fmt: skip
PROMQL_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}
APP_LABELS = {"app.kubernetes.io/name": "streamlimit", "app.kubernetes.io/component": "api"}
TEST_SECRET = "t" * 40  # stands for a real 32+ byte secret wherever a file leaves it to the operator


# ---- loading


def load_yaml(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def one_yaml(path: Path) -> Any:
    docs = load_yaml(path)
    assert len(docs) == 1, f"{path} should hold one document"
    return docs[0]


def k8s(kind: str) -> dict[str, Any]:
    """The one object of ``kind`` among the manifests of kustomization.yaml."""
    found = [
        doc
        for resource in one_yaml(K8S / "kustomization.yaml")["resources"]
        for doc in load_yaml(K8S / resource)
        if doc["kind"] == kind
    ]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    obj: dict[str, Any] = found[0]
    return obj


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """Stages of the Dockerfile, each a list of (INSTRUCTION, arguments); continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue  # comment lines are dropped even inside a continuation, as Docker does
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical, pending = pending + line, ""
        keyword, _, args = logical.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "the Dockerfile ends inside a continuation"
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in instructions:
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args))
    return stages


def instruction(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for k, args in stage if k == keyword]


def dockerfile_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for args in instruction(stage, "ENV"):
        for word in shlex.split(args):
            name, sep, value = word.partition("=")
            assert sep, f"ENV {args!r}: use the NAME=value form"
            env[name] = value
    return env


def compose() -> dict[str, Any]:
    doc: dict[str, Any] = one_yaml(COMPOSE)
    return doc


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(str(item).partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}")


def interpolate(value: str, given: dict[str, str]) -> str:
    """compose's ``${NAME}``, ``${NAME:-default}``, ``${NAME:?message}`` with ``given`` as the shell."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m["name"], m["op"], m["arg"]
        if name in given:
            return given[name]
        if op in (":-", "-"):
            return str(arg)
        pytest.fail(f"compose.yaml needs ${{{name}}} from the shell; give the test a value for it")

    return _INTERPOLATION.sub(one, value)


def app_paths() -> set[str]:
    app = create_app(Settings(store_url="memory://"))
    return {path for r in app.routes if isinstance(path := getattr(r, "path", None), str)}


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """``Settings()`` as a process with exactly this environment would build it."""
    with monkeypatch.context() as m:
        for name in list(os.environ):
            if name.startswith(ENV_PREFIX):
                m.delenv(name)
        for name, value in env.items():
            m.setenv(name, value)
        return Settings()


SETTING_NAMES = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
DEFAULT_PORT = Settings.model_fields["port"].default


# ---- every file parses; the kustomization lists every manifest


def test_every_file_parses() -> None:
    for path in [COMPOSE, ALERTS, *sorted(K8S.glob("*.yaml"))]:
        assert load_yaml(path), f"{path} is empty"
    assert isinstance(json.loads(DASHBOARD.read_text()), dict)
    assert dockerfile_stages()
    listed = one_yaml(K8S / "kustomization.yaml")["resources"]
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(listed) == sorted(on_disk), "kustomization.yaml must list every manifest, once"
    for name in ("configmap.yaml", "secret.yaml", "deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml"):
        assert name in listed


# ---- Dockerfile


def test_dockerfile_builds_a_wheel_and_ships_only_the_venv() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage: a builder and the final image"
    builder, final = stages[0], stages[-1]
    builder_from = instruction(builder, "FROM")[0].split()
    final_from = instruction(final, "FROM")[0].split()
    # the venv's python is a link into the base image: both stages must use the same one
    assert builder_from[0] == final_from[0]
    assert "AS" in (w.upper() for w in builder_from)
    builder_run = " ".join(instruction(builder, "RUN"))
    assert "pip wheel" in builder_run
    assert "/opt/venv" in builder_run
    copies = instruction(final, "COPY")
    assert copies
    assert all(c.startswith("--from=") for c in copies), "the final stage copies built files only"
    assert any("/opt/venv" in c for c in copies)
    final_run = " ".join(instruction(final, "RUN"))
    for tool in ("gcc", "build-essential", "pip install", "apt-get install", "curl", "wget"):
        assert tool not in final_run, f"the final stage should not install {tool}"
    assert "/opt/venv/bin" in dockerfile_env(final)["PATH"]
    # what the builder copies exists, and .dockerignore does not hide it
    ignored = {line.strip() for line in DOCKERIGNORE.read_text().splitlines() if line.strip()}
    for args in instruction(builder, "COPY"):
        for source in args.split()[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            assert source not in ignored
    for must in (".venv", ".git", ".streamlimit", ".mypy_cache", ".pytest_cache", "**/*.egg-info"):
        assert must in ignored, f".dockerignore should exclude {must}"


def test_dockerfile_final_stage_runs_streamlimit_serve_as_non_root() -> None:
    final = dockerfile_stages()[-1]
    users = instruction(final, "USER")
    assert users, "the final stage needs a USER"
    user = users[-1].split(":")[0]
    assert user.isdigit(), "a fixed, numeric uid (runAsNonRoot can only check a number)"
    assert int(user) != 0
    assert int(user) == k8s("Deployment")["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert json.loads(instruction(final, "ENTRYPOINT")[-1]) == ["streamlimit"]
    assert json.loads(instruction(final, "CMD")[-1]) == ["serve"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["streamlimit"] == "streamlimit.cli:main"


def test_serve_is_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--help"])
    assert exited.value.code == 0
    assert "--store-url" in capsys.readouterr().out


def test_dockerfile_healthcheck_hits_healthz_with_python() -> None:
    final = dockerfile_stages()[-1]
    checks = instruction(final, "HEALTHCHECK")
    assert len(checks) == 1
    _, _, command = checks[0].partition(" CMD ")
    argv = json.loads(command)
    assert argv[0] == "python"
    assert "urllib.request" in argv[-1]  # slim images have no curl
    url = re.search(r"'(http://127\.0\.0\.1:)' \+ .*STREAMLIMIT_PORT', '(\d+)'\) \+ '(/[a-z]+)'", argv[-1])
    assert url is not None, argv[-1]
    assert int(url[2]) == DEFAULT_PORT
    assert url[3] == "/healthz"
    assert url[3] in app_paths()


def test_dockerfile_listens_on_every_interface_on_the_default_port() -> None:
    final = dockerfile_stages()[-1]
    env = dockerfile_env(final)
    assert env["STREAMLIMIT_HOST"] == "0.0.0.0"
    assert int(env["STREAMLIMIT_PORT"]) == DEFAULT_PORT == 3000
    assert [int(p.split("/")[0]) for p in instruction(final, "EXPOSE")] == [DEFAULT_PORT]


# ---- settings: names and values


def test_every_streamlimit_variable_is_a_setting() -> None:
    files = [DOCKERFILE, COMPOSE, *sorted(K8S.glob("*.yaml")), ROOT / "deploy" / "README.md"]
    for path in files:
        for name in set(re.findall(r"\bSTREAMLIMIT_[A-Z0-9_]+", path.read_text())):
            assert name in SETTING_NAMES, f"{path.name}: {name} is not a setting (Settings has no such field)"
    # envFrom passes every key of the ConfigMap and the Secret to the process
    secret = k8s("Secret")
    for key in [*k8s("ConfigMap")["data"], *secret.get("stringData", {}), *secret.get("data", {})]:
        assert key in SETTING_NAMES, f"{key} is not a setting"
    for name in ("streamlimit-a", "streamlimit-b"):
        for key in compose_env(compose()["services"][name]):
            assert key in SETTING_NAMES, f"compose.yaml {name}: {key} is not a setting"


def test_kubernetes_settings_are_valid_and_the_secret_placeholder_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    image_env = {k: v for k, v in dockerfile_env(dockerfile_stages()[-1]).items() if k in SETTING_NAMES}
    config = {str(k): str(v) for k, v in k8s("ConfigMap")["data"].items()}
    secret = {str(k): str(v) for k, v in k8s("Secret")["stringData"].items()}
    env = {**image_env, **config, **secret}
    # the shipped placeholder must stop start-up rather than run with a published key
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        settings_from(env, monkeypatch)
    settings = settings_from({**env, "STREAMLIMIT_JWT_SECRET": TEST_SECRET}, monkeypatch)
    assert settings.auth != "none", "pods listen on 0.0.0.0: they need authentication"
    assert settings.port == DEFAULT_PORT
    assert settings.store_url.startswith(("redis://", "rediss://", "redis+"))
    assert settings.workers == 1, "one worker per pod: scale with replicas"


def test_compose_settings_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    image_env = {k: v for k, v in dockerfile_env(dockerfile_stages()[-1]).items() if k in SETTING_NAMES}
    services = compose()["services"]
    for name in ("streamlimit-a", "streamlimit-b"):
        shell = {"STREAMLIMIT_JWT_SECRET": TEST_SECRET}
        env = {k: interpolate(v, shell) for k, v in compose_env(services[name]).items()}
        settings = settings_from({**image_env, **env}, monkeypatch)
        assert settings.auth != "none" or settings.insecure_no_auth
        if settings.auth == "none":  # allowed in the local demo only, and said so
            assert "INSECURE_NO_AUTH" in COMPOSE.read_text()
            assert "demo" in COMPOSE.read_text().lower()
        assert settings.store_url == "redis://redis:6379/0"
    # the secret is never written in the file: compose stops when the shell does not give it
    raw = compose_env(services["streamlimit-a"]).get("STREAMLIMIT_JWT_SECRET")
    if raw is not None:
        assert re.fullmatch(r"\$\{STREAMLIMIT_JWT_SECRET:\?[^}]+\}", raw), raw


# ---- compose


def test_compose_store_is_durable_and_never_evicts() -> None:
    services = compose()["services"]
    redis = services["redis"]
    assert redis["image"].startswith(("valkey/valkey:", "redis:"))
    command = redis["command"]
    words = command if isinstance(command, list) else shlex.split(command)
    pairs = dict(zip(words[1::2], words[2::2], strict=False))
    assert pairs["--appendonly"] == "yes"
    assert pairs["--appendfsync"] == "everysec"
    assert pairs["--maxmemory-policy"] == "noeviction"
    assert any(str(v).endswith(":/data") for v in redis["volumes"])
    assert "healthcheck" in redis


def test_compose_two_instances_behind_one_port() -> None:
    doc = compose()
    services = doc["services"]
    instances = {"streamlimit-a", "streamlimit-b"}
    for name in instances:
        service = services[name]
        build = service["build"]
        if isinstance(build, str):
            build = {"context": build}
        assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
        assert "redis" in service["depends_on"]
        assert "ports" not in service, "only the load balancer publishes a port"
    published = [(name, p) for name, s in services.items() for p in s.get("ports", [])]
    assert len(published) == 1, f"one published port, not {published}"
    lb_name, port = published[0]
    host_port, container_port = str(port).split(":")[-2:]
    assert int(host_port) == DEFAULT_PORT
    lb = services[lb_name]
    mounts = [str(v).split(":") for v in lb["volumes"]]
    assert any((ROOT / m[0]).resolve() == NGINX_CONF for m in mounts), "the LB uses deploy/compose/nginx.conf"
    conf = NGINX_CONF.read_text()
    assert re.findall(r"^\s*listen\s+(\d+);", conf, re.M) == [container_port]
    upstream = re.search(r"upstream\s+\w+\s*\{(.*?)\}", conf, re.S)
    assert upstream is not None
    servers = re.findall(r"^\s*server\s+([\w.-]+):(\d+)", upstream[1], re.M)
    assert {host for host, _ in servers} == instances
    assert {int(p) for _, p in servers} == {DEFAULT_PORT}
    assert set(lb["depends_on"]) == instances


# ---- Kubernetes


def pod_labels() -> dict[str, str]:
    labels: dict[str, str] = k8s("Deployment")["spec"]["template"]["metadata"]["labels"]
    return labels


def container() -> dict[str, Any]:
    containers = k8s("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    c: dict[str, Any] = containers[0]
    return c


def test_deployment_port_probes_and_scrape_paths_match_the_app() -> None:
    c = container()
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": DEFAULT_PORT}
    assert c.get("args", ["serve"]) == ["serve"]
    paths = app_paths()
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c[probe]["httpGet"]
        assert get["path"] == path, probe
        assert path in paths, f"{probe}: the app has no {path} route"
        assert get["port"] == "http"
    annotations = k8s("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == DEFAULT_PORT
    assert annotations["prometheus.io/path"] == "/metrics"


def test_the_scrape_path_is_a_route() -> None:
    if "/metrics" not in app_paths():
        pytest.skip("the app has no /metrics route yet: the scrape annotation cannot be checked")
    annotations = k8s("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics"


def test_deployment_is_locked_down_and_drains() -> None:
    spec = k8s("Deployment")["spec"]["template"]["spec"]
    c = container()
    assert spec["securityContext"]["runAsNonRoot"] is True
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert spec["automountServiceAccountToken"] is False
    # the service drains for up to 10 s after SIGTERM, after the preStop sleep
    pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", ["sleep", "0"])
    assert spec["terminationGracePeriodSeconds"] >= 15 + int(pre_stop[-1])
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(c["resources"][kind])
    env_from = {next(iter(ref)): ref[next(iter(ref))]["name"] for ref in c["envFrom"]}
    assert env_from == {
        "configMapRef": k8s("ConfigMap")["metadata"]["name"],
        "secretRef": k8s("Secret")["metadata"]["name"],
    }
    # with a read-only root, /tmp is the only writable place (PROMETHEUS_MULTIPROC_DIR, tempfiles)
    assert any(m["mountPath"] == "/tmp" for m in c["volumeMounts"])  # noqa: S108


def test_selectors_match_the_pods() -> None:
    deployment = k8s("Deployment")
    labels = pod_labels()
    assert labels == APP_LABELS
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    service = k8s("Service")
    assert service["spec"]["selector"] == labels
    (port,) = service["spec"]["ports"]
    assert port["port"] == 80
    assert port["targetPort"] == "http", "the container port's name"
    assert port["targetPort"] in {p["name"] for p in container()["ports"]}
    assert k8s("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == labels
    pdb = k8s("PodDisruptionBudget")["spec"]
    assert pdb.get("maxUnavailable") == 1 or pdb.get("minAvailable") == 1


def test_hpa_scales_the_deployment_on_cpu() -> None:
    hpa = k8s("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    deployment = k8s("Deployment")
    assert target == {
        "apiVersion": deployment["apiVersion"],
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert 40 <= metric["resource"]["target"]["averageUtilization"] <= 80
    assert hpa["spec"]["minReplicas"] >= 2, "one pod would make the PDB block every drain"
    assert "replicas" not in k8s("Deployment")["spec"], "the HPA owns the replica count"


# ---- metrics in the dashboard and the alerts


def walk_exprs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                yield value
            else:
                yield from walk_exprs(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_exprs(item)


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = list(walk_exprs(doc["panels"]))
    for var in doc.get("templating", {}).get("list", []):
        query = var.get("query")
        if var.get("type") == "query":
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def alert_exprs() -> list[str]:
    return [rule["expr"] for group in one_yaml(ALERTS)["groups"] for rule in group["rules"]]


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACES = re.compile(r"\{([^{}]*)\}")
_MATCHER = re.compile(r'\s*([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_IDENT = re.compile(r"(?<![\w.$])([A-Za-z_:][\w:]*)(\s*\()?")


def parse_promql(expr: str) -> tuple[set[str], list[tuple[str, str, str]], set[str]]:
    """(metric names, label matchers, grouping labels) of a PromQL expression or Grafana query."""
    matchers: list[tuple[str, str, str]] = []
    for body in _BRACES.findall(expr):
        for part in filter(str.strip, body.split(",")):
            m = _MATCHER.fullmatch(part)
            assert m is not None, f"unreadable matcher {part!r} in {expr}"
            matchers.append((m[1], m[2], m[3]))
    rest = _BRACES.sub(" ", expr)
    rest = re.sub(r"label_values\(([^,()]+),\s*(\w+)\s*\)", r"label_values(\1)", rest)
    grouping = {label.strip() for _, labels in _GROUPING.findall(rest) for label in labels.split(",")}
    rest = _GROUPING.sub(" ", rest)
    rest = _STRING.sub(" ", rest)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)  # range selectors and Grafana's $__rate_interval
    rest = re.sub(r"\boffset\s+\w+", " ", rest)
    rest = re.sub(r"\$\w+", " ", rest)
    names = set()
    for ident, call in _IDENT.findall(rest):
        if ident in PROMQL_KEYWORDS:
            continue
        if call:
            assert ident in PROMQL_FUNCTIONS, f"unknown function {ident} in {expr}"
        else:
            names.add(ident)
    return names, matchers, grouping - {""}


def route_labels() -> set[str]:
    """The route label values the code produces: those of the app's route table, and other."""
    return {*labels(create_app(Settings(store_url="memory://")).routes), "other"}


def check_exprs(exprs: list[str], where: str) -> set[str]:
    assert exprs, f"{where}: no expressions"
    allowed_values = {"outcome": OUTCOMES, "route": route_labels(), "kind": ERROR_KINDS, "reason": REASONS}
    used = set()
    for expr in exprs:
        assert expr.count("(") == expr.count(")"), f"{where}: unbalanced parentheses in {expr}"
        names, matchers, grouping = parse_promql(expr)
        assert names, f"{where}: no metric in {expr}"
        for name in names:
            assert name.startswith(("streamlimit_", "process_")), f"{where}: {name} is not our metric"
            assert name in SERIES, f"{where}: {name} is not a documented metric (or wrong suffix)"
            used.add(SERIES[name])
        for label in grouping | {label for label, _, _ in matchers}:
            assert label in LABELS, f"{where}: unknown label {label} in {expr}"
        for label, op, value in matchers:
            if label not in allowed_values or "$" in value or op.startswith("!"):
                continue
            values = value.split("|") if op == "=~" else [value]
            for v in values:
                assert v in allowed_values[label], f"{where}: {label}={v!r} never occurs, in {expr}"
    return used


def test_dashboard_uses_only_documented_metrics_and_all_of_them() -> None:
    used = check_exprs(dashboard_exprs(), "dashboard")
    assert used == set(METRICS), f"no panel for {set(METRICS) - used}"


def test_alerts_use_only_documented_metrics() -> None:
    used = check_exprs(alert_exprs(), "alerts")
    for name in ("streamlimit_store_errors", "streamlimit_requests", "streamlimit_request_duration_seconds"):
        assert name in used


def test_dashboard_is_importable() -> None:
    doc = json.loads(DASHBOARD.read_text())
    assert 36 <= doc["schemaVersion"] <= 41
    assert [i["name"] for i in doc["__inputs"]] == ["DS_PROMETHEUS"]
    assert doc["__inputs"][0]["pluginId"] == "prometheus"
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in doc["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            for label in re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")):
                assert label in LABELS, f"{panel['title']}: legend label {label}"
    titles = " ".join(p["title"].lower() for p in doc["panels"])
    topics = ["request rate", "refusal ratio", "p99", "p50", "store call", "store errors", "active streams"]
    for topic in [*topics, "degraded", "build info"]:
        assert topic in titles, f"no panel about {topic}"


def test_alert_rules_are_well_formed() -> None:
    groups = one_yaml(ALERTS)["groups"]
    names = []
    for group in groups:
        assert group["name"]
        for rule in group["rules"]:
            names.append(rule["alert"])
            assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule["for"]
            assert rule["labels"]["severity"] in ("critical", "warning", "info")
            assert rule["annotations"]["summary"]
    assert len(names) == len(set(names))
    exprs = " ".join(alert_exprs())
    assert "streamlimit_store_errors_total" in exprs  # store down
    assert 'outcome=~"limit_reached|too_many_starts"' in exprs  # refusal ratio
    assert 'route="heartbeat"' in exprs  # heartbeat p99 over its budget, 50 ms
    assert "> 0.05" in exprs
    assert 'outcome="degraded"' in exprs


def test_the_code_exports_every_metric_the_dashboard_reads() -> None:
    app = create_app(Settings(store_url="memory://"))
    if "/metrics" not in {getattr(r, "path", None) for r in app.routes}:
        pytest.skip("the app has no /metrics route yet: the metric names cannot be checked against it")

    async def scrape() -> httpx.Response:
        # no lifespan: /healthz and /metrics need no store
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost") as client:
            assert (await client.get("/healthz")).status_code == 200
            return await client.get("/metrics")

    response = asyncio.run(scrape())
    assert response.status_code == 200
    families = dict(re.findall(r"^# TYPE (\S+) (\S+)$", response.text, re.M))
    for name, kind in METRICS.items():
        exported = families.get(name) or families.get(name + "_total")
        assert exported == kind, f"{name}: the code exports {exported}, the deploy files expect a {kind}"
