"""The deployment files (deploy/) agree with the code: commands, variables, limits, probes, alerts.

Pure: the files are parsed with PyYAML and compared with the Procfile, the configuration
reference (docs/configuration.md) and constants imported from the code. promtool, when
installed, checks the alert rules and runs their unit tests; nothing else is started.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib.util
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from kombu.transport.redis import Channel

from tests import docs
from tests.graphsim.test_graphsim_imports import module_imports
from wa_media.observability.metrics import DEFAULT_METRICS_PORT
from wa_media.stores.broker import (
    ARCHIVE_PRIORITY,
    DELIVERIES_QUEUE,
    MEDIA_QUEUE,
    RESCUE_PRIORITY,
    TASK_TIME_LIMIT,
    beat_schedule_file,
)
from wa_media.stores.snapshot import queue_keys
from webhook.config import MAX_BODY_BYTES

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PROMETHEUS = DEPLOY / "prometheus"
PROCESSES = ("web", "worker", "beat")
# The packages the image (and the wheel it installs) holds, and those it must not.
PRODUCT = ("wa_media", "webhook", "worker")
DEVELOPMENT = ("graphsim", "devstack", "bench", "tests")
# Kubernetes objects of each process, by name.
DEPLOYMENTS = {"web": "wa-media-web", "worker": "wa-media-worker", "beat": "wa-media-beat"}

# The metrics the service exports; alert rules may use these and Prometheus's own `up`.
METRICS = frozenset(
    {
        "wa_media_pending",
        "wa_oldest_pending_age_seconds",
        "wa_nearest_deadline_seconds",
        "wa_tasks_total",
        "wa_webhook_requests_total",
        "wa_queue_depth",
        "wa_calls_paused",
        "wa_token_rejected_total",
        "wa_sweep_last_success_timestamp_seconds",
        "wa_delivery_dead_letters_total",
        "wa_delivery_oldest_pending_seconds",
        "up",
    }
)

# Libraries that read variables of the configuration table themselves (boto3's credential chain
# reads AWS_*): a variable our sources never name counts as read when one of these names it.
READING_LIBRARIES = ("botocore", "prometheus_client")

SECRET_NAME = re.compile(r"SECRET|TOKEN|KEY|PASSWORD", re.IGNORECASE)


# --- reading the files ---------------------------------------------------------------------


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    """Every non-empty document of a YAML file."""
    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


@cache
def procfile() -> dict[str, str]:
    """The Procfile: process name to command line."""
    lines = (ROOT / "Procfile").read_text(encoding="utf-8").splitlines()
    entries = [line.split(":", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name.strip(): command.strip() for name, command in entries}


def procfile_variables() -> set[str]:
    """The variables the Procfile's commands expand (`${PORT:-8000}`): the shell reads them."""
    return {
        match.group(1)
        for command in procfile().values()
        for match in re.finditer(r"\$\{([A-Z][A-Z0-9_]*)(?::-[^}]*)?\}", command)
    }


def kubernetes_words(command: str) -> list[str]:
    """A Procfile line as Kubernetes runs it: its words, with `${VAR:-default}` as `$(VAR)`.

    Kubernetes starts no shell: it expands `$(VAR)` in command and args itself, from the
    container's own env, so every such VAR must be defined there.
    """
    return shlex.split(re.sub(r"\$\{([A-Z][A-Z0-9_]*)(?::-[^}]*)?\}", r"$(\1)", command))


@cache
def compose() -> dict[str, Any]:
    """deploy/docker-compose.yml."""
    (document,) = yaml_documents(DEPLOY / "docker-compose.yml")
    return document


def app_services() -> dict[str, dict[str, Any]]:
    """The compose services that run our image (web, worker, beat and the bucket's set-up)."""
    return {
        name: service
        for name, service in compose()["services"].items()
        if str(service.get("image", "")).startswith("wa-media-archiver")
    }


@cache
def manifests() -> list[tuple[str, dict[str, Any]]]:
    """Every Kubernetes object under deploy/k8s, with the file it comes from."""
    return [
        (path.name, document)
        for path in sorted(K8S.glob("*.yaml"))
        for document in yaml_documents(path)
        if document.get("kind") != "Kustomization"
    ]


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    """The Kubernetes object of this kind and name."""
    found = [
        doc for _, doc in manifests() if doc["kind"] == kind and doc["metadata"]["name"] == name
    ]
    assert len(found) == 1, f"expected one {kind} {name} under deploy/k8s, found {len(found)}"
    return found[0]


def deployment(process: str) -> dict[str, Any]:
    """The Deployment running a Procfile process."""
    return k8s_object("Deployment", DEPLOYMENTS[process])


def container(process: str) -> dict[str, Any]:
    """The (only) container of a process's Deployment."""
    (only,) = deployment(process)["spec"]["template"]["spec"]["containers"]
    return only


