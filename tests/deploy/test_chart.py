"""The Helm chart, rendered offline with the Helm v4 SDK (helm-python-sdk, no binary, no cluster) and every
manifest validated against the Kubernetes schemas that kubernetes-validate bundles, in strict mode."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from tests.deploy.conftest import explicit_listen_host

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "fashion-search"
EXAMPLES = ROOT / "deploy" / "helm" / "examples"
K8S_VERSIONS = ("1.30.0", "1.37.0")  # the chart's oldest target (native gRPC probes GA in 1.27) and the newest bundled
RELEASE, NAMESPACE = "shop", "search"
PROJECT_PARTS = ("encoder", "query", "worker", "admin", "web")


def render(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    with helm.Chart.load(CHART) as chart:
        rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE)
    docs = []
    for path, text in sorted(rendered.items()):
        if path.endswith(".yaml"):
            docs += [doc for doc in yaml.safe_load_all(text) if doc]
    return docs


def example(name: str) -> dict[str, Any]:
    return yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())


def find(docs: list[dict[str, Any]], kind: str, part: str) -> dict[str, Any]:
    name = f"{RELEASE}-fashion-search-{part}"
    matches = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} rendered"
    return matches[0]


def names(docs: list[dict[str, Any]], kind: str) -> set[str]:
    prefix = f"{RELEASE}-fashion-search-"
    return {d["metadata"]["name"].removeprefix(prefix) for d in docs if d["kind"] == kind}


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return doc["spec"]["template"]["spec"]


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in {"Deployment", "StatefulSet", "CronJob"}]


def container(doc: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod_spec(doc)["containers"]
    return only


def config(docs: list[dict[str, Any]]) -> dict[str, str]:
    return find(docs, "ConfigMap", "settings")["data"]


@pytest.fixture(scope="module")
def default_docs() -> list[dict[str, Any]]:
    return render()


@pytest.fixture(scope="module")
def gpu_docs() -> list[dict[str, Any]]:
    return render(example("gpu"))


@pytest.fixture(scope="module")
def external_docs() -> list[dict[str, Any]]:
    return render(example("external-qdrant"))


# -- every manifest is valid Kubernetes ----------------------------------------------------------------------
@pytest.mark.parametrize("case", ["default", "gpu", "external-qdrant"])
def test_every_manifest_validates_strictly_against_the_kubernetes_schemas(case: str) -> None:
    docs = render(None if case == "default" else example(case))
    assert len(docs) >= 15
    for doc in docs:
        for version in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{case}: {doc['kind']}/{doc['metadata']['name']} at {path}: {exc.message}")


def test_strict_validation_rejects_what_the_values_schema_lets_through() -> None:
    """Second line of defence: a toleration with a made-up field passes values.schema.json (tolerations are
    free-form there) but strict Kubernetes validation refuses the rendered Deployment."""
    docs = render({"worker": {"tolerations": [{"key": "spot", "operator": "Exists", "efect": "NoSchedule"}]}})
    with pytest.raises(kubernetes_validate.ValidationError, match="efect"):
        kubernetes_validate.validate(find(docs, "Deployment", "worker"), K8S_VERSIONS[0], strict=True)


def test_chart_lints_clean() -> None:
    report = helm.lint(CHART, strict=True, kube_version=f"v{K8S_VERSIONS[0]}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []  # warnings and errors


# -- the default topology ------------------------------------------------------------------------------------
def test_default_release_has_the_whole_topology(default_docs) -> None:
    assert names(default_docs, "Deployment") == {"encoder", "query", "worker", "admin", "web"}
    assert names(default_docs, "StatefulSet") == {"qdrant", "redis"}
    assert names(default_docs, "Service") == {"encoder", "query", "admin", "web", "redis", "qdrant",
                                               "qdrant-headless"}
    assert names(default_docs, "HorizontalPodAutoscaler") == {"query"}
    assert names(default_docs, "CronJob") == {"reindex"}
    assert names(default_docs, "PodDisruptionBudget") == {"encoder", "query", "worker", "qdrant"}
    assert names(default_docs, "ConfigMap") == {"settings"} and names(default_docs, "Secret") == {"secrets"}


def test_services_and_disruption_budgets_select_real_pods_and_ports(default_docs) -> None:
    pods = {d["metadata"]["name"]: (d["spec"]["template"]["metadata"]["labels"], container(d))
            for d in default_docs if d["kind"] in {"Deployment", "StatefulSet"}}
    for doc in default_docs:
        if doc["kind"] not in {"Service", "PodDisruptionBudget"}:
            continue
        selector = doc["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        selected = [(labels, c) for labels, c in pods.values() if selector.items() <= labels.items()]
        assert len(selected) == 1, f"{doc['kind']}/{doc['metadata']['name']} selects {len(selected)} workloads"
        if doc["kind"] == "Service":
            port_names = {p["name"] for p in selected[0][1]["ports"]}
            for port in doc["spec"]["ports"]:
                assert port["targetPort"] in port_names, (doc["metadata"]["name"], port)


def test_project_pods_run_unprivileged_with_resources(default_docs) -> None:
    for doc in workloads(default_docs):
        spec, main = pod_spec(doc), container(doc)
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] > 0
        assert main["securityContext"]["allowPrivilegeEscalation"] is False
        assert main["securityContext"]["readOnlyRootFilesystem"] is True
        assert main["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert {"cpu", "memory"} <= main["resources"]["requests"].keys() <= main["resources"]["limits"].keys()
        assert spec["automountServiceAccountToken"] is False


def test_project_containers_run_real_cli_commands_with_the_settings(default_docs, cli_parser) -> None:
    """Every args list the chart gives the image's `fashion-search` entry point parses with the real CLI."""
    commands = {}
    for doc in workloads(default_docs):
        main = container(doc)
        if not main["image"].startswith("fashion-search-"):
            continue
        args = [re.sub(r"\$\((\w+)\)", "redis://example:6379/0", a) for a in main["args"]]
        commands[doc["metadata"]["name"].rsplit("-", 1)[1]] = cli_parser.parse_args(args).command
        assert main["envFrom"] == [
            {"configMapRef": {"name": f"{RELEASE}-fashion-search-settings"}},
            {"secretRef": {"name": f"{RELEASE}-fashion-search-secrets"}}]
    assert commands == {"encoder": "serve-encoder", "query": "serve-query", "worker": "worker",
                        "admin": "serve-admin", "web": "serve-web", "reindex": "reindex"}


