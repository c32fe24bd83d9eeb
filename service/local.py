"""Runs the service on a local Ray node: `recognize serve`.

Starts Ray (or joins ``ray_address``), lets the ingress replica listen itself where it can
(direct ingress), runs the application until SIGTERM or Ctrl-C, and drains the requests in
progress before it stops. Building the application itself is ``service.app``'s.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import time
from typing import Any

from service.app import APP_NAME, application
from service.rayenv import proxy_environment, set_ray_environment
from service.settings import Settings, get_settings

logger = logging.getLogger("recognize")


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
        for name, value in proxy_environment(settings.http_proxy).items():
            os.environ.setdefault(name, value)
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
    if not settings.model_path.is_file():
        logger.error(
            "model file %s does not exist: build the demo model with `make model` in a checkout, "
            "or point RECOGNIZE_MODEL_PATH at an ONNX file exported by `recognize export`",
            settings.model_path,
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

    from service._raycompat import start_local_node

    if settings.ray_address:
        ray.init(address=settings.ray_address)
    else:
        start_local_node(
            num_cpus=settings.ray_num_cpus or os.cpu_count() or 1,
            metrics_port=settings.metrics_port,
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