def container_env(process: str) -> dict[str, dict[str, Any]]:
    """A process's container env entries by name."""
    return {entry["name"]: entry for entry in container(process).get("env", [])}


def env_example() -> dict[str, str]:
    """deploy/compose.env.example, commented-out examples included."""
    pairs = {}
    for line in (DEPLOY / "compose.env.example").read_text(encoding="utf-8").splitlines():
        match = re.match(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)$", line.strip())
        if match:
            pairs[match.group(1)] = match.group(2)
    return pairs


@cache
def documented_variables() -> frozenset[str]:
    """The variables of the configuration reference, docs/configuration.md (first column of the
    tables of its "Variables" section)."""
    names = set()
    for line in docs.doc_section("configuration", "Variables").splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    assert names, "docs/configuration.md's Variables section lists no variable"
    return frozenset(names)


@cache
def source_literals() -> frozenset[str]:
    """Every string literal in the Python sources of the product."""
    literals = set()
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    literals.add(node.value)
    return frozenset(literals)


@cache
def library_text(name: str) -> str:
    """The Python sources of an installed library, or nothing when it is not installed."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return ""
    return "\n".join(
        path.read_text(encoding="utf-8", errors="replace")
        for location in spec.submodule_search_locations
        for path in Path(location).rglob("*.py")
    )


def read_by_code(variable: str) -> bool:
    """Whether our sources, or a library reading it for us, name the variable as a string."""
    if variable in source_literals():
        return True
    quoted = (f'"{variable}"', f"'{variable}'")
    return any(q in library_text(lib) for lib in READING_LIBRARIES for q in quoted)


def known_variables() -> set[str]:
    """The variables a deployment may set: the documented ones code reads, and the Procfile's."""
    return {v for v in documented_variables() if read_by_code(v)} | procfile_variables()


def unknown(names: set[str]) -> list[str]:
    """Each name no code reads, with why."""
    problems = []
    for name in sorted(names - known_variables()):
        if name not in documented_variables():
            problems.append(f"{name} (not in docs/configuration.md's table)")
        else:
            problems.append(
                f"{name} (in docs/configuration.md, but no code of the product reads it)"
            )
    return problems


def dockerfile() -> list[str]:
    """deploy/Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    text = re.sub(r"\\\n", " ", text)
    return [line.strip() for line in text.splitlines() if line.strip() and line[0] != "#"]


def image_sources() -> list[str]:
    """What deploy/Dockerfile copies from the build context (not from another stage)."""
    return [
        source
        for line in dockerfile()
        if line.startswith("COPY ") and "--from" not in line
        for source in line.split()[1:-1]
    ]


def go_duration(text: str) -> int:
    """Seconds in a duration such as compose's `16m` or `1m30s`."""
    units = {"h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+)([hms])", text)
    assert parts, f"not a duration: {text}"
    assert "".join(n + u for n, u in parts) == text, f"not a duration: {text}"
    return sum(int(n) * units[u] for n, u in parts)


# --- commands --------------------------------------------------------------------------------
#
# The Procfile is the source of truth for the three commands. Compose runs each line word for
# word (compose itself expands ${PORT:-8000} as the shell would); the image's default command
# runs the web line through `sh -c exec`; Kubernetes runs the line's words with ${VAR:-default}
# written $(VAR), which it expands from the container's env (kubernetes_words).


def test_procfile_has_the_three_processes() -> None:
    assert set(procfile()) == set(PROCESSES)


@pytest.mark.parametrize("process", PROCESSES)
def test_compose_runs_the_procfile_line(process: str) -> None:
    assert compose()["services"][process]["command"] == procfile()[process]


@pytest.mark.parametrize("process", PROCESSES)
def test_kubernetes_runs_the_procfile_line(process: str) -> None:
    spec = container(process)
    words = kubernetes_words(procfile()[process])
    assert [*spec["command"], *spec.get("args", [])] == words
    for variable in re.findall(r"\$\(([A-Z][A-Z0-9_]*)\)", " ".join(words)):
        assert "value" in container_env(process).get(variable, {}), (
            f"{process} runs $({variable}) but its container does not define {variable}"
        )


def test_image_default_command_is_the_web_line() -> None:
    (cmd,) = [line for line in dockerfile() if line.startswith("CMD ")]
    assert json.loads(cmd.removeprefix("CMD ")) == ["sh", "-c", f"exec {procfile()['web']}"]


def test_web_listens_on_port_everywhere() -> None:
    port = container_env("web")["PORT"]["value"]
    ports = {p["name"]: p["containerPort"] for p in container("web")["ports"]}
    assert ports["http"] == int(port)
    assert compose()["services"]["web"]["environment"]["PORT"] == "${PORT:-8000}"
    assert "${PORT:-8000}:${PORT:-8000}" in compose()["services"]["web"]["ports"]


