"""The service's Prometheus metrics, declared once: names, help, label sets and buckets.

Where Prometheus scrapes them
-----------------------------
Every metric here is a Ray Serve metric (``ray.serve.metrics``), recorded in the replica that
observes it and exported by the Ray metrics agent of the replica's node, on the node's metrics
export port, together with Ray Serve's own ``ray_serve_*`` metrics and Ray's system metrics.
Ray prefixes every name with ``ray_``, so ``recognize_requests_total`` is scraped as
``ray_recognize_requests_total``, and adds the ``deployment``, ``replica`` and ``application``
labels (plus ``NodeAddress``, ``SessionName``, ``WorkerId`` and so on).

Why not a ``/metrics`` route on the ingress with prometheus-client: the ingress and the
classifier are separate processes (the classifier on GPU nodes), and each deployment scales to
several replicas, so an in-process registry would show one random replica's numbers per scrape
(Serve routes ``/metrics`` like any request) and never the classifier's batch metrics at all.
Ray already aggregates every process of a node in one exporter: one scrape target per node,
with our metrics and ``ray_serve_*`` side by side, no extra port, no multiprocess directory.

- Kubernetes (KubeRay): the operator starts every head and worker pod with
  ``--metrics-export-port=8080`` and names the container port ``metrics``; a PodMonitor on
  that port scrapes every node, and Prometheus adds ``namespace``/``pod`` labels.
- Locally, ``recognize serve`` passes ``_metrics_export_port=RECOGNIZE_METRICS_PORT`` (default
  8080) to ``ray.init``. ``include_dashboard=False`` keeps the exporter: it lives in the
  per-node dashboard *agent*, which Ray starts regardless; only the dashboard UI is off. The
  agent binds the port to 127.0.0.1 when the node's address is loopback (see ``service.app``)
  and to every interface otherwise, as a pod needs.

Ray records in the replica and the agent exports what the replicas report every few seconds
(``metrics_report_interval_ms``, 10 s by default): a scrape lags an event by up to that much.
A histogram's ``_count`` and ``_bucket`` series are exact, but Ray rebuilds its ``_sum`` from
bucket midpoints: dashboards and alerts use quantiles and counts, not ``_sum``, except for the
batch size, whose buckets are laid out so that its ``_sum`` is exact. And Ray drops a gauge
that has not been set for two report intervals, so the classifier re-sets its gauges on a timer.

Conventions: base units (seconds), ``_total`` on counters, fixed label sets with bounded values
(``endpoint`` is a route of the API or ``other``; ``verdict`` is ``none`` where there is none),
explicit buckets. Replicas create their metrics in ``__init__`` (Serve's labels are only known
inside a replica), through ``IngressMetrics`` and ``ClassifierMetrics``.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ray.serve import metrics as serve_metrics

from service.core.reasons import Reason

if TYPE_CHECKING:
    from service.api.schemas import Latency
    from service.core.vin import VinDecode

RAY_PREFIX = "ray_"

# End-to-end latency: 5 ms (a health check, a refused request) to 10 s (a 50 MP photo on a
# busy CPU node); 2 s is a bucket bound because it is the p99 SLO (deploy/prometheus/alerts.yaml).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5,
    0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0,
)  # fmt: skip
# Stages also run in well under 5 ms (queue wait of a full batch, decoding a small image).
STAGE_BUCKETS_S: tuple[float, ...] = (0.001, 0.0025, *LATENCY_BUCKETS_S)
# Batch sizes: one bucket per size up to the default maximum of 8, then coarser up to the limit
# of 256. The bounds sit between integers because Ray exports a histogram's _sum from bucket
# midpoints, not from the observed values (ray-project/ray#64852): a bucket (k-0.5, k+0.5] has
# the midpoint k, so the mean batch size (_sum / _count) stays exact for sizes 1-8.
BATCH_SIZE_BUCKETS: tuple[float, ...] = (
    0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 12.5, 16.5, 24.5, 32.5, 64.5, 128.5, 256.5,
)  # fmt: skip

# Under Ray's default report interval (10 s), so that every report carries every gauge.
GAUGE_REFRESH_S = 5.0

STAGES = ("decode", "preprocess", "queue", "inference")
NO_VERDICT = "none"
OTHER_ENDPOINT = "other"
INVALID = "invalid"  # the layout of a VIN too malformed to have one, and its decode result
PARENT_FOUND = "parent"
VEHICLE_PRESENT = "vehicle"

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric as declared here; ``exported`` is the name Prometheus sees."""

    kind: Kind
    name: str
    description: str
    tag_keys: tuple[str, ...] = ()
    boundaries: tuple[float, ...] = ()

    @property
    def exported(self) -> str:
        return RAY_PREFIX + self.name

    @property
    def exported_series(self) -> tuple[str, ...]:
        """Every series name of the exposition (histograms have three)."""
        if self.kind == "histogram":
            return tuple(self.exported + s for s in ("_bucket", "_count", "_sum"))
        return (self.exported,)

    def create(self) -> serve_metrics.Counter | serve_metrics.Gauge | serve_metrics.Histogram:
        if self.kind == "counter":
            return serve_metrics.Counter(
                self.name, description=self.description, tag_keys=self.tag_keys
            )
        if self.kind == "gauge":
            return serve_metrics.Gauge(
                self.name, description=self.description, tag_keys=self.tag_keys
            )
        return serve_metrics.Histogram(
            self.name,
            description=self.description,
            boundaries=list(self.boundaries),
            tag_keys=self.tag_keys,
        )


