"""Ray's private APIs: the only module that touches them (tests/unit/test_layout.py checks).

Each use says why no public API does, so an upgrade of Ray knows what to look at first.
Pinned Ray: 2.60.0 (pyproject.toml).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle


def by_the_cluster_transport(handle: DeploymentHandle) -> tuple[DeploymentHandle, bool]:
    """The handle, sending its calls the way this cluster's replicas take them, and whether
    that is through Ray's object store (else gRPC).

    A handle keeps the transport of the process that built the application, fixed when that
    process imported Ray Serve; the replica's own constants are the cluster's. Serve has no
    public switch for a handle's transport (``_by_reference`` is a private handle option).
    """
    from ray.serve._private import constants

    routed = handle.options(_by_reference=not constants.RAY_SERVE_USE_GRPC_BY_DEFAULT)
    return routed, bool(routed.handle_options._by_reference)


def keep_a_local_node_on_loopback() -> None:
    """On Linux, Ray turns a loopback ``_node_ip_address`` into the machine's interface address
    (loopback is kept only where multi-node clusters are off, as on macOS), and the node's
    metrics export then listens on every interface. A single local node needs no peers, so
    switch multi-node support off for this process (no public setting exists)."""
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def start_local_node(*, num_cpus: int, metrics_port: int) -> None:
    """A single Ray node on loopback, its metrics exported on ``metrics_port``.

    ``ray.init`` takes the node's address and its metrics port only as private arguments
    (``_node_ip_address``, ``_metrics_export_port``); ``ray start`` has public flags for both,
    but a driver that starts its own node cannot use them.
    """
    import ray

    keep_a_local_node_on_loopback()
    ray.init(
        num_cpus=num_cpus,
        # No dashboard UI; the node's dashboard agent still runs and exports every process's
        # metrics, ours and ray_serve_*, on one port (service/metrics.py).
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        _metrics_export_port=metrics_port,
    )