def test_serving_containers_listen_on_every_interface_explicitly(default_docs, cli_parser) -> None:
    """Probes, Services and Prometheus reach a pod from outside it, and the CLI's serve commands listen on
    loopback by default: each serving container's args say --host 0.0.0.0 (serve-admin: --address 0.0.0.0:PORT)."""
    serving = {}
    for doc in workloads(default_docs):
        args = container(doc).get("args") or []
        if args and str(args[0]).startswith("serve-"):
            serving[doc["metadata"]["name"].rsplit("-", 1)[1]] = explicit_listen_host(args)
            parsed = cli_parser.parse_args(args)
            host = parsed.host if hasattr(parsed, "host") else parsed.address.rsplit(":", 1)[0]
            assert host == "0.0.0.0", args
    assert serving == {"encoder": "0.0.0.0", "query": "0.0.0.0", "admin": "0.0.0.0", "web": "0.0.0.0"}


def test_encoder_and_query_use_native_grpc_health_probes(default_docs) -> None:
    for part, port in (("encoder", 50051), ("query", 50052), ("admin", 50053)):
        main = container(find(default_docs, "Deployment", part))
        assert {"name": "grpc", "containerPort": port, "protocol": "TCP"} in main["ports"]
        assert main["readinessProbe"]["grpc"] == {"port": port}
        assert main["livenessProbe"]["grpc"] == {"port": port}
    encoder = container(find(default_docs, "Deployment", "encoder"))
    assert encoder["startupProbe"]["grpc"] == {"port": 50051}  # model loading gets its own budget
    assert encoder["env"] == [{"name": "FASHION_DEVICE", "value": "cpu"}]
    assert not any("nvidia.com/gpu" in encoder["resources"][k] for k in ("requests", "limits"))
    assert encoder["image"] == "fashion-search-encoder:0.1.0"


