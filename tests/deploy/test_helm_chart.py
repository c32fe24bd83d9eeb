"""The Helm chart, rendered by the real helm and held to the strongest checks that run offline.

- ``helm lint --strict`` and the chart's values.schema.json (bad values are refused);
- the RayService against the KubeRay CRD's own schema, strictly: a field the API server would
  silently prune counts as an error;
- every core object, and each RayService pod template as a core ``v1 PodTemplate``, with
  ``kubernetes-validate --strict`` for Kubernetes 1.30 (an unknown kind is a failure);
- serveConfigV2 with Ray's own ``ServeDeploySchema``, and equal to what
  ``service.app.serve_config`` builds from the equivalent ``RECOGNIZE_*`` environment: the chart
  and the service cannot drift.

helm comes from scripts/fetch_tools.sh (.tools/bin/helm). Without it these tests skip, except
in CI (CI=true), where they fail.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from ray.serve.schema import ServeDeploySchema

from service.app import serve_config
from service.cli import CONFIG_HEADER
from service.core.auth import ApiKey, KeyRing, hash_key
from service.rayenv import SERVE_ENVIRONMENT, proxy_environment
from service.settings import Settings

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "recognize"
HELM = REPO / ".tools" / "bin" / "helm"
CRD = REPO / os.environ.get("KUBERAY_CRD", "../shared/kuberay/ray.io_rayservices.yaml")
KUBERNETES_VERSION = "1.30"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
RELEASE, NAMESPACE = "recognize", "recognize"
CRD_GROUPS = ("ray.io/", "monitoring.coreos.com/")
CRD_KINDS = {"PodMonitor", "PrometheusRule"}  # Prometheus operator kinds, checked by helm only

# Chart value -> service setting (service/settings.py; RECOGNIZE_<SETTING> in the environment).
SETTING_OF_VALUE = {
    "serve.port": "port",
    "classifier.replicas": "classifier_replicas",
    "classifier.numGpus": "classifier_num_gpus",
    "classifier.numCpus": "classifier_num_cpus",
    "classifier.providers": "providers",
    "classifier.intraOpThreads": "intra_op_threads",
    "classifier.maxBatchSize": "max_batch_size",
    "classifier.batchWaitTimeoutS": "batch_wait_timeout_s",
    "classifier.concurrentBatches": "concurrent_batches",
    "classifier.warmupBatchSizes": "warmup_batch_sizes",
    "classifier.batchBuckets": "batch_buckets",
    "gate.enabled": "gate_enabled",
    "ingress.replicas": "ingress_replicas",
    "ingress.numCpus": "ingress_num_cpus",
    "decision.matchThreshold": "match_threshold",
    "decision.mismatchThreshold": "mismatch_threshold",
    "decision.vehicleThreshold": "vehicle_threshold",
    "limits.maxUploadBytes": "max_upload_bytes",
    "limits.maxImagePixels": "max_image_pixels",
    "limits.minImageSide": "min_image_side",
    "limits.defaultTopK": "default_top_k",
    "limits.maxPendingRequests": "max_pending_requests",
    "limits.requestTimeoutS": "request_timeout_s",
    "logs.encoding": "log_encoding",
    "auth.disabled": "auth_disabled",
    "auth.docsRequireAuth": "docs_require_auth",
}
# Settings the chart derives rather than takes from a value of their own.
DERIVED_SETTINGS = {
    "host": "always 0.0.0.0 in the cluster",
    "model_path": "/models/<model.file>",
    "gate_model_path": "/models/<gate.file>: the vehicle gate comes from model.source too",
    "api_keys": "RECOGNIZE_API_KEYS from the apiKeys Secret (a JSON list of {tenant, hash} "
    "entries), never a value: the chart keeps even key hashes out of serveConfigV2",
}
# Settings the chart deliberately leaves alone.
NOT_EXPOSED = {
    "classifier_in_ingress": "the cluster keeps CPU ingress and GPU classifier replicas apart",
    "ray_address": "`recognize serve` only: in the cluster KubeRay starts Ray",
    "ray_num_cpus": "`recognize serve` only: the cluster's CPUs come from rayStartParams",
    "metrics_port": "a node setting: rayStartParams metrics-export-port",
    "direct_http": "`recognize serve` only: in the cluster each node's Serve proxy listens",
    "http_proxy": "a node setting: every pod's environment, from ray.httpProxy",
    "gather_in_ingress": "measured on 2 CPU cores only (loadtest/RESULTS.md); a chart value once "
    "a GPU run shows it pays",
    "taxonomy_path": "the chart serves the packaged Mercedes-Benz taxonomy; another one needs "
    "its file in the image or a volume, which the chart does not mount yet",
    "vin_rules_path": "the chart serves the packaged Mercedes-Benz VIN rules (as taxonomy_path)",
}
# Serve autoscaling is the chart's own: the settings have no field for it.
AUTOSCALING_KEYS = {
    "minReplicas": "min_replicas",
    "maxReplicas": "max_replicas",
    "targetOngoingRequests": "target_ongoing_requests",
    "initialReplicas": "initial_replicas",
    "upscaleDelayS": "upscale_delay_s",
    "downscaleDelayS": "downscale_delay_s",
}

MODEL_SHA256 = hashlib.sha256(b"a model").hexdigest()
API_KEY_ENTRY = {"tenant": "geofence-portal", "hash": hash_key("rk_test-key", salt="0" * 32)}
# Every value that maps to a setting set to something other than the service's default, plus
# the url model source, a created API-key Secret, no Ray token auth and no Ray autoscaler.
EVERY_SETTING = {
    "serve": {"port": 8081},
    "classifier": {
        "replicas": 3,
        "numGpus": 0.25,
        "numCpus": 2,
        "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"],
        "intraOpThreads": 4,
        "maxBatchSize": 32,
        "batchWaitTimeoutS": 0.02,
        "concurrentBatches": 3,
        "warmupBatchSizes": [1, 8, 32],
        "batchBuckets": [1, 4, 16, 32],
    },
    "ingress": {"replicas": 3, "numCpus": 1.5},
    "decision": {"matchThreshold": 0.9, "mismatchThreshold": 0.7, "vehicleThreshold": 0.3},
    "gate": {"enabled": False, "file": "vehicle_gate_256.onnx"},
    "limits": {
        "maxUploadBytes": 10_485_760,
        "maxImagePixels": 40_000_000,
        "minImageSide": 64,
        "defaultTopK": 5,
        "maxPendingRequests": 200,
        "requestTimeoutS": 12.5,
    },
    "auth": {"disabled": True, "docsRequireAuth": True},
    "logs": {"encoding": "TEXT"},
    "model": {
        "source": "url",
        "file": "swinv2_tiny_256.onnx",
        "version": "7",
        "url": {
            "location": "https://models.example.internal/swinv2_tiny_256.onnx",
            "sha256": MODEL_SHA256,
        },
    },
    "apiKeys": {"create": True, "keys": [API_KEY_ENTRY]},
    "ray": {"authMode": "disabled", "autoscaler": {"enabled": False}},
}
GATE_SHA256 = hashlib.sha256(b"a gate").hexdigest()
# The url source with the vehicle gate on: the init container fetches both files.
MODEL_AND_GATE_BY_URL = {
    "model": {
        "source": "url",
        "url": {"location": "https://models.example.internal/m.onnx", "sha256": MODEL_SHA256},
    },
    "gate": {
        "file": "vehicle_gate_224.onnx",
        "url": {"existingSecret": "gate-url", "secretKey": "presigned", "sha256": GATE_SHA256},
    },
}
BAKED_MODEL_NOTHING_ELSE = {
    "model": {"source": "image", "file": "baked.onnx"},
    "ray": {"httpProxy": "serve"},  # Serve's own Python proxy instead of HAProxy
    "networkPolicy": {"enabled": False},
    "podDisruptionBudget": {"enabled": False},
    "monitoring": {
        "podMonitor": {"enabled": False},
        "prometheusRule": {"enabled": False},
        "grafanaDashboard": {"enabled": False},
    },
}


def service_defaults() -> dict[str, Any]:
    """Every value that maps to a setting, set to the service's own default (numGpus aside: the
    chart needs a GPU). It must render as if left null, so no default the chart restates
    (argDefaults in recognize.serveConfig) can be wrong."""
    values: dict[str, Any] = {}
    for dotted, setting in SETTING_OF_VALUE.items():
        if dotted != "classifier.numGpus":
            section, key = dotted.split(".")
            default = json.loads(json.dumps(Settings.model_fields[setting].default))
            values.setdefault(section, {})[key] = default
    return values


MONITORED = {"ConfigMap", "NetworkPolicy", "PodDisruptionBudget", "PodMonitor", "PrometheusRule"}
CASES: dict[str, tuple[Path | dict[str, Any], set[str]]] = {
    "default": ({}, {"RayService", *MONITORED}),
    "production": (CHART / "values-production.yaml", {"RayService", *MONITORED}),
    "every-setting": (EVERY_SETTING, {"RayService", "Secret", *MONITORED}),
    "service-defaults": (service_defaults(), {"RayService", *MONITORED}),
    "baked-model": (BAKED_MODEL_NOTHING_ELSE, {"RayService"}),
    "model-and-gate-by-url": (MODEL_AND_GATE_BY_URL, {"RayService", *MONITORED}),
}


# --- helm -----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., subprocess.CompletedProcess]:
    """Runs the real helm with its cache, config and data in a temporary directory."""
    if not HELM.is_file():
        reason = f"{HELM.relative_to(REPO)} is missing: run scripts/fetch_tools.sh (make tools)"
        if IN_CI:
            pytest.fail(reason)
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(HELM), *args], env=env, capture_output=True, text=True, timeout=60
        )

    return run


@pytest.fixture(scope="session")
def values_file(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    folder = tmp_path_factory.mktemp("values")

    def path_of(case: str) -> Path:
        source = CASES[case][0]
        if isinstance(source, Path):
            return source
        path = folder / f"{case}.yaml"
        path.write_text(yaml.safe_dump(source))
        return path

    return path_of


@pytest.fixture(scope="session")
def render(helm, values_file) -> Callable[[str], list[dict[str, Any]]]:
    @functools.cache
    def rendered(case: str) -> list[dict[str, Any]]:
        result = helm(
            "template", RELEASE, str(CHART), "--namespace", NAMESPACE, "-f", str(values_file(case))
        )
        assert result.returncode == 0, result.stderr
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    def copy_of(case: str) -> list[dict[str, Any]]:
        return copy.deepcopy(rendered(case))

    return copy_of


def merged_values(case: str) -> dict[str, Any]:
    """values.yaml with the case's values over it, merged as helm does (maps merge, the rest
    is replaced)."""

    def merge(base: Any, override: Any) -> Any:
        if isinstance(base, dict) and isinstance(override, dict):
            return {**base, **{k: merge(base.get(k), v) for k, v in override.items()}}
        return override

    source = CASES[case][0]
    overrides = yaml.safe_load(source.read_text()) if isinstance(source, Path) else source
    return merge(yaml.safe_load((CHART / "values.yaml").read_text()), overrides)


def the(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def pod_templates(rayservice: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    cluster = rayservice["spec"]["rayClusterConfig"]
    yield "head", cluster["headGroupSpec"]["template"]
    for group in cluster["workerGroupSpecs"]:
        yield group["groupName"], group["template"]


def serve_config_v2(docs: list[dict[str, Any]]) -> dict[str, Any]:
    return yaml.safe_load(the(docs, "RayService")["spec"]["serveConfigV2"])


def deployment(document: dict[str, Any], name: str) -> dict[str, Any]:
    (app,) = document["applications"]
    (found,) = [d for d in app["deployments"] if d["name"] == name]
    return found


# --- lint and schema ------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["default", "production"])
def test_helm_lint_strict(helm, values_file, case: str) -> None:
    result = helm("lint", "--strict", str(CHART), "-f", str(values_file(case)))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("case", sorted(CASES))
def test_renders_the_expected_objects(render, case: str) -> None:
    assert {doc["kind"] for doc in render(case)} == CASES[case][1]


@pytest.mark.parametrize(
    ("setting", "complaint"),
    [
        ("classifier.replicas=two", "/classifier/replicas"),
        ("classifier.numGpus=0", "/classifier/numGpus"),
        ("gpuWorkers.gpus=0.5", "/gpuWorkers/gpus"),
        ("model.source=s3", "/model/source"),
        ("model.file=../etc/passwd", "/model/file"),
        ("gate.file=../gate.onnx", "/gate/file"),
        ("gate.enabled=maybe", "/gate/enabled"),
        ("decision.vehicleThreshold=1.5", "/decision/vehicleThreshold"),
        ("classifer.replicas=1", "classifer"),  # a misspelt key is not silently ignored
        ("logs.encoding=XML", "/logs/encoding"),
        ("limits.requestTimeoutS=0", "/limits/requestTimeoutS"),
        ("auth.disabled=maybe", "/auth/disabled"),
        # The Secret holds {tenant, hash} entries, never a plain key.
        ("apiKeys.keys[0]=rk_a-plain-key-0123456789", "/apiKeys/keys/0"),
        ("apiKeys.keys[0].tenant=portal,apiKeys.keys[0].hash=rk_plain", "/apiKeys/keys/0/hash"),
    ],
)
def test_bad_values_are_refused_by_the_schema(helm, setting: str, complaint: str) -> None:
    result = helm("template", RELEASE, str(CHART), "--set", setting)
    assert result.returncode != 0, f"--set {setting} rendered"
    assert "don't meet the specifications of the schema" in result.stderr, result.stderr
    assert complaint in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        # 4 replicas x 1 GPU on a worker group of at most 1 pod x 1 GPU.
        (["classifier.autoscaling.enabled=true", "classifier.autoscaling.maxReplicas=4"], "need 4"),
        (["model.source=url", f"model.url.sha256={MODEL_SHA256}"], "needs model.url.location"),
        (["model.source=url", "model.url.location=https://m.example/a.onnx"], "/model/url/sha256"),
        (
            [
                "model.source=url",
                "model.url.location=https://m.example/a.onnx",
                f"model.url.sha256={MODEL_SHA256}",
            ],
            "needs gate.url.location",
        ),
        (
            [
                "model.source=url",
                "model.url.location=https://m.example/a.onnx",
                f"model.url.sha256={MODEL_SHA256}",
                "gate.url.location=https://m.example/g.onnx",
            ],
            "needs gate.url.sha256",
        ),
        (["apiKeys.create=true"], "at least one key"),
        (["gpuWorkers.minReplicas=2"], "minReplicas <= replicas <= maxReplicas"),
        (
            ["classifier.autoscaling.enabled=true", "classifier.autoscaling.minReplicas=2"],
            "minReplicas is above",
        ),
    ],
)
def test_inconsistent_values_are_refused(helm, settings: list[str], complaint: str) -> None:
    args = [arg for setting in settings for arg in ("--set", setting)]
    result = helm("template", RELEASE, str(CHART), *args)
    assert result.returncode != 0, f"{settings} rendered"
    assert complaint in result.stderr, result.stderr


@pytest.mark.parametrize("name", ["values.yaml", "values-production.yaml"])
def test_every_value_is_documented(name: str) -> None:
    lines = (CHART / name).read_text().splitlines()
    undocumented = []
    for number, line in enumerate(lines):
        key = re.match(r"^\s*(- )?[A-Za-z0-9_./-]+:(\s|$)", line)
        if not key or "#" in line.split(":", 1)[1]:
            continue
        if number == 0 or not lines[number - 1].lstrip().startswith("#"):
            undocumented.append(f"{name}:{number + 1}: {line.strip()}")
    assert not undocumented, "values without a comment above them:\n" + "\n".join(undocumented)


# --- Kubernetes schemas ---------------------------------------------------------------------


def strict_crd_schema() -> dict[str, Any]:
    """The RayService CRD's schema, with unknown fields refused: the API server prunes them
    silently, so a misspelt field would otherwise pass here and vanish in the cluster."""
    if not CRD.is_file():
        pytest.skip(f"KubeRay CRD {CRD} is absent (set KUBERAY_CRD to its path)")
    return _strict_crd_schema(CRD)


@functools.cache
def _strict_crd_schema(path: Path) -> dict[str, Any]:
    crd = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = copy.deepcopy(v1["schema"]["openAPIV3Schema"])

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if (
                node.get("type") == "object"
                and "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for child in node.values():
                close(child)
        elif isinstance(node, list):
            for child in node:
                close(child)

    close(schema)
    return schema


@pytest.mark.parametrize("case", sorted(CASES))
def test_rayservice_matches_the_kuberay_crd(render, case: str) -> None:
    rayservice = the(render(case), "RayService")
    assert rayservice["apiVersion"] == "ray.io/v1"
    validator = jsonschema.Draft7Validator(strict_crd_schema())
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(rayservice)
    ]
    assert not errors, "\n".join(errors)


def test_the_strict_crd_check_catches_a_misspelt_field(render) -> None:
    rayservice = the(render("default"), "RayService")
    rayservice["spec"]["rayClusterConfig"]["enableInServiceAutoscaling"] = True
    assert not jsonschema.Draft7Validator(strict_crd_schema()).is_valid(rayservice)


def validate_core(doc: dict[str, Any]) -> None:
    """kubernetes-validate --strict; an unknown kind raises (it is never a silent pass)."""
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def as_pod_template(name: str, template: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name}, **template}


@pytest.mark.parametrize("case", sorted(CASES))
def test_core_objects_validate_strictly(render, case: str) -> None:
    core = [d for d in render(case) if not d["apiVersion"].startswith(CRD_GROUPS)]
    assert {d["kind"] for d in core} == CASES[case][1] - {"RayService", *CRD_KINDS}
    for doc in core:
        validate_core(doc)


@pytest.mark.parametrize("case", sorted(CASES))
def test_pod_templates_validate_strictly_as_core_pod_templates(render, case: str) -> None:
    rayservice = the(render(case), "RayService")
    for name, template in pod_templates(rayservice):
        validate_core(as_pod_template(name, {"template": template}))
    options = rayservice["spec"]["rayClusterConfig"].get("autoscalerOptions")
    if options:  # KubeRay turns these into the autoscaler container of the head pod
        head = rayservice["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]
        container = {"name": "autoscaler", "image": "autoscaler", **options}
        for field in ("upscalingMode", "idleTimeoutSeconds", "version"):
            container.pop(field, None)
        spec = {"containers": [container], "volumes": head["spec"]["volumes"]}
        validate_core(as_pod_template("autoscaler", {"template": {"spec": spec}}))


def test_kubernetes_validate_refuses_unknown_kinds_and_fields(render) -> None:
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        validate_core(the(render("default"), "RayService"))
    head = dict(pod_templates(the(render("default"), "RayService")))["head"]
    head["spec"]["containers"][0]["readOnlyRootFilesytem"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_core(as_pod_template("head", {"template": head}))


# --- serveConfigV2: Ray's schema and one source of truth ------------------------------------


def test_chart_serve_config_is_what_recognize_config_prints(monkeypatch) -> None:
    for name in [n for n in os.environ if n.startswith("RECOGNIZE_")]:
        monkeypatch.delenv(name)
    generated = CONFIG_HEADER + yaml.safe_dump(serve_config(Settings()), sort_keys=False)
    shipped = CHART / "files" / "serve_config.yaml"
    assert shipped.read_text() == generated, (
        f"regenerate it: .venv/bin/recognize config > {shipped.relative_to(REPO)}"
    )


@pytest.mark.parametrize("case", sorted(CASES))
def test_serve_config_v2_validates_with_serves_own_schema(render, case: str) -> None:
    document = serve_config_v2(render(case))
    schema = ServeDeploySchema.model_validate(document)
    assert schema.http_options.host == "0.0.0.0"  # the proxy must be reachable in the cluster
    (app,) = schema.applications
    assert app.import_path == "service.app:build_app"


def lookup(values: dict[str, Any], dotted: str) -> Any:
    node: Any = values
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def equivalent_environment(values: dict[str, Any]) -> dict[str, str]:
    """The RECOGNIZE_* environment that configures the service as these chart values do."""
    env = {
        "RECOGNIZE_HOST": "0.0.0.0",
        "RECOGNIZE_MODEL_PATH": f"/models/{values['model']['file']}",
        "RECOGNIZE_GATE_MODEL_PATH": f"/models/{values['gate']['file']}",
    }
    for dotted, setting in SETTING_OF_VALUE.items():
        value = lookup(values, dotted)
        if value is not None:
            text = json.dumps(value) if isinstance(value, list | bool) else str(value)
            env[f"RECOGNIZE_{setting.upper()}"] = text
    return env


def test_every_setting_is_mapped_or_deliberately_left_out() -> None:
    accounted = {*SETTING_OF_VALUE.values(), *DERIVED_SETTINGS, *NOT_EXPOSED}
    missing = sorted(set(Settings.model_fields) - accounted)
    assert not missing, (
        f"new settings {missing}: give each a chart value (values.yaml, values.schema.json, "
        "recognize.settings in _helpers.tpl, SETTING_OF_VALUE here) or list it in NOT_EXPOSED"
    )
    assert not accounted - set(Settings.model_fields), "settings that no longer exist"


@pytest.mark.parametrize("case", sorted(CASES))
def test_serve_config_v2_is_what_the_service_builds_from_the_same_settings(
    render, monkeypatch, case: str
) -> None:
    values = merged_values(case)
    for name in [n for n in os.environ if n.startswith("RECOGNIZE_")]:
        monkeypatch.delenv(name)
    for name, value in equivalent_environment(values).items():
        monkeypatch.setenv(name, value)
    expected = serve_config(Settings())

    autoscaling = values["classifier"]["autoscaling"]
    if autoscaling["enabled"]:
        classifier = deployment(expected, "Classifier")
        del classifier["num_replicas"]
        classifier["autoscaling_config"] = {
            name: autoscaling[key]
            for key, name in AUTOSCALING_KEYS.items()
            if autoscaling.get(key) is not None
        }
    assert serve_config_v2(render(case)) == expected


def test_production_requires_api_keys_from_its_secret(render) -> None:
    docs, values = render("production"), merged_values("production")
    assert values["auth"]["disabled"] is False
    assert values["apiKeys"]["existingSecret"] and not values["apiKeys"]["create"]
    (app,) = serve_config_v2(docs)["applications"]
    assert not {"auth_disabled", "api_keys"} & app["args"].keys()
    for _, template in pod_templates(the(docs, "RayService")):
        env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
        reference = env["RECOGNIZE_API_KEYS"]["valueFrom"]["secretKeyRef"]
        assert reference["name"] == values["apiKeys"]["existingSecret"]


def test_production_scales_classifier_replicas_and_gpu_workers(render) -> None:
    docs = render("production")
    values = merged_values("production")
    classifier = deployment(serve_config_v2(docs), "Classifier")
    assert "num_replicas" not in classifier
    assert classifier["autoscaling_config"]["max_replicas"] == 8
    assert classifier["ray_actor_options"]["num_gpus"] == 0.5  # two replicas per T4
    cluster = the(docs, "RayService")["spec"]["rayClusterConfig"]
    assert cluster["enableInTreeAutoscaling"] is True
    (workers,) = cluster["workerGroupSpecs"]
    assert (workers["minReplicas"], workers["maxReplicas"]) == (1, 4)
    assert workers["template"]["spec"]["nodeSelector"] == values["gpuWorkers"]["nodeSelector"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in workers[
        "template"
    ]["spec"]["tolerations"]


# --- what the pods get ----------------------------------------------------------------------


def containers(template: dict[str, Any]) -> list[dict[str, Any]]:
    spec = template["spec"]
    return spec["containers"] + spec.get("initContainers", [])


@pytest.mark.parametrize("case", sorted(CASES))
def test_pods_run_non_root_on_a_read_only_root_with_a_writable_tmp(render, case: str) -> None:
    for name, template in pod_templates(the(render(case), "RayService")):
        spec = template["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["tmp"], name
        for container in containers(template):
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, (name, container["name"])
            assert context["allowPrivilegeEscalation"] is False, (name, container["name"])
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/tmp") == "tmp" or container["name"] == "fetch-model"


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_ray_pod_runs_serves_throughput_profile_behind_the_proxies(render, case: str) -> None:
    """The Ray Serve environment of `recognize serve`, on every pod: without it a cluster calls
    the Classifier through Ray's object store instead of gRPC."""
    for name, template in pod_templates(the(render(case), "RayService")):
        env = {e["name"]: e.get("value") for e in template["spec"]["containers"][0]["env"]}
        for variable, value in SERVE_ENVIRONMENT.items():
            assert env.get(variable) == value, (name, variable)
        assert env["RAY_SERVE_ENABLE_DIRECT_INGRESS"] == "0", name
        for variable, value in proxy_environment(merged_values(case)["ray"]["httpProxy"]).items():
            assert env.get(variable) == value, (name, variable)