def test_web_runs_gevent_workers_everywhere() -> None:
    words = shlex.split(procfile()["web"])
    assert words[words.index("--worker-class") + 1] == "gevent"
    assert "--threads" not in words  # gevent ignores threads: a slow body must not hold one
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    assert re.search(r"^gevent==", lock, re.M), "gevent is not pinned in requirements.lock"


def test_web_metrics_are_served_on_their_own_port_only() -> None:
    from webhook.config import DEFAULT_WEB_METRICS_PORT

    port = int(container_env("web")["WEB_METRICS_PORT"]["value"])
    assert port == DEFAULT_WEB_METRICS_PORT
    ports = {p["name"]: p["containerPort"] for p in container("web")["ports"]}
    assert ports["metrics"] == port
    assert ports["http"] != port
    # The Service in front of web (and of Meta's traffic) does not carry the metrics.
    service_ports = k8s_object("Service", "wa-media-web")["spec"]["ports"]
    assert [p["targetPort"] for p in service_ports] == ["http"]
    # Compose: on its network only, never published on the host.
    web = compose()["services"]["web"]
    assert str(port) in [str(p) for p in web["expose"]]
    assert not any(str(port) in str(p) for p in web["ports"])
    assert f"EXPOSE 8000 {port} 9808" in dockerfile()
    # Prometheus scrapes web's `metrics` port, never `http`.
    (config,) = yaml_documents(PROMETHEUS / "prometheus.yml")
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "wa-media-web"]
    kept = [r["regex"] for r in job["relabel_configs"] if r.get("action") == "keep"]
    assert "metrics" in kept
    assert "http" not in kept
    scraping = docs.doc_section("operations", "Logs and metrics")
    assert f"<WEB_METRICS_PORT>/metrics` (default {port})" in scraping
    assert ":8000" not in scraping


# --- environment variables --------------------------------------------------------------------


def test_every_documented_variable_is_read_by_code() -> None:
    missing = sorted(
        v for v in documented_variables() if not read_by_code(v) and v not in procfile_variables()
    )
    assert not missing, f"docs/configuration.md lists variables no code reads: {missing}"


def _compose_variables() -> Iterator[tuple[str, set[str]]]:
    for name, service in app_services().items():
        yield f"docker-compose.yml service {name}", set(service.get("environment", {}))
    yield "compose.env.example", set(env_example())


def _env_secrets() -> set[str]:
    """The Secrets whose keys become environment variables of a Deployment."""
    names = set()
    for process in PROCESSES:
        for entry in container(process).get("env", []):
            ref = entry.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
        for source in container(process).get("envFrom", []):
            if "secretRef" in source:
                names.add(source["secretRef"]["name"])
    return names


def _k8s_variables() -> Iterator[tuple[str, set[str]]]:
    env_secrets = _env_secrets()
    for filename, doc in manifests():
        where = f"deploy/k8s/{filename} {doc['kind']} {doc['metadata']['name']}"
        if doc["kind"] == "ConfigMap":
            yield where, set(doc.get("data", {}))
        elif doc["kind"] == "Secret" and doc["metadata"]["name"] in env_secrets:
            yield where, set(doc.get("stringData", {})) | set(doc.get("data", {}))
        elif doc["kind"] == "Deployment":
            for spec in doc["spec"]["template"]["spec"]["containers"]:
                yield where, {entry["name"] for entry in spec.get("env", [])}


def test_compose_and_env_example_name_only_variables_the_code_reads() -> None:
    problems = [f"{where}: {p}" for where, names in _compose_variables() for p in unknown(names)]
    assert not problems, "variables no code reads:\n" + "\n".join(problems)


def test_kubernetes_names_only_variables_the_code_reads() -> None:
    found = list(_k8s_variables())
    assert {where.split()[0] for where, _ in found} >= {
        "deploy/k8s/configmap.yaml",
        "deploy/k8s/secret.template.yaml",
        "deploy/k8s/web.yaml",
    }
    problems = [f"{where}: {p}" for where, names in found for p in unknown(names)]
    assert not problems, "variables no code reads:\n" + "\n".join(problems)


def test_unknown_variable_is_named() -> None:
    assert unknown({"REDIS_URL", "PORT", "NO_SUCH_SETTING"}) == [
        "NO_SUCH_SETTING (not in docs/configuration.md's table)"
    ]


def test_example_secrets_are_dummies() -> None:
    values = dict(env_example())
    for doc in yaml_documents(K8S / "secret.template.yaml"):
        values.update(doc.get("stringData", {}))
    secret = {k: v for k, v in values.items() if SECRET_NAME.search(k)}
    assert secret, "no secret found to check"
    real = sorted(k for k, v in secret.items() if not v.startswith("dummy"))
    assert not real, f"example values that do not start with 'dummy': {real}"


