"""One settings object for the whole service, read from ``RECOGNIZE_*`` environment variables.

Example::

    RECOGNIZE_MODEL_PATH=/models/convnext_base_300.onnx
    RECOGNIZE_PROVIDERS='["CUDAExecutionProvider"]'

The classifier's options (model, providers, threads, batching) are declared once, in
``ClassifierOptions``: ``Settings`` reads them from the environment like every other field, and
the Classifier deployment gets the same fields as its ``user_config``
(``service.inference.session.ClassifierConfig``), so they can be changed on a live deployment.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.core.auth import ApiKey
from service.core.calibration import Calibration, DecisionRule, decision_rule
from service.core.imaging import Limits

# Relative model paths resolve against the working directory of the process that reads them:
# `make run` and the tests run from the checkout; production passes absolute paths.
DEMO_MODEL = Path("models/demo/convnext_tiny_224_demo.onnx")
# The vehicle gate at the demo model's input size (`make gate`); a classifier of another size
# needs a gate exported at that size (`recognize export-gate --input-size N`).
DEMO_GATE = Path("models/gate/vehicle_gate_224.onnx")
KNOWN_PROVIDERS = ("CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider")


class ClassifierOptions(BaseModel):
    """How a classifier replica runs the model; live-tunable through its ``user_config``."""

    model_path: Path = Field(DEMO_MODEL, description="ONNX model file (`recognize export`)")
    providers: tuple[str, ...] = Field(
        ("CPUExecutionProvider",),
        description="onnxruntime execution providers in priority order; a requested CUDA provider "
        "that is unavailable fails the replica instead of silently running on the CPU",
    )
    intra_op_threads: int = Field(
        0,
        ge=0,
        le=256,
        description="onnxruntime intra-op threads per classifier replica; 0 = the replica's CPUs",
    )
    max_batch_size: int = Field(
        8,
        ge=1,
        le=256,
        description="largest inference batch; on CPU batching buys little, on a GPU 5-7x",
    )
    batch_wait_timeout_s: float = Field(
        0.005,
        ge=0.0,
        le=1.0,
        description="how long a partial batch waits for more requests before it runs",
    )
    concurrent_batches: int = Field(
        2,
        ge=1,
        le=16,
        description="batches a classifier replica runs at once, each on its own thread: while "
        "one runs, the next forms, so the cores never wait for the Python side. On a CPU a batch "
        "that starts alone gets every intra-op thread (latency at low load), one that starts "
        "while another runs gets its share of them (a second session): on 2 cores at "
        "concurrency 16, 31.4 req/s vs 26.5-28.9 with one session for both",
    )
    batch_buckets: tuple[int, ...] = Field(
        (),
        description="GPU: pad batches up to these sizes (e.g. [1,2,4,8,16,32]), each run by a "
        "session of its own (one copy of the weights per bucket): the CUDA EP re-plans its cuDNN "
        "convolutions whenever a session's input shape changes (5-7 s each time for ConvNeXt-B "
        "on an H100); CPU: leave empty, padding there only burns cycles",
    )
    warmup_batch_sizes: tuple[int, ...] = Field(
        (), description="batch sizes to warm up before ready; empty = every size 1..max_batch_size"
    )
    gate_enabled: bool = Field(
        True,
        description="run the vehicle gate beside the classifier on the same batch: a photo "
        "whose vehicle probability is below vehicle_threshold goes to manual review (reason "
        "no_vehicle); false: no gate, the response's `vehicle` is null",
    )
    gate_model_path: Path = Field(
        DEMO_GATE,
        description="ONNX vehicle gate (`recognize export-gate`), exported at the classifier's "
        "input size",
    )
    taxonomy_path: Path | None = Field(
        None,
        description="taxonomy file whose classes the model's outputs are (the format of "
        "service/core/data/taxonomy.yaml); unset: the packaged Mercedes-Benz taxonomy",
    )

    @model_validator(mode="after")
    def _check_classifier(self) -> ClassifierOptions:
        unknown = [p for p in self.providers if p not in KNOWN_PROVIDERS]
        if unknown:
            raise ValueError(f"unknown onnxruntime providers {unknown}; known: {KNOWN_PROVIDERS}")
        too_big = [b for b in self.warmup_batch_sizes if not 1 <= b <= self.max_batch_size]
        if too_big:
            raise ValueError(f"warmup_batch_sizes {too_big} outside 1..max_batch_size")
        if self.batch_buckets and max(self.batch_buckets) < self.max_batch_size:
            raise ValueError(
                f"batch_buckets {list(self.batch_buckets)} must reach max_batch_size "
                f"{self.max_batch_size}"
            )
        return self

    @property
    def cpu_only(self) -> bool:
        return set(self.providers) == {"CPUExecutionProvider"}

    def classifier_options(self) -> dict[str, Any]:
        """Just these options, as JSON (the Classifier's ``user_config``)."""
        return self.model_dump(mode="json", include=set(ClassifierOptions.model_fields))


class Settings(BaseSettings, ClassifierOptions):
    # extra="forbid": a misspelt key in a Serve config's ``args`` fails the deployment, naming
    # the key, instead of being dropped (unknown RECOGNIZE_* variables are never read at all).
    model_config = SettingsConfigDict(env_prefix="RECOGNIZE_", extra="forbid", frozen=True)

    # --- replicas and resources ---------------------------------------------------------------
    classifier_in_ingress: bool | None = Field(
        None,
        description="true: one deployment that decodes and classifies (saves a hop and a "
        "process); false: separate Ingress and Classifier deployments, so CPU preprocessing "
        "scales apart from the (GPU) classifier replicas; unset: one deployment where "
        "`recognize serve` runs the model on the CPU (+15% req/s on 2 cores), two in generated "
        "Serve configs (`recognize config`, the Helm chart)",
    )
    classifier_replicas: int = Field(1, ge=1, le=64)
    classifier_num_cpus: float = Field(1.0, ge=0.0)
    classifier_num_gpus: float = Field(0.0, ge=0.0, description="fractional GPUs are allowed")
    ingress_replicas: int = Field(1, ge=1, le=64)
    gather_in_ingress: bool = Field(
        False,
        description="separate Ingress and Classifier: each Ingress replica gathers the images "
        "of concurrent requests (up to the Classifier's max_batch_size, waiting at most its "
        "batch_wait_timeout_s) and sends them in one Classifier call, instead of one call per "
        "request; loadtest/RESULTS.md has what it measured",
    )
    ingress_num_cpus: float = Field(0.5, ge=0.0)

    # --- overload and deadlines -----------------------------------------------------------------
    max_pending_requests: int = Field(
        64,
        ge=1,
        le=10_000,
        description="requests one ingress replica admits at once; more get 503 'overloaded' with "
        "Retry-After at once instead of queueing without bound",
    )
    request_timeout_s: float = Field(
        30.0,
        gt=0.0,
        le=600.0,
        description="deadline of one request inside the service; past it the client gets 504",
    )

    # --- decision thresholds -------------------------------------------------------------------
    # Unset (None): the model file's calibrated thresholds (`recognize calibrate`,
    # service/core/calibration.py), or 0.80 for an uncalibrated model. A value set here
    # overrides the calibration: logged at start-up, named in every response and in /v1/model,
    # and such responses are not `calibrated` (the certificate covers its own thresholds only).
    match_threshold: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="'match' needs at least this probability on the VIN's parent class; unset: "
        "the model's calibrated threshold, else 0.80",
    )
    mismatch_threshold: float | None = Field(
        None,
        gt=0.0,
        le=1.0,
        description="'mismatch' needs another parent class with at least this probability; "
        "unset: the model's calibrated threshold, else 0.80",
    )
    vin_rules_path: Path | None = Field(
        None,
        description="VIN rules file naming the parents of the taxonomy served (the format of "
        "service/core/data/vin_rules.yaml); unset: the packaged Mercedes-Benz rules",
    )
    # Chosen from the gate's scores on real photos (README, "The vehicle gate"): at 224 px every
    # photo with a car, van, truck or bus as its subject scored 0.46 or more, every photo
    # without one 0.053 or less; at 300 px 0.19 and 0.093. 0.15 sits between both pairs.
    vehicle_threshold: float = Field(
        0.15,
        ge=0.0,
        le=1.0,
        description="the vehicle gate's summed probability of ImageNet's vehicle classes below "
        "which a photo shows no vehicle (manual review, reason no_vehicle); 0 lets every photo "
        "pass",
    )

    # --- input limits --------------------------------------------------------------------------
    max_upload_bytes: int = Field(20 * 1024 * 1024, ge=1024, description="bytes per image upload")
    max_image_pixels: int = Field(
        50_000_000,
        ge=10_000,
        description="width x height above which an image is refused (decompression bombs); "
        "50 MP admits today's full-resolution phone photos",
    )
    min_image_side: int = Field(32, ge=1, description="shortest accepted image side in pixels")
    default_top_k: int = Field(3, ge=1, le=10)

    # --- authentication --------------------------------------------------------------------------
    api_keys: tuple[ApiKey, ...] = Field(
        (),
        description="API keys as salted hashes with their tenants, a JSON list of "
        '{"tenant", "hash"} (`recognize keys create TENANT` makes one); never plain keys',
    )
    auth_disabled: bool = Field(
        False,
        description="serve without API keys: only for a local demo (make run); logged as a "
        "warning at start-up",
    )
    docs_require_auth: bool = Field(
        False, description="also require a key for /docs, /redoc and /openapi.json"
    )

    # --- logs ----------------------------------------------------------------------------------
    log_encoding: Literal["JSON", "TEXT"] = Field(
        "JSON", description="Serve's log lines: JSON (structured, for log shippers) or TEXT"
    )

    # --- network and Ray -----------------------------------------------------------------------
    host: str = Field("127.0.0.1", description="HTTP bind address")
    port: int = Field(8000, ge=1, le=65535)
    metrics_port: int = Field(
        8080,
        ge=1,
        le=65535,
        description="port of the local Ray node's metrics export (our metrics and Ray Serve's, "
        "see service/metrics.py); `recognize serve` only: on KubeRay the operator sets it (8080)",
    )
    direct_http: bool = Field(
        True,
        description="`recognize serve` with one ingress replica: that replica listens on "
        "host:port itself (Ray Serve direct ingress), no Ray HTTP proxy in between",
    )
    http_proxy: Literal["haproxy", "serve"] = Field(
        "haproxy",
        description="the HTTP proxy in front of the ingress replicas where one is needed (the "
        "chart's layout, `recognize serve` without direct_http): Ray Serve's HAProxy mode "
        "(39-50 % less CPU per request) or Serve's Python proxy; a node setting: the chart "
        "sets it on every pod (ray.httpProxy)",
    )
    ray_address: str | None = Field(None, description="existing Ray cluster; None = start local")
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs for a local Ray; None = all")

    def for_local_node(self) -> Settings:
        """The settings `recognize serve` runs with: the model path made absolute (replicas
        run in other processes), an unset layout resolved for this node."""
        update: dict[str, Any] = {
            "model_path": self.model_path.absolute(),
            "gate_model_path": self.gate_model_path.absolute(),
        }
        for name in ("taxonomy_path", "vin_rules_path"):
            path = getattr(self, name)
            if path is not None:
                update[name] = path.absolute()
        if self.classifier_in_ingress is None:
            update["classifier_in_ingress"] = self.cpu_only
        return self.model_copy(update=update)

    def limits(self) -> Limits:
        return Limits(max_pixels=self.max_image_pixels, min_side=self.min_image_side)

    def decision_rule(self, calibration: Calibration | None) -> DecisionRule:
        """The model's calibrated rule with this process's threshold overrides, and the vehicle
        gate's threshold."""
        return decision_rule(
            calibration,
            match_threshold=self.match_threshold,
            mismatch_threshold=self.mismatch_threshold,
            vehicle_threshold=self.vehicle_threshold,
        )

    @property
    def classifier_max_ongoing_requests(self) -> int:
        # Must be >= max_batch_size x concurrent_batches or batches can never fill (Serve's
        # default of 5 caps them at 5); one batch more keeps the next one queued while those
        # run. And no fewer than one ingress
        # replica admits: requests past it wait in the caller's router, which probes and backs
        # off (at concurrency 64 that cut throughput from 20 to 7.5 req/s on 2 cores), while in
        # the classifier they just wait in the batch queue.
        return max((self.concurrent_batches + 1) * self.max_batch_size, self.max_pending_requests)


def settings_from_args(args: dict[str, Any]) -> Settings:
    """Settings from a Serve config's ``args`` (over the environment), an unknown key named."""
    try:
        return Settings(**args)
    except ValidationError as exc:
        errors = exc.errors()
        unknown = [".".join(map(str, e["loc"])) for e in errors if e["type"] == "extra_forbidden"]
        if unknown:
            raise ValueError(
                f"unknown setting(s) {unknown} in the application's args; known settings: "
                f"{sorted(Settings.model_fields)}"
            ) from exc
        raise


@cache
def get_settings() -> Settings:
    """The settings of this process, read once."""
    return Settings()