@pytest.mark.parametrize("case", sorted(CASES))
def test_gpu_workers_request_their_gpus_and_the_serve_port_matches(render, case: str) -> None:
    docs, values = render(case), merged_values(case)
    templates = dict(pod_templates(the(docs, "RayService")))
    (worker,) = templates[values["gpuWorkers"]["groupName"]]["spec"]["containers"]
    gpus = str(values["gpuWorkers"]["gpus"])
    assert worker["resources"]["requests"]["nvidia.com/gpu"] == gpus
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == gpus
    port = serve_config_v2(docs)["http_options"]["port"]
    for template in templates.values():
        ports = {p["name"]: p["containerPort"] for p in template["spec"]["containers"][0]["ports"]}
        assert ports["serve"] == port
        assert ports["metrics"] == 8080


@pytest.mark.parametrize("case", sorted(CASES))
def test_model_source(render, case: str) -> None:
    values = merged_values(case)
    source = values["model"]["source"]
    (worker,) = [t for n, t in pod_templates(the(render(case), "RayService")) if n != "head"]
    volumes = {v["name"]: v for v in worker["spec"]["volumes"]}
    mounts = {m["name"]: m for m in worker["spec"]["containers"][0]["volumeMounts"]}
    init = worker["spec"].get("initContainers", [])
    if source == "image":
        assert "model" not in volumes and "model" not in mounts and not init
        return
    assert mounts["model"]["mountPath"] == "/models" and mounts["model"]["readOnly"] is True
    if source == "pvc":
        claim = volumes["model"]["persistentVolumeClaim"]
        assert claim == {"claimName": values["model"]["pvc"]["claimName"], "readOnly": True}
        assert not init
    else:
        assert "emptyDir" in volumes["model"]
        (fetch,) = init
        env = {e["name"]: e.get("value") for e in fetch["env"]}
        assert env["MODEL_SHA256"] == values["model"]["url"]["sha256"]
        assert env["MODEL_DEST"] == f"/models/{values['model']['file']}"
        gate = values["gate"]
        if gate["enabled"] is False:
            assert not {"GATE_URL", "GATE_SHA256", "GATE_DEST"} & set(env)
        else:
            assert env["GATE_SHA256"] == gate["url"]["sha256"]
            assert env["GATE_DEST"] == f"/models/{gate['file']}"
    annotations = worker["metadata"]["annotations"]
    if values["gate"]["enabled"] is False:
        assert "recognize.gate/file" not in annotations
    else:  # a new gate file is a new pod template: KubeRay rolls out a new cluster
        assert annotations["recognize.gate/file"] == values["gate"]["file"]