def test_compose_sets_no_secret_itself() -> None:
    for name, service in app_services().items():
        assert service["env_file"] == "compose.env"
        secrets = [k for k in service.get("environment", {}) if SECRET_NAME.search(k)]
        assert not secrets, f"{name} sets {secrets} in docker-compose.yml, not from compose.env"


def test_secret_template_is_not_applied_by_kustomize() -> None:
    (kustomization,) = yaml_documents(K8S / "kustomization.yaml")
    assert "secret.template.yaml" not in kustomization["resources"]
    # Templates and examples are filled in by hand first: never applied as they are.
    kept_out = {"kustomization.yaml", "secret.template.yaml", "ingress.example.yaml"}
    listed = {p.name for p in K8S.glob("*.yaml")} - kept_out
    assert set(kustomization["resources"]) == listed


# --- the worker's grace period, beat, probes --------------------------------------------------


def test_worker_grace_period_outlasts_the_longest_task() -> None:
    pod = deployment("worker")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] > TASK_TIME_LIMIT
    assert go_duration(compose()["services"]["worker"]["stop_grace_period"]) > TASK_TIME_LIMIT


def test_exactly_one_beat() -> None:
    spec = deployment("beat")["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"]["type"] == "Recreate"
    assert compose()["services"]["beat"].get("deploy", {}).get("replicas", 1) == 1


def test_web_probes() -> None:
    spec = container("web")
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert "/healthz" in " ".join(compose()["services"]["web"]["healthcheck"]["test"])


def test_web_keeps_one_pod_through_disruptions() -> None:
    budget = k8s_object("PodDisruptionBudget", "wa-media-web")
    labels = deployment("web")["spec"]["template"]["metadata"]["labels"]
    assert budget["spec"]["minAvailable"] >= 1
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = k8s_object("Service", "wa-media-web")
    assert service["spec"]["selector"].items() <= labels.items()


@pytest.mark.parametrize("process", PROCESSES)
def test_pods_run_as_the_image_user(process: str) -> None:
    (user,) = [line.split()[1] for line in dockerfile() if line.startswith("USER ")]
    uid = int(user.split(":")[0])
    assert uid != 0
    pod = deployment(process)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == uid
    assert container(process)["securityContext"]["readOnlyRootFilesystem"] is True


def tmpfs_mounts(service: str) -> dict[str, dict[str, str]]:
    """A compose service's tmpfs mounts: path to options (`/x:uid=1,gid=1` short syntax)."""
    mounts = {}
    for entry in compose()["services"][service].get("tmpfs", []):
        path, _, options = entry.partition(":")
        mounts[path] = dict(option.partition("=")[::2] for option in options.split(",") if option)
    return mounts


def image_user() -> tuple[int, int]:
    """The uid and gid deploy/Dockerfile runs as."""
    (user,) = [line.split()[1] for line in dockerfile() if line.startswith("USER ")]
    uid, _, gid = user.partition(":")
    return int(uid), int(gid or uid)


def test_beat_can_write_its_schedule() -> None:
    """Its default place, in the temporary directory, is writable on a read-only root."""
    schedule_dir = os.path.dirname(beat_schedule_file({}))
    assert schedule_dir == tempfile.gettempdir()
    mounts = {m["mountPath"] for m in container("beat")["volumeMounts"]}
    assert "/tmp" in mounts
    assert "/tmp" in tmpfs_mounts("beat")
    assert "BEAT_SCHEDULE_FILE" not in container_env("beat")
    assert "BEAT_SCHEDULE_FILE" not in compose()["services"]["beat"].get("environment", {})


@pytest.mark.parametrize("process", ["web", "beat"])
def test_compose_home_belongs_to_the_image_user(process: str) -> None:
    """A tmpfs is root's unless told: gunicorn's socket needs the home writable."""
    (workdir,) = [line.split()[1] for line in dockerfile() if line.startswith("WORKDIR /var")]
    options = tmpfs_mounts(process)[workdir]
    uid, gid = image_user()
    assert (options.get("uid"), options.get("gid")) == (str(uid), str(gid))


def test_ingress_example_buffers_bodies_up_to_webs_limit() -> None:
    ingress = k8s_object("Ingress", "wa-media-web")
    annotations = ingress["metadata"]["annotations"]
    prefix = "nginx.ingress.kubernetes.io/"
    assert annotations[prefix + "proxy-request-buffering"] == "on"
    assert nginx_size(annotations[prefix + "proxy-body-size"]) == MAX_BODY_BYTES
    spec = ingress["spec"]
    (rule,) = spec["rules"]
    assert any(rule["host"] in tls["hosts"] and tls["secretName"] for tls in spec["tls"])
    service = k8s_object("Service", "wa-media-web")
    for path in rule["http"]["paths"]:
        assert path["path"].startswith("/webhook"), "only the webhook is published"
        backend = path["backend"]["service"]
        assert backend["name"] == service["metadata"]["name"]
        assert backend["port"]["name"] in {port["name"] for port in service["spec"]["ports"]}