# --- ingress -------------------------------------------------------------------------------
REQUESTS = MetricSpec(
    "counter",
    "recognize_requests_total",
    "HTTP requests answered by the ingress, by endpoint, HTTP status and verdict "
    "(match, mismatch, manual_review; none for other endpoints and errors).",
    ("endpoint", "status", "verdict"),
)
REQUEST_DURATION = MetricSpec(
    "histogram",
    "recognize_request_duration_seconds",
    "Time from a request reaching the ingress to its response, in seconds.",
    ("endpoint",),
    LATENCY_BUCKETS_S,
)
STAGE_DURATION = MetricSpec(
    "histogram",
    "recognize_stage_duration_seconds",
    "Time of one stage of a served POST /recognize (decode, preprocess, queue, inference), "
    "in seconds: the figures of the response's latency_ms.",
    ("stage",),
    STAGE_BUCKETS_S,
)
ERRORS = MetricSpec(
    "counter",
    "recognize_errors_total",
    "JSON error responses (4xx and 5xx) by error code and HTTP status.",
    ("code", "status"),
)
VEHICLE_CHECKS = MetricSpec(
    "counter",
    "recognize_vehicle_checks_total",
    "Photos the vehicle gate checked, by result (vehicle; no_vehicle: sent to manual review "
    "with reason no_vehicle). Absent while the gate is off.",
    ("result",),
)
VIN_DECODES = MetricSpec(
    "counter",
    "recognize_vin_decodes_total",
    "VINs decoded, by layout (eu, na; invalid) and result (parent: an expected parent class "
    "was found; else the first reason: unknown_model_code, generation_not_supported, "
    "model_line_ambiguous, vin_not_mercedes; invalid).",
    ("layout", "result"),
)

# --- classifier ----------------------------------------------------------------------------
BATCH_SIZE = MetricSpec(
    "histogram",
    "recognize_inference_batch_size",
    "Images per inference call (one observation per batch).",
    (),
    BATCH_SIZE_BUCKETS,
)
BATCH_QUEUE = MetricSpec(
    "gauge",
    "recognize_batch_queue_requests",
    "Requests in this classifier replica waiting for an inference batch to start.",
)
MODEL_INFO = MetricSpec(
    "gauge",
    "recognize_model_info",
    "The model this classifier replica serves: 1 for the current one, 0 for one replaced.",
    ("arch", "version", "input_size"),
)
MODEL_READY = MetricSpec(
    "gauge",
    "recognize_model_ready",
    "1 once this classifier replica has loaded and warmed up its model, 0 before.",
)