def test_the_gate_url_comes_from_its_secret(render) -> None:
    worker = [t for n, t in pod_templates(the(render("model-and-gate-by-url"), "RayService"))][1]
    (fetch,) = worker["spec"]["initContainers"]
    env = {e["name"]: e for e in fetch["env"]}
    assert env["GATE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "gate-url", "key": "presigned"}
    assert env["MODEL_URL"]["value"] == "https://models.example.internal/m.onnx"


def test_model_fetch_init_container_downloads_and_checks_the_file(render, tmp_path) -> None:
    """The init container's own script, run here against a file:// URL."""
    worker = [t for n, t in pod_templates(the(render("every-setting"), "RayService"))][1]
    (fetch,) = worker["spec"]["initContainers"]
    assert fetch["command"][:2] == ["python", "-c"]
    model = tmp_path / "model.onnx"
    model.write_bytes(b"a model")
    dest = tmp_path / "models" / "swinv2_tiny_256.onnx"
    dest.parent.mkdir()
    env = {**os.environ, "MODEL_URL": model.as_uri(), "MODEL_DEST": str(dest)}
    run = functools.partial(
        subprocess.run,
        [sys.executable, "-c", fetch["command"][2]],
        capture_output=True,
        text=True,
        timeout=30,
    )
    wrong = run(env={**env, "MODEL_SHA256": "f" * 64})
    assert wrong.returncode != 0 and "differs" in wrong.stderr
    assert not dest.exists()
    right = run(env={**env, "MODEL_SHA256": MODEL_SHA256})
    assert right.returncode == 0, right.stderr
    assert dest.read_bytes() == b"a model"
    # With the vehicle gate on, the same script fetches it too, checked the same way.
    gate = tmp_path / "gate.onnx"
    gate.write_bytes(b"a gate")
    gate_dest = tmp_path / "models" / "vehicle_gate.onnx"
    with_gate = {**env, "MODEL_SHA256": MODEL_SHA256, "GATE_URL": gate.as_uri(),
                 "GATE_DEST": str(gate_dest)}  # fmt: skip
    wrong = run(env={**with_gate, "GATE_SHA256": "f" * 64})
    assert wrong.returncode != 0 and "gate.url.sha256" in wrong.stderr and not gate_dest.exists()
    right = run(env={**with_gate, "GATE_SHA256": GATE_SHA256})
    assert right.returncode == 0, right.stderr
    assert gate_dest.read_bytes() == b"a gate"


def test_api_keys_come_from_the_secret(render) -> None:
    docs, values = render("every-setting"), merged_values("every-setting")
    secret = the(docs, "Secret")
    key = values["apiKeys"]["secretKey"]
    for _, template in pod_templates(the(docs, "RayService")):
        env = {e["name"]: e for e in template["spec"]["containers"][0]["env"]}
        reference = env["RECOGNIZE_API_KEYS"]["valueFrom"]["secretKeyRef"]
        assert reference == {"name": secret["metadata"]["name"], "key": key}
    entries = base64.b64decode(secret["data"][key]).decode()
    assert json.loads(entries) == [API_KEY_ENTRY]
    # What the service reads from RECOGNIZE_API_KEYS: hashed entries, and the key checks out.
    settings = Settings.model_validate({"api_keys": json.loads(entries)})
    assert settings.api_keys == (ApiKey(**API_KEY_ENTRY),)
    assert KeyRing(settings.api_keys).tenant_for("rk_test-key") == "geofence-portal"


@pytest.mark.parametrize("case", ["default", "production"])
def test_selectors_and_port_names_match_the_pods(render, case: str) -> None:
    docs = render(case)
    templates = dict(pod_templates(the(docs, "RayService")))
    head = templates.pop("head")
    (worker,) = templates.values()

    def selects(selector: dict[str, str], template: dict[str, Any]) -> bool:
        return selector.items() <= template["metadata"]["labels"].items()

    def port_names(template: dict[str, Any]) -> set[str]:
        return {p["name"] for p in template["spec"]["containers"][0]["ports"]}

    policy = the(docs, "NetworkPolicy")["spec"]
    assert selects(policy["podSelector"]["matchLabels"], head)
    assert selects(policy["podSelector"]["matchLabels"], worker)
    for rule in policy["ingress"]:
        for port in rule.get("ports", []):
            assert port["port"] in port_names(head), port
    budget = the(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    assert selects(budget, worker) and not selects(budget, head)
    monitor = the(docs, "PodMonitor")["spec"]
    assert selects(monitor["selector"]["matchLabels"], head)
    assert selects(monitor["selector"]["matchLabels"], worker)
    for endpoint in monitor["podMetricsEndpoints"]:
        assert endpoint["port"] in port_names(head) & port_names(worker)


# --- the dashboard and the alert rules ------------------------------------------------------

COPIES = {
    "dashboards/recognize.json": REPO / "deploy" / "grafana" / "recognize.json",
    "rules/alerts.yaml": REPO / "deploy" / "prometheus" / "alerts.yaml",
}


@pytest.mark.parametrize("inside_chart", sorted(COPIES))
def test_chart_ships_the_current_dashboard_and_rules(inside_chart: str) -> None:
    source, shipped = COPIES[inside_chart], CHART / inside_chart
    if not source.is_file():
        pytest.skip(f"{source.relative_to(REPO)} is not written yet: the chart has a placeholder")
    assert shipped.read_bytes() == source.read_bytes(), (
        f"cp {source.relative_to(REPO)} {shipped.relative_to(REPO)}"
    )


def test_prometheus_rule_passes_promtool(render, tmp_path: Path) -> None:
    """The rules as the PrometheusRule carries them (promtool comes with section 1's set-up)."""
    promtool = shutil.which("promtool", path=f"{REPO / '.tools' / 'bin'}:{os.environ['PATH']}")
    if not promtool:
        pytest.skip("promtool is not installed (the Prometheus metrics tests install it)")
    rules = tmp_path / "rules.yaml"
    rules.write_text(
        yaml.safe_dump({"groups": the(render("production"), "PrometheusRule")["spec"]["groups"]})
    )
    result = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_configmap_and_prometheus_rule_carry_the_files(render) -> None:
    docs = render("default")
    dashboard = the(docs, "ConfigMap")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads((CHART / "dashboards" / "recognize.json").read_text())
    assert json.loads(dashboard["data"]["recognize.json"]) == shipped
    rules = yaml.safe_load((CHART / "rules" / "alerts.yaml").read_text())
    assert the(docs, "PrometheusRule")["spec"]["groups"] == rules["groups"]