# --- KEDA ----------------------------------------------------------------------------------


def test_keda_scales_the_worker_on_every_list_of_the_media_queue_and_on_deliveries() -> None:
    scaled = k8s_object("ScaledObject", "wa-media-worker")["spec"]
    assert scaled["scaleTargetRef"]["name"] == DEPLOYMENTS["worker"]
    assert "replicas" not in deployment("worker")["spec"], "KEDA owns the worker's replicas"
    # Never zero: workers also consume the replies queue, where the sweep rides.
    assert scaled["minReplicaCount"] >= 1
    triggers = scaled["triggers"]
    assert {t["type"] for t in triggers} == {"redis"}
    lists = {t["metadata"]["listName"] for t in triggers}
    # Deliveries are published without a priority: their one list is the queue's name.
    assert lists == {*queue_keys(MEDIA_QUEUE), DELIVERIES_QUEUE}
    # kombu's own naming of the lists that archive and rescued tasks go to.
    channel = SimpleNamespace(priority_steps=Channel.priority_steps, sep=Channel.sep)
    channel.priority = lambda n: Channel.priority(channel, n)
    for priority in (ARCHIVE_PRIORITY, RESCUE_PRIORITY):
        assert Channel._q_for_pri(channel, MEDIA_QUEUE, priority) in lists
    formula = scaled["advanced"]["scalingModifiers"]["formula"]
    assert set(re.findall(r"\w+", formula)) == {t["name"] for t in triggers}


def test_keda_reads_the_redis_of_redis_url() -> None:
    (secret,) = [
        d
        for d in yaml_documents(K8S / "secret.template.yaml")
        if d["metadata"]["name"] == "wa-media"
    ]
    url = urlsplit(secret["stringData"]["REDIS_URL"])
    for trigger in k8s_object("ScaledObject", "wa-media-worker")["spec"]["triggers"]:
        assert trigger["metadata"]["address"] == f"{url.hostname}:{url.port}"
        assert trigger["metadata"]["databaseIndex"] == url.path.strip("/")


# --- compose services ------------------------------------------------------------------------


def test_compose_file_is_read_by_compose_v1_and_v2() -> None:
    """Compose v1 (Debian's docker-compose) refuses top-level keys v2 added, such as `name`."""
    allowed = {"version", "services", "volumes", "networks", "secrets", "configs"}
    extra = {key for key in compose() if not key.startswith("x-")} - allowed
    assert not extra, f"top-level keys Compose v1 refuses: {sorted(extra)}"
    assert "version" not in compose(), "v2 warns that `version` is obsolete"


def nginx_directives(path: Path) -> dict[str, list[str]]:
    """Each simple directive of an nginx file (`name value;`), with every value it is given."""
    found: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"\s*([a-z_]+)\s+([^;{]*);", line)
        if match:
            found.setdefault(match.group(1), []).append(match.group(2).strip())
    return found


def nginx_size(value: str) -> int:
    """Bytes of an nginx size such as `4m` or `256k`."""
    units = {"": 1, "k": 1024, "m": 1024 * 1024, "g": 1024**3}
    match = re.fullmatch(r"(\d+)([kmg]?)", value.lower())
    assert match, value
    return int(match.group(1)) * units[match.group(2)]


def test_proxy_buffers_whole_bodies_up_to_webs_limit() -> None:
    conf = nginx_directives(DEPLOY / "proxy" / "nginx.conf")
    assert conf["proxy_request_buffering"] == ["on"]
    assert [nginx_size(v) for v in conf["client_max_body_size"]] == [MAX_BODY_BYTES]
    assert conf["listen"] == ["8443 ssl"]
    # /metrics stays between web and the scraper.
    assert "location = /metrics" in (DEPLOY / "proxy" / "nginx.conf").read_text()


def test_compose_proxy_fronts_web_over_https() -> None:
    services = compose()["services"]
    proxy = services["proxy"]
    assert proxy["depends_on"]["web"]["condition"] == "service_healthy"
    assert proxy["environment"]["UPSTREAM"] == f"web:{services['web']['environment']['PORT']}"
    assert proxy["ports"] == ["${HTTPS_PORT:-443}:8443"]
    assert proxy["read_only"] is True
    assert "https://127.0.0.1:8443/healthz" in proxy["healthcheck"]["test"]
    # The certificate made at first start is kept, never baked into the image.
    (tls,) = proxy["volumes"]
    assert tls.split(":")[0] in compose()["volumes"]
    assert not list((DEPLOY / "proxy").glob("*.key"))
    assert not list((DEPLOY / "proxy").glob("*.pem"))