METRICS: tuple[MetricSpec, ...] = (
    REQUESTS,
    REQUEST_DURATION,
    STAGE_DURATION,
    ERRORS,
    VEHICLE_CHECKS,
    VIN_DECODES,
    BATCH_SIZE,
    BATCH_QUEUE,
    MODEL_INFO,
    MODEL_READY,
)


class IngressMetrics:
    """The ingress replica's metrics; create one per replica."""

    def __init__(self) -> None:
        self._requests = REQUESTS.create()
        self._duration = REQUEST_DURATION.create()
        self._stages = STAGE_DURATION.create()
        self._errors = ERRORS.create()
        self._vehicle_checks = VEHICLE_CHECKS.create()
        self._vins = VIN_DECODES.create()

    def request(
        self,
        *,
        endpoint: str,
        status: int,
        verdict: str | None,
        error_code: str | None,
        duration_s: float,
    ) -> None:
        """One answered request; ``error_code`` for every JSON error response."""
        status_text = str(status)
        self._requests.inc(
            tags={"endpoint": endpoint, "status": status_text, "verdict": verdict or NO_VERDICT}
        )
        self._duration.observe(duration_s, tags={"endpoint": endpoint})
        if error_code is not None:
            self._errors.inc(tags={"code": error_code, "status": status_text})

    def stages(self, latency_ms: Latency) -> None:
        """The stage latencies of one served recognition (the response's ``latency_ms``)."""
        for stage in STAGES:
            self._stages.observe(getattr(latency_ms, stage) / 1000, tags={"stage": stage})

    def vehicle_check(self, *, present: bool) -> None:
        """One photo the vehicle gate checked."""
        result = VEHICLE_PRESENT if present else Reason.NO_VEHICLE.value
        self._vehicle_checks.inc(tags={"result": result})

    def vin_decode(self, decoded: VinDecode | None) -> None:
        """One decoded VIN; ``None`` for one refused as invalid."""
        if decoded is None:
            layout = result = INVALID
        else:
            layout = decoded.layout
            reasons = decoded.reasons or [Reason.UNKNOWN_MODEL_CODE]
            result = PARENT_FOUND if decoded.expected_parent else reasons[0].value
        self._vins.inc(tags={"layout": layout, "result": result})


class ClassifierMetrics:
    """The classifier replica's metrics; create one per replica.

    Ray exports a gauge only while it is set again and again: a value not set for two report
    intervals is dropped as a dead worker's (ray._private.telemetry). A daemon thread re-sets
    the gauges every ``GAUGE_REFRESH_S``, so an idle, healthy replica stays visible.
    """

    def __init__(self) -> None:
        self._batch_size = BATCH_SIZE.create()
        self._queue = BATCH_QUEUE.create()
        self._model_info = MODEL_INFO.create()
        self._ready_gauge = MODEL_READY.create()
        self._model_tags: dict[str, str] | None = None
        self._waiting = 0
        self._ready = False
        self.refresh()
        threading.Thread(
            target=_keep_exported, args=(weakref.ref(self),), name="metrics-gauges", daemon=True
        ).start()

    def batch(self, size: int) -> None:
        self._batch_size.observe(size)

    def waiting(self, requests: int) -> None:
        self._waiting = requests
        self._queue.set(requests)

    def ready(self, ready: bool) -> None:
        self._ready = ready
        self._ready_gauge.set(1 if ready else 0)

    def model(self, *, arch: str, version: str, input_size: int) -> None:
        """Mark the model now served; a replaced model's series drops to 0, then goes."""
        tags = {"arch": arch, "version": version, "input_size": str(input_size)}
        if self._model_tags is not None and self._model_tags != tags:
            self._model_info.set(0, tags=self._model_tags)
        self._model_tags = tags
        self._model_info.set(1, tags=tags)

    def refresh(self) -> None:
        """Set every gauge to its current value again."""
        self._queue.set(self._waiting)
        self._ready_gauge.set(1 if self._ready else 0)
        if self._model_tags is not None:
            self._model_info.set(1, tags=self._model_tags)


def _keep_exported(metrics: weakref.ref[ClassifierMetrics]) -> None:
    while True:
        time.sleep(GAUGE_REFRESH_S)
        alive = metrics()
        if alive is None:
            return
        alive.refresh()
        del alive
