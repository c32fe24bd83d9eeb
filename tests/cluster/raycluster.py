"""A real multi-node Ray cluster in network namespaces, started and deployed as KubeRay does.

Each node is ``ray start`` in a namespace of its own (tests/cluster/netns.py) with the
environment the Helm chart gives every Ray pod (deploy/helm/recognize/templates/_helpers.tpl,
"recognize.env"). The head runs the GCS, the dashboard, the Serve controller, an HTTP proxy and
the Ingress; a worker declares one GPU (``--num-gpus=1``, what KubeRay passes for a container
with an ``nvidia.com/gpu`` limit), so the Classifier, which asks for ``num_gpus`` like the chart
renders it, can only be placed there. The application is the Serve config ``recognize config``
prints, sent to the dashboard's REST API as KubeRay sends ``serveConfigV2``
(https://docs.ray.io/en/latest/serve/api/index.html#serve-rest-api).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from service.rayenv import SERVE_ENVIRONMENT, proxy_environment
from service.settings import Settings
from tests.cluster.netns import Lan, kill_namespace, namespace_pids
from tests.paths import REPO

RAY = str(Path(sys.executable).with_name("ray"))
RECOGNIZE = str(Path(sys.executable).with_name("recognize"))
GCS_PORT = 6379
DASHBOARD_PORT = 8265
SERVE_PORT = 8000
METRICS_REPORT_INTERVAL_MS = 2000
METRICS_PORT = 8080  # KubeRay's metrics-export-port on every pod, as the chart sets it
# Small object stores: the ~150 KB model inputs go by gRPC, not through the object store.
OBJECT_STORE_BYTES = 100_000_000


@dataclass
class RayNode:
    name: str
    namespace: str
    address: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return bool(namespace_pids(self.namespace))


def node_environment(folder: Path, api_keys: str) -> dict[str, str]:
    """The environment of every Ray node: the chart's pod environment, nothing from ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "RECOGNIZE_"))}
    env.update(SERVE_ENVIRONMENT)
    env.update(
        {
            "HOME": str(folder),
            "RAY_USAGE_STATS_ENABLED": "0",
            # Clients come through the proxies, as behind the chart's Service, and the proxies
            # are the chart's default (ray.httpProxy: haproxy).
            "RAY_SERVE_ENABLE_DIRECT_INGRESS": "0",
            **proxy_environment(Settings().http_proxy),
            # The chart's ray.authMode=disabled: no token for a cluster only the test reaches.
            "RAY_AUTH_MODE": "disabled",
            # Metrics reach each node's export every 2 s instead of Ray's 10 s: the one
            # difference from the chart's pods, so that tests reading the export wait less.
            "RAY_metrics_report_interval_ms": str(METRICS_REPORT_INTERVAL_MS),
            "RECOGNIZE_API_KEYS": api_keys,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def serve_config(settings: dict[str, str]) -> dict[str, Any]:
    """`recognize config` for these RECOGNIZE_* settings, parsed: the chart's serveConfigV2."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECOGNIZE_")}
    out = subprocess.run(
        [RECOGNIZE, "config"],
        env={**env, **settings},
        cwd=REPO,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return dict(yaml.safe_load(out.stdout))


class RayCluster:
    """A head and workers on a Lan; the Serve application deployed through the head."""

    def __init__(self, lan: Lan, env: dict[str, str]) -> None:
        self.lan = lan
        self.env = env
        self.nodes: dict[str, RayNode] = {}
        self.head: RayNode | None = None

    def log(self, node: str) -> Path:
        return self.lan.folder / f"{node}.log"

    def _start(self, node: RayNode, args: list[str]) -> None:
        temp = self.lan.folder / node.name  # Ray's session folder, one per node
        node.process = self.lan.popen(
            node.namespace,
            [
                RAY,
                "start",
                *args,
                f"--node-ip-address={node.address}",
                f"--temp-dir={temp}",
                f"--object-store-memory={OBJECT_STORE_BYTES}",
                f"--metrics-export-port={METRICS_PORT}",
                "--disable-usage-stats",
                "--block",
            ],
            env=self.env,
            log=self.log(node.name),
            cwd=REPO,
        )

    def start_head(self, num_cpus: int = 2) -> RayNode:
        namespace, address = self.lan.add_host("head")
        node = self.head = self.nodes["head"] = RayNode("head", namespace, address)
        # As KubeRay starts the chart's head: dashboard on every interface (the operator
        # deploys through it), num-cpus = head.rayCpus, no GPU.
        self._start(
            node,
            [
                "--head",
                f"--port={GCS_PORT}",
                f"--num-cpus={num_cpus}",
                "--num-gpus=0",
                "--include-dashboard=true",
                "--dashboard-host=0.0.0.0",
                f"--dashboard-port={DASHBOARD_PORT}",
            ],
        )
        self.wait_for_nodes(1, timeout_s=120)
        return node

    def start_worker(self, name: str) -> RayNode:
        """A GPU worker node in namespace `name` (made on first use, reused on a restart)."""
        node = self.nodes.get(name)
        if node is None:
            namespace, address = self.lan.add_host(name)
            node = self.nodes[name] = RayNode(name, namespace, address)
        assert self.head is not None
        # One CPU, exactly the Classifier's num_cpus: nothing else of the application fits on
        # a worker, so the Ingress stays on the head, as the test's picture wants it.
        self._start(
            node,
            [
                f"--address={self.head.address}:{GCS_PORT}",
                "--num-cpus=1",
                "--num-gpus=1",
            ],
        )
        return node

    def kill(self, name: str) -> int:
        """SIGKILL every process of a node (a pod or machine that dies); how many."""
        node = self.nodes[name]
        killed = kill_namespace(node.namespace)
        if node.process is not None:
            node.process.wait(timeout=10)
        return killed

    # --- the head's REST APIs ---------------------------------------------------------------

    @property
    def dashboard(self) -> str:
        assert self.head is not None
        return f"http://{self.head.address}:{DASHBOARD_PORT}"

    @property
    def base_url(self) -> str:
        """The Serve proxy on the head: where the chart's serve Service sends clients."""
        assert self.head is not None
        return f"http://{self.head.address}:{SERVE_PORT}"

    def _get(self, path: str) -> Any:
        response = httpx.get(self.dashboard + path, timeout=30)
        response.raise_for_status()
        return response.json()

    def alive_nodes(self) -> list[dict[str, Any]]:
        """Ray's state API: the nodes the GCS sees alive."""
        try:
            nodes = self._get("/api/v0/nodes?detail=1&limit=100")["data"]["result"]["result"]
        except httpx.HTTPError:
            return []
        return [n for n in nodes if n["state"] == "ALIVE"]

    def wait_for_nodes(self, count: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.alive_nodes()) >= count:
                return
            self._check_started()
            time.sleep(0.5)
        raise TimeoutError(f"{count} Ray nodes not alive after {timeout_s:.0f} s\n{self.tail()}")

    def deploy(self, config: dict[str, Any]) -> None:
        """Send the Serve config to the head, as KubeRay does with serveConfigV2."""
        response = httpx.put(self.dashboard + "/api/serve/applications/", json=config, timeout=60)
        response.raise_for_status()

    def applications(self) -> dict[str, Any]:
        return dict(self._get("/api/serve/applications/")["applications"])

    def replicas(self, deployment: str, app: str = "recognize") -> list[dict[str, Any]]:
        """Serve's details of a deployment's running replicas (id, node id and IP, pid)."""
        apps = self.applications()
        if app not in apps:
            return []
        replicas = apps[app]["deployments"].get(deployment, {}).get("replicas", [])
        return [r for r in replicas if r["state"] == "RUNNING"]

    def wait_until_running(self, timeout_s: float, app: str = "recognize") -> None:
        deadline = time.monotonic() + timeout_s
        status = None
        while time.monotonic() < deadline:
            try:
                status = self.applications().get(app, {}).get("status")
            except httpx.HTTPError:
                status = None
            if status == "RUNNING":
                return
            if status == "DEPLOY_FAILED":
                break
            self._check_started()
            time.sleep(1.0)
        raise TimeoutError(f"application {app} is {status} after {timeout_s:.0f} s\n{self.tail()}")

    def _check_started(self) -> None:
        assert self.head is not None and self.head.process is not None
        if self.head.process.poll() is not None:
            raise RuntimeError(
                f"the Ray head exited ({self.head.process.returncode})\n{self.tail()}"
            )

    def tail(self, chars: int = 3000) -> str:
        """The end of every node's log and of the Serve controller's, for a failure message."""
        parts = []
        for name in self.nodes:
            log = self.log(name)
            if log.is_file():
                parts.append(f"--- {name}\n{log.read_text(errors='replace')[-chars:]}")
        for log in sorted(self.lan.folder.glob("head/session_latest/logs/serve/controller_*.log")):
            parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-chars:]}")
        return "\n".join(parts)