def test_compose_redis_uses_deploy_redis_conf() -> None:
    redis = compose()["services"]["redis"]
    (mount,) = [v for v in redis["volumes"] if v.startswith("./redis.conf:")]
    conf_path = mount.split(":")[1]
    assert redis["command"][:2] == ["redis-server", conf_path]
    assert not {"--appendonly", "--maxmemory-policy", "--appendfsync"} & set(redis["command"])
    conf = (DEPLOY / "redis.conf").read_text(encoding="utf-8").splitlines()
    assert "appendonly yes" in conf
    assert "maxmemory-policy noeviction" in conf


def test_compose_seaweedfs_has_telemetry_off_and_the_bucket_made() -> None:
    services = compose()["services"]
    assert "-master.telemetry=false" in services["seaweedfs"]["command"]
    init = services["s3-init"]
    assert init["restart"] == "no"
    assert "create_bucket" in " ".join(init["command"])
    worker_needs = services["worker"]["depends_on"]
    assert worker_needs["s3-init"]["condition"] == "service_completed_successfully"


def test_compose_waits_only_on_services_with_health_checks() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for needed, how in service.get("depends_on", {}).items():
            assert how["condition"] in ("service_healthy", "service_completed_successfully")
            if how["condition"] == "service_healthy":
                assert "healthcheck" in services[needed], f"{name} waits on {needed}'s health"


# --- Redis and the cluster, locked down --------------------------------------------------------

# The compose variable holding Redis's password: compose refuses to start without it.
REDIS_PASSWORD_REF = re.compile(r"\$\{(REDIS_PASSWORD)(?::\?[^}]*)?\}")
PROMETHEUS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
    "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}},
}
KEDA_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "keda"}},
    "podSelector": {"matchLabels": {"app": "keda-operator"}},
}
REDIS_POD_LABELS = {"app.kubernetes.io/name": "redis"}


def test_compose_redis_requires_a_password() -> None:
    redis = compose()["services"]["redis"]
    command = redis["command"]
    assert "--requirepass" in command
    value = command[command.index("--requirepass") + 1]
    match = REDIS_PASSWORD_REF.fullmatch(value)
    assert match, f"--requirepass {value!r} is not taken from ${{REDIS_PASSWORD}}"
    assert ":?" in value, "compose must refuse to start the stack without REDIS_PASSWORD"
    # The health check's redis-cli authenticates (REDISCLI_AUTH), or it would only see NOAUTH.
    assert REDIS_PASSWORD_REF.fullmatch(redis["environment"]["REDISCLI_AUTH"])


@pytest.mark.parametrize("process", PROCESSES)
def test_compose_processes_reach_redis_with_its_password(process: str) -> None:
    url = compose()["services"][process]["environment"]["REDIS_URL"]
    match = re.fullmatch(r"redis://:(?P<password>\$\{[^}]+\})@redis:6379/\d+", url)
    assert match, f"{process}'s REDIS_URL {url!r} carries no password"
    assert REDIS_PASSWORD_REF.fullmatch(match.group("password"))


def test_kubernetes_redis_url_carries_the_password_keda_uses() -> None:
    secrets = {d["metadata"]["name"]: d for d in yaml_documents(K8S / "secret.template.yaml")}
    url = urlsplit(secrets["wa-media"]["stringData"]["REDIS_URL"])
    assert url.password
    assert url.password == secrets["wa-media-keda-redis"]["stringData"]["password"]
    for process in PROCESSES:
        ref = container_env(process)["REDIS_URL"]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == ("wa-media", "REDIS_URL")


def network_policies() -> dict[str, dict[str, Any]]:
    """The NetworkPolicies under deploy/k8s, by name."""
    return {
        doc["metadata"]["name"]: doc for _, doc in manifests() if doc["kind"] == "NetworkPolicy"
    }


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a Kubernetes label selector selects a pod with these labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def pod_labels(process: str) -> dict[str, str]:
    labels: dict[str, str] = deployment(process)["spec"]["template"]["metadata"]["labels"]
    return labels


def policies_for(labels: dict[str, str]) -> list[dict[str, Any]]:
    """The ingress policies that select a pod with these labels."""
    return [
        policy
        for policy in network_policies().values()
        if "Ingress" in policy["spec"]["policyTypes"]
        and selects(policy["spec"]["podSelector"], labels)
    ]


def ingress_rules(labels: dict[str, str]) -> list[dict[str, Any]]:
    return [rule for p in policies_for(labels) for rule in p["spec"].get("ingress") or []]


def our_processes(peer: dict[str, Any]) -> set[str]:
    """The processes a `from` peer of our namespace selects (none for another namespace's)."""
    if "namespaceSelector" in peer or "ipBlock" in peer:
        return set()
    return {p for p in PROCESSES if selects(peer.get("podSelector", {}), pod_labels(p))}


