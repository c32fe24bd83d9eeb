"""deploy/training/rayjob.yaml: a RayJob the API server and `recognize train` would accept.

There is no RayJob CRD here; its ``rayClusterSpec`` is the same RayCluster spec as a
RayService's ``rayClusterConfig``, so it is checked, strictly, against that part of the KubeRay
RayService CRD (../shared/kuberay), its pod templates against Kubernetes' own schema, and its
entrypoint with the argument parser of `recognize train`.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.deploy.test_helm_chart import as_pod_template, strict_crd_schema, validate_core

REPO = Path(__file__).resolve().parents[2]
JOB = yaml.safe_load((REPO / "deploy" / "training" / "rayjob.yaml").read_text())


def test_cluster_spec_matches_the_kuberay_schema() -> None:
    assert (JOB["apiVersion"], JOB["kind"]) == ("ray.io/v1", "RayJob")
    cluster = strict_crd_schema()["properties"]["spec"]["properties"]["rayClusterConfig"]
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft7Validator(cluster).iter_errors(JOB["spec"]["rayClusterSpec"])
    ]
    assert not errors, "\n".join(errors)
    bad = {**JOB["spec"]["rayClusterSpec"], "headGroupSpecs": {}}  # a misspelt field fails
    assert list(jsonschema.Draft7Validator(cluster).iter_errors(bad))


def test_pod_templates_validate_strictly() -> None:
    cluster = JOB["spec"]["rayClusterSpec"]
    validate_core(as_pod_template("head", {"template": cluster["headGroupSpec"]["template"]}))
    for group in cluster["workerGroupSpecs"]:
        validate_core(as_pod_template(group["groupName"], {"template": group["template"]}))


def test_entrypoint_is_a_valid_train_command_on_the_cluster() -> None:
    pytest.importorskip("torch")
    from service.modeltools.train import build_parser

    words = shlex.split(JOB["spec"]["entrypoint"])
    assert words[:2] == ["recognize", "train"]
    args = build_parser().parse_args(words[2:])
    assert args.ray_address == "auto" and args.gpu
    gpus = sum(g["replicas"] for g in JOB["spec"]["rayClusterSpec"]["workerGroupSpecs"])
    assert args.workers == gpus  # one Ray Train worker per GPU
    worker = JOB["spec"]["rayClusterSpec"]["workerGroupSpecs"][0]["template"]["spec"]
    cpus = int(worker["containers"][0]["resources"]["limits"]["cpu"])
    assert args.cpus_per_worker <= cpus