def test_every_grpc_service_serves_the_metrics_prometheus_is_told_to_scrape(default_docs, cli_parser) -> None:
    """The port a pod's scrape annotation names is a container port and the port its command serves metrics on."""
    for part, port in (("encoder", 9101), ("query", 9102), ("admin", 9103)):
        doc = find(default_docs, "Deployment", part)
        main = container(doc)
        annotations = doc["spec"]["template"]["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == str(port)
        assert {"name": "metrics", "containerPort": port, "protocol": "TCP"} in main["ports"]
        assert cli_parser.parse_args(main["args"]).metrics_port == port


def test_query_scales_with_an_hpa_and_workers_with_replicas(default_docs) -> None:
    hpa = find(default_docs, "HorizontalPodAutoscaler", "query")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": f"{RELEASE}-fashion-search-query"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 10)
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}
    assert "replicas" not in find(default_docs, "Deployment", "query")["spec"]  # the HPA owns it
    assert "replicas" in find(render({"query": {"autoscaling": {"enabled": False}, "replicas": 4}}),
                              "Deployment", "query")["spec"]
    worker = find(default_docs, "Deployment", "worker")
    assert worker["spec"]["replicas"] == 2
    assert container(worker)["args"][:4] == ["worker", "--concurrency", "2", "--pool"]


def test_qdrant_runs_distributed_with_a_headless_p2p_service(default_docs) -> None:
    qdrant = find(default_docs, "StatefulSet", "qdrant")
    assert qdrant["spec"]["replicas"] == 3
    assert qdrant["spec"]["serviceName"] == f"{RELEASE}-fashion-search-qdrant-headless"
    main = container(qdrant)
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in main["env"]}
    assert env["QDRANT__CLUSTER__ENABLED"] == "true" and env["QDRANT__CLUSTER__P2P__PORT"] == "6335"
    assert env["QDRANT__SERVICE__API_KEY"]["secretKeyRef"]["key"] == "FASHION_QDRANT_API_KEY"
    script = main["args"][0]
    peer0 = f"http://{RELEASE}-fashion-search-qdrant-0.{RELEASE}-fashion-search-qdrant-headless:6335"
    assert f'first="{peer0}"' in script and '--bootstrap "$first"' in script
    headless = find(default_docs, "Service", "qdrant-headless")
    assert headless["spec"]["clusterIP"] == "None" and headless["spec"]["publishNotReadyAddresses"] is True
    assert {"name": "p2p", "port": 6335, "targetPort": "p2p"} in headless["spec"]["ports"]
    settings = config(default_docs)
    assert settings["FASHION_QDRANT_URL"] == f"http://{RELEASE}-fashion-search-qdrant:6333"
    assert (settings["FASHION_QDRANT_SHARDS"], settings["FASHION_QDRANT_REPLICAS"]) == ("3", "2")
    assert settings["FASHION_ENCODER_ADDRESS"] == f"{RELEASE}-fashion-search-encoder:50051"
    assert settings["FASHION_INDEX_BACKEND"] == "qdrant"
    # The server has what the collection and search settings ask of it: ACORN (opt-in filtered search) needs
    # Qdrant 1.16 or later, and qdrant-client supports servers at most one minor version from its own.
    tag = re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)(-unprivileged)?", main["image"].rsplit(":", 1)[1])
    assert tag is not None and tag[4], main["image"]  # a released version, the image that runs as non-root
    assert (int(tag[1]), int(tag[2])) >= (1, 16)


def test_redis_url_lives_in_the_secret_and_the_cronjob_passes_it(default_docs) -> None:
    secret = find(default_docs, "Secret", "secrets")
    assert secret["stringData"] == {"FASHION_REDIS_URL": f"redis://{RELEASE}-fashion-search-redis:6379/0"}
    cron = find(default_docs, "CronJob", "reindex")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert container(cron)["args"] == ["reindex", "/data/catalog", "--index", "products",
                                       "--redis-url", "$(FASHION_REDIS_URL)", "--wait"]
    mounts = {m["mountPath"]: m.get("readOnly") for m in container(cron)["volumeMounts"]}
    assert mounts["/data"] is False  # the catalog is planned from the shared volume