def test_the_namespace_denies_ingress_by_default() -> None:
    defaults = [
        p
        for p in network_policies().values()
        if p["spec"]["podSelector"] == {} and p["spec"]["policyTypes"] == ["Ingress"]
    ]
    assert defaults, "no policy selects every pod of the namespace"
    assert all(not p["spec"].get("ingress") for p in defaults), "the default must allow nothing"
    # Redis, wherever it runs in the namespace, is covered by it too.
    assert selects(defaults[0]["spec"]["podSelector"], REDIS_POD_LABELS)


def test_only_web_worker_and_beat_reach_redis() -> None:
    rules = ingress_rules(REDIS_POD_LABELS)
    assert rules, "no policy lets anything reach Redis"
    secret = yaml_documents(K8S / "secret.template.yaml")[0]
    port = urlsplit(secret["stringData"]["REDIS_URL"]).port
    reaching: set[str] = set()
    for rule in rules:
        assert rule.get("from"), "a rule open to every source"
        assert rule.get("ports") == [{"protocol": "TCP", "port": port}]
        for peer in rule["from"]:
            if peer == KEDA_PEER:
                continue  # KEDA's operator reads the media queue's length (worker-keda.yaml)
            processes = our_processes(peer)
            assert processes, f"a peer that is none of web, worker, beat: {peer}"
            reaching |= processes
    assert reaching == set(PROCESSES)
    # The app's own pods are not taken for Redis.
    for process in PROCESSES:
        assert not selects({"matchLabels": REDIS_POD_LABELS}, pod_labels(process))


def test_only_prometheus_reaches_the_metrics_ports() -> None:
    worker_ports = {p["name"]: p["containerPort"] for p in container("worker")["ports"]}
    assert worker_ports["metrics"] == DEFAULT_METRICS_PORT
    for process in ("web", "worker"):
        rules = ingress_rules(pod_labels(process))
        metrics = [r for r in rules if {"protocol": "TCP", "port": "metrics"} in r.get("ports", [])]
        assert metrics, f"no rule lets Prometheus scrape {process}'s metrics port"
        for rule in rules:
            names = {port["port"] for port in rule.get("ports", [])}
            assert names, f"{process}: a rule open on every port"
            if "metrics" in names:
                assert names == {"metrics"}
                assert rule["from"] == [PROMETHEUS_PEER], f"{process}: metrics open to others"
    # The worker takes no other connection; web takes webhooks on http from anywhere (Meta
    # arrives through the ingress controller), and nothing else.
    worker_rules = ingress_rules(pod_labels("worker"))
    assert all({p["port"] for p in r["ports"]} == {"metrics"} for r in worker_rules)
    web_ports = {p["port"] for r in ingress_rules(pod_labels("web")) for p in r["ports"]}
    assert web_ports == {"http", "metrics"}


def test_nothing_reaches_beat() -> None:
    assert ingress_rules(pod_labels("beat")) == []
    assert policies_for(pod_labels("beat")), "beat is selected by no policy at all"


def test_policies_name_ports_the_pods_have() -> None:
    checked = 0
    for process in PROCESSES:
        have = {p["name"] for p in container(process).get("ports", [])}
        for rule in ingress_rules(pod_labels(process)):
            for port in rule["ports"]:
                if process == "web" and port["port"] == "metrics" and "metrics" not in have:
                    # web serves /metrics on `http` until it gets a port of its own
                    # (WEB_METRICS_PORT); the rule is written for that port's name.
                    continue
                assert port["port"] in have, f"{process} has no port {port['port']}"
                checked += 1
    assert checked >= 2, "no policy names a port of web's or the worker's"


# --- the image -----------------------------------------------------------------------------


def test_image_installs_the_lock_then_the_project_without_resolving() -> None:
    runs = [line for line in dockerfile() if line.startswith("RUN ")]
    lock = runs.index("RUN pip install --no-deps -r requirements.lock")
    assert runs.index("RUN pip install --no-deps .") > lock
    (base,) = [line for line in dockerfile() if line.startswith("ARG PYTHON_IMAGE=")]
    assert base.startswith("ARG PYTHON_IMAGE=python:3.11-slim")
    assert {line for line in dockerfile() if line.startswith("FROM ")} == {
        "FROM ${PYTHON_IMAGE} AS build",
        "FROM ${PYTHON_IMAGE}",
    }


def test_image_copies_the_product_and_no_development_tool() -> None:
    packages = {source for source in image_sources() if (ROOT / source).is_dir()}
    assert packages == set(PRODUCT)
    include = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"][
        "setuptools"
    ]["packages"]["find"]["include"]
    assert sorted(include) == [f"{package}*" for package in PRODUCT], "the wheel packages more"


def test_image_holds_every_package_the_product_imports() -> None:
    local = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert {*PRODUCT, *DEVELOPMENT} <= local
    missing = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for package in PRODUCT
        for path in sorted((ROOT / package).rglob("*.py"))
        for line, name in module_imports(path)
        if name.split(".")[0] in local - set(PRODUCT)
    ]
    assert missing == []


