"""Builds the Serve application from settings; also what `serve run` and the Helm chart use.

``build_app(args)`` is a Serve application builder: ``import_path: service.app:build_app`` with
``args`` holding settings overrides (any ``Settings`` field). ``serve_config(settings)`` renders
the same application as a Serve config document, so the YAML file and the code cannot drift.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from typing import Any

from ray.serve import Application

from service.classifier import Classifier, ClassifierConfig
from service.ingress import Ingress
from service.rayenv import set_ray_environment
from service.settings import Settings, get_settings

APP_NAME = "recognize"
logger = logging.getLogger("recognize")


def classifier_user_config(settings: Settings) -> dict[str, Any]:
    return ClassifierConfig(
        model_path=str(settings.model_path),
        providers=settings.providers,
        intra_op_threads=settings.intra_op_threads,
        max_batch_size=settings.max_batch_size,
        batch_wait_timeout_s=settings.batch_wait_timeout_s,
        concurrent_batches=settings.concurrent_batches,
        warmup_batch_sizes=settings.warmup_batch_sizes,
        batch_buckets=settings.batch_buckets,
    ).model_dump(mode="json")


def _logging(settings: Settings) -> dict[str, Any]:
    # Serve's own access line per call is off: the ingress writes one structured line per
    # request (tenant, status, verdict, latency), and the classifier's per-call line only
    # repeats it, each line costing the replica, Ray's log monitor and the driver CPU.
    return {"encoding": settings.log_encoding, "enable_access_log": False}


def deployment_options(settings: Settings) -> dict[str, dict[str, Any]]:
    """Per-deployment Serve options, keyed by deployment name."""
    if settings.classifier_in_ingress:
        return {
            "Ingress": {
                "num_replicas": settings.classifier_replicas,
                "max_ongoing_requests": settings.max_pending_requests + 16,
                "ray_actor_options": {
                    "num_cpus": settings.classifier_num_cpus + settings.ingress_num_cpus,
                    "num_gpus": settings.classifier_num_gpus,
                },
                "user_config": classifier_user_config(settings),
                "logging_config": _logging(settings),
            }
        }
    return {
        "Classifier": {
            "num_replicas": settings.classifier_replicas,
            "max_ongoing_requests": settings.classifier_max_ongoing_requests,
            # A bounded queue in front of the classifier: past it the ingress answers 503
            # 'overloaded' (BackPressureError) instead of letting requests pile up.
            "max_queued_requests": 4 * settings.classifier_max_ongoing_requests,
            "ray_actor_options": {
                "num_cpus": settings.classifier_num_cpus,
                "num_gpus": settings.classifier_num_gpus,
            },
            "user_config": classifier_user_config(settings),
            "logging_config": _logging(settings),
        },
        "Ingress": {
            "num_replicas": settings.ingress_replicas,
            # The ingress only awaits I/O and a thread for decoding; Serve's default of 5
            # ongoing requests would cap the classifier's batches at 5. Above its own admission
            # limit (max_pending_requests), so the excess reaches it and gets a JSON 503.
            "max_ongoing_requests": settings.max_pending_requests + 16,
            "ray_actor_options": {"num_cpus": settings.ingress_num_cpus},
            "logging_config": _logging(settings),
        },
    }


def build_app(args: dict[str, Any] | None = None) -> Application:
    """The Recognize application: Ingress → Classifier, or one Ingress that classifies."""
    return application(Settings(**(args or {})) if args else get_settings())


def application(settings: Settings) -> Application:
    options = deployment_options(settings)
    classifier = (
        None
        if settings.classifier_in_ingress
        else Classifier.options(**options["Classifier"]).bind()
    )
    return Ingress.options(**options["Ingress"]).bind(
        classifier, settings.model_dump(mode="json", exclude_unset=False)
    )


def serve_config(settings: Settings) -> dict[str, Any]:
    """The application as a Serve config document (`serve run` / KubeRay `serveConfigV2`)."""
    overrides = settings.model_dump(mode="json", exclude_defaults=True)
    overrides.pop("host", None)
    overrides.pop("port", None)
    overrides.pop("metrics_port", None)  # a node setting (`ray start --metrics-export-port`)
    options = deployment_options(settings)
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": settings.host, "port": settings.port},
        "applications": [
            {
                "name": APP_NAME,
                "route_prefix": "/",
                "import_path": "service.app:build_app",
                "args": overrides,
                "deployments": [{"name": name, **opts} for name, opts in options.items()],
            }
        ],
    }


def _set_up_direct_http(settings: Settings) -> bool:
    """Let the ingress replica itself listen on host:port, with no Ray proxy in between: sets
    Ray's environment for it and says whether it applies.

    Ray Serve's direct ingress runs an HTTP server in each ingress replica; the proxy in front
    of it cost ~15% of the throughput on 2 CPU cores (loadtest/RESULTS.md). One port fits one
    replica, so this needs a local node with one ingress replica; else the proxy stays.
    """
    replicas = (
        settings.classifier_replicas
        if settings.classifier_in_ingress
        else settings.ingress_replicas
    )
    if not settings.direct_http or settings.ray_address or replicas != 1:
        # Clients come through the proxy, as in the chart: no replica needs its own server.
        os.environ.setdefault("RAY_SERVE_ENABLE_DIRECT_INGRESS", "0")
        return False
    # Serve hands replicas ports from [MIN, MAX): exactly the service's port.
    os.environ["RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT"] = str(settings.port)
    os.environ["RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT"] = str(settings.port + 1)
    # A dead replica's port is held back 150 s by default, for HAProxy workers that may still
    # route to it; none runs here, and the replacement replica needs that very port at once.
    os.environ["RAY_SERVE_PORT_QUARANTINE_S"] = "0"
    return True


def _spare_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _port_taken(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Ray's exporter binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _drain(serve: Any, timeout_s: float) -> None:
    """Wait until no ingress replica has a request in progress (at most the request deadline):
    serve.shutdown() itself drops open connections."""
    deadline = time.monotonic() + timeout_s
    try:
        handle = serve.get_deployment_handle("Ingress", app_name=APP_NAME)
        while time.monotonic() < deadline:
            if handle.in_progress.remote().result(timeout_s=5) == 0:
                return
            time.sleep(0.1)
    except Exception as exc:  # noqa: BLE001 - best effort: shut down anyway
        logger.warning("could not drain before shutdown: %s", exc)


def serve_forever() -> int:
    """Start local Ray (or join ``ray_address``), run the app on host:port until interrupted."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = get_settings().for_local_node()
    if not settings.resolved_model_path.is_file():
        logger.error(
            "model file %s does not exist: build the demo model with `make model`, or point "
            "RECOGNIZE_MODEL_PATH at an ONNX file exported by `recognize export`",
            settings.resolved_model_path,
        )
        return 2
    if settings.auth_disabled:
        logger.warning("API keys are switched off (RECOGNIZE_AUTH_DISABLED=true): local demo only")
    elif not settings.api_keys:
        logger.error(
            "no API keys configured: set RECOGNIZE_API_KEYS to a JSON list of entries from "
            "`recognize keys create TENANT`, or RECOGNIZE_AUTH_DISABLED=true for a local demo"
        )
        return 2
    if not settings.ray_address and _port_taken(settings.metrics_port):
        # Ray's node agent would crash on it and the node time out after 30 s, saying neither.
        logger.error(
            "metrics port %d is in use: set RECOGNIZE_METRICS_PORT to a free port",
            settings.metrics_port,
        )
        return 2
    set_ray_environment()
    direct = _set_up_direct_http(settings)
    import ray
    from ray import serve
    from ray._private import ray_constants

    if settings.ray_address:
        ray.init(address=settings.ray_address)
    else:
        # On Linux, Ray turns a loopback _node_ip_address into the machine's interface address
        # (loopback is kept only where multi-node clusters are off, as on macOS), and the
        # node's metrics export then listens on every interface. A local node needs no peers.
        ray_constants.ENABLE_RAY_CLUSTER = False
        ray.init(
            num_cpus=settings.ray_num_cpus or os.cpu_count(),
            # No dashboard UI; the node's dashboard agent still runs and exports every
            # process's metrics, ours and ray_serve_*, on one port (service/metrics.py).
            include_dashboard=False,
            # Keep every Ray endpoint on loopback for a local single-node service.
            _node_ip_address="127.0.0.1",
            _metrics_export_port=settings.metrics_port,
        )

    def _stop(signum: int, _frame: Any) -> None:
        # Once is enough: a second SIGTERM (e.g. from a wrapper) must not break the shutdown.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        # With direct ingress Serve still runs its proxy on the head node; it then listens on a
        # spare loopback port, and clients reach the replica on the service's port.
        proxy_port = _spare_port() if direct else settings.port
        serve.start(http_options={"host": settings.host, "port": proxy_port})
        serve.run(application(settings), name=APP_NAME, route_prefix="/", blocking=False)
        logger.info(
            "Recognize is serving on http://%s:%d (%s, %s)",
            settings.host,
            settings.port,
            "one deployment" if settings.classifier_in_ingress else "Ingress + Classifier",
            "direct to the replica" if direct else "through Ray's HTTP proxy",
        )
        signal.pause()
    except KeyboardInterrupt:
        logger.info("shutting down: finishing the requests in progress")
        _drain(serve, settings.request_timeout_s)
    except Exception:
        logger.exception("the application failed to start")
        return 1
    finally:
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(serve_forever())