# -- values files change what they should ---------------------------------------------------------------------
def test_gpu_values_request_gpus_and_run_the_cuda_image(gpu_docs) -> None:
    encoder = find(gpu_docs, "Deployment", "encoder")
    main = container(encoder)
    assert encoder["spec"]["replicas"] == 2
    assert main["resources"]["requests"]["nvidia.com/gpu"] == 1 == main["resources"]["limits"]["nvidia.com/gpu"]
    assert main["resources"]["requests"]["cpu"] == "2" and main["resources"]["limits"]["cpu"] == "8"
    assert main["image"] == "fashion-search-encoder:0.1.0-cuda"
    assert main["env"] == [{"name": "FASHION_DEVICE", "value": "cuda"}]
    spec = pod_spec(encoder)
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in main["volumeMounts"]
    settings = config(gpu_docs)
    assert settings["FASHION_MODEL"] == "/models/fashion-clip" and settings["HF_HUB_OFFLINE"] == "1"
    assert (settings["FASHION_ENCODER_MAX_BATCH"], settings["FASHION_ENCODER_MAX_WAIT_MS"]) == ("128", "10")
    hpa = find(gpu_docs, "HorizontalPodAutoscaler", "query")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 30)
    # Only the encoder gets GPUs.
    for doc in workloads(gpu_docs):
        if doc["metadata"]["name"].endswith("-encoder"):
            continue
        assert "nvidia.com/gpu" not in str(container(doc)["resources"])


def test_external_qdrant_and_redis_replace_the_in_release_ones(external_docs) -> None:
    assert names(external_docs, "StatefulSet") == set()
    assert not {"qdrant", "qdrant-headless", "redis"} & names(external_docs, "Service")
    assert "qdrant" not in names(external_docs, "PodDisruptionBudget")
    settings = config(external_docs)
    assert settings["FASHION_QDRANT_URL"] == "https://qdrant.example.com:6333"
    assert (settings["FASHION_QDRANT_SHARDS"], settings["FASHION_QDRANT_REPLICAS"]) == ("6", "2")
    assert "change-me" not in str(settings)  # credentials stay out of the ConfigMap
    assert find(external_docs, "Secret", "secrets")["stringData"] == {
        "FASHION_REDIS_URL": "redis://:change-me@redis.example.com:6379/0", "FASHION_QDRANT_API_KEY": "change-me"}


def test_an_existing_secret_replaces_the_charts_own() -> None:
    docs = render({"secret": {"existingSecret": "shop-credentials"}, "redis": {"enabled": False}})
    assert names(docs, "Secret") == set()
    for doc in workloads(docs):
        if container(doc)["image"].startswith("fashion-search-"):
            assert {"secretRef": {"name": "shop-credentials"}} in container(doc)["envFrom"]


# -- bad values fail at render time ---------------------------------------------------------------------------
@pytest.mark.parametrize(("values", "message"), [
    ({"query": {"replicas": "two"}}, r"/query/replicas.*got string, want integer"),
    ({"query": {"autoscaling": {"maxReplicas": -1}}}, r"/query/autoscaling/maxReplicas.*minimum"),
    ({"encoder": {"gpu": {"enabled": "yes"}}}, r"/encoder/gpu/enabled.*want boolean"),
    ({"encoder": {"replica": 2}}, r"additional properties 'replica' not allowed"),
    ({"qdrant": {"externalUrl": "qdrant.example.com"}}, r"/qdrant/externalUrl"),
    ({"settings": {"extraEnv": {"QDRANT_URL": "x"}}}, r"QDRANT_URL"),
    ({"podSecurityContext": {"runAsNonRoot": False}}, r"/podSecurityContext/runAsNonRoot"),
    ({"qdrant": {"replicationFactor": 4}}, r"replicationFactor \(4\) cannot exceed qdrant.replicaCount \(3\)"),
    ({"qdrant": {"enabled": False}}, r"qdrant.externalUrl"),
    ({"query": {"autoscaling": {"minReplicas": 5, "maxReplicas": 3}}}, r"minReplicas \(5\) > maxReplicas \(3\)"),
])
def test_bad_values_fail_at_render_time(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(values)