def test_image_bakes_in_no_secret() -> None:
    for line in dockerfile():
        if line.startswith(("ENV ", "ARG ")):
            assert not SECRET_NAME.search(line), f"secret-like setting in the image: {line}"


def test_lock_pins_every_dependency() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    block = re.search(r"^dependencies = \[(.*?)^\]", pyproject, re.M | re.S)
    assert block
    wanted = {
        re.split(r"[\s\[<>=!~;]", item, maxsplit=1)[0].lower().replace("_", "-")
        for item in re.findall(r'"([^"]+)"', block.group(1))
    }
    lock = (ROOT / "requirements.lock").read_text(encoding="utf-8")
    pinned = {m.lower().replace("_", "-") for m in re.findall(r"^([A-Za-z0-9_.-]+)==", lock, re.M)}
    assert wanted <= pinned, f"not pinned in requirements.lock: {sorted(wanted - pinned)}"


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps `path` out (the syntax subset that file uses)."""
    ignored = False
    parts = path.split("/")
    for pattern in patterns:
        negate = pattern.startswith("!")
        glob = pattern.removeprefix("!").rstrip("/")
        for depth in range(1, len(parts) + 1):
            if glob.startswith("**/"):
                hit = fnmatch.fnmatchcase(parts[depth - 1], glob[3:])
            else:
                hit = fnmatch.fnmatchcase("/".join(parts[:depth]), glob)
            if hit:
                ignored = not negate
                break
    return ignored


def test_dockerignore_lets_in_only_what_the_image_copies() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    copied = image_sources()
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not _ignored(source, patterns), f".dockerignore drops {source}, which is copied"
    assert not _ignored("worker/tasks.py", patterns)
    for kept_out in (
        "deploy/compose.env",
        ".venv/bin/python",
        "tests/repo/test_deploy.py",
        "graphsim/server.py",
        "devstack/stack.py",
        "bench/chaos.py",
        "worker/__pycache__/tasks.cpython-311.pyc",
        ".git/config",
    ):
        assert _ignored(kept_out, patterns), kept_out


# --- alert rules -----------------------------------------------------------------------------

_PROMQL_WORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan"}


def promql_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (functions, labels and keywords left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])[A-Za-z_:][\w:]*", text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        if match.group().lower() not in _PROMQL_WORDS:
            names.add(match.group())
    return names


def test_promql_metrics_reads_expressions() -> None:
    expr = (
        'sum by (task) (increase(wa_tasks_total{outcome="failed"}[1h])) > 10 and on() '
        'max(wa_media_pending offset 5m) > 0 or absent(up{job="x"} == 1)'
    )
    assert promql_metrics(expr) == {"wa_tasks_total", "wa_media_pending", "up"}


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of deploy/prometheus/alerts.yml."""
    (document,) = yaml_documents(PROMETHEUS / "alerts.yml")
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def test_alerts_use_only_exported_metrics() -> None:
    rules = alert_rules()
    assert len({rule["alert"] for rule in rules}) == len(rules), "alert names repeat"
    for rule in rules:
        used = promql_metrics(rule["expr"])
        assert used, f"{rule['alert']} selects no metric"
        assert used <= METRICS, f"{rule['alert']} uses unknown metrics {sorted(used - METRICS)}"


def test_every_alert_has_a_runbook_entry() -> None:
    """Each alert's `runbook` names a heading of docs/runbook.md (its path from the repository
    root and the heading's anchor), and each alert has its own."""
    entries = docs.anchors(docs.doc("runbook"))
    links = []
    for rule in alert_rules():
        link = rule["annotations"]["runbook"]
        path, _, anchor = link.partition("#")
        assert path == "docs/runbook.md", f"{rule['alert']}: runbook {link}"
        assert docs.doc_path("runbook") == ROOT / path
        assert anchor in entries, f"{rule['alert']}: no entry {link}"
        assert anchor == docs.github_slug(rule["alert"]), f"{rule['alert']}: runbook {link}"
        links.append(link)
    assert len(set(links)) == len(links)


def test_prometheus_scrapes_the_jobs_the_alerts_name() -> None:
    (config,) = yaml_documents(PROMETHEUS / "prometheus.yml")
    jobs = {job["job_name"] for job in config["scrape_configs"]}
    named = {job for rule in alert_rules() for job in re.findall(r'job="([^"]+)"', rule["expr"])}
    assert named <= jobs
    assert config["rule_files"] == ["alerts.yml"]


@pytest.mark.skipif(
    shutil.which("promtool") is None and not os.environ.get("REQUIRE_PROMTOOL"),
    reason="promtool is not installed (CI sets REQUIRE_PROMTOOL, and installs it)",
)
def test_promtool_checks_and_tests_the_rules() -> None:
    assert shutil.which("promtool"), "promtool is not installed (Debian: apt install prometheus)"
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        done = subprocess.run(
            ["promtool", *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
