"""Side-by-side benchmark: raw onnxruntime, this service, a naive server and Triton, one run.

Same ONNX model, same machine, same photos (JPEGs of about 460x706) and the same C-Class VIN:

1. raw   onnxruntime in this process through ``service.inference.session.build_session`` at
         each batch size: images/s and latency per ``session.run`` call; the best is the box's
         ceiling (with the vehicle gate's session run on the same batch while the gate is on,
         as the Classifier runs it);
2. service  ``recognize serve`` (Ray Serve) end to end over HTTP at each concurrency, in the
            layout ``make run`` starts: one deployment that decodes and classifies, listening
            itself (direct ingress);
3. cluster  ``recognize serve`` in the Helm chart's layout: an HTTP proxy (HAProxy, the chart's
            default ``ray.httpProxy``), the Ingress deployment and the Classifier deployment,
            each its own process;
   pyproxy  the same with Serve's Python proxy in place of HAProxy (``ray.httpProxy: serve``);
   gather   the chart's layout with the Ingress gathering concurrent requests' images into one
            Classifier call (``RECOGNIZE_GATHER_IN_INGRESS=true``);
   split    the same two deployments with the Ingress replica listening itself (Serve's direct
            ingress, no proxy hop): what the chart could do behind a Kubernetes Service;
4. naive    FastAPI + uvicorn + onnxruntime, one inference at a time (``loadtest/naive_server.py``);
5. triton   NVIDIA Triton via PyTriton with its dynamic batcher (``loadtest/triton_server.py``,
            run from ``.venv-triton``; skipped when ``make triton`` has not been run).

The naive and Triton peers run no vehicle gate: compare them with ``--no-gate``. ``--near-free``
replaces the model with a twin of the same contract that costs microseconds
(``loadtest/_nearfree.py``; the gate off), so the run measures the serving stack alone (issue
13). Each server cell also reports the CPU milliseconds per request of each process group
(Serve's proxy, the ingress replicas, the classifier replica, Ray's own processes; the load
generator's are measured by the load processes), read from /proc over the measured window.

Every server decodes and resizes the uploaded JPEG with ``service.core.imaging.prepare_image``,
decodes the VIN and computes the verdict; every onnxruntime session has the service's options
(thread spinning off). Servers run one at a time, each started as a subprocess on a free
127.0.0.1 port: cold start (spawn to ready), RSS/PSS of its whole process tree and its idle CPU
are reported beside throughput, p50/p90/p99 and mean batch size per concurrency, and the ratios
service/raw ceiling, service/naive and service/Triton at equal concurrency.

    python -m loadtest.bench                    # ~4 minutes on 2 cores with the demo model
    python -m loadtest.bench --quick --peers service,naive
    python -m loadtest.bench --url http://127.0.0.1:8000 --peers service
    python -m loadtest.bench --near-free --concurrency 1,16,64   # the stack alone (issue 13)

Prints a table and writes JSON (default ``results/bench-<timestamp>.json``). Load goes to
127.0.0.1 only; each cell is bounded in time (a warm-up of ``--warmup`` seconds that also waits
until every client has had an answer, 60 s at most, then ``--duration``) and in requests.
Exit status: 0, or 1 when a server failed to start or answered with errors.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtest._httpload import (
    Target,
    json_answer,
    kserve_answer,
    kserve_payloads,
    multipart_payloads,
    require_loopback,
)
from loadtest._loadgen import BUSY_WARNING, run_cell
from loadtest._nearfree import build_near_free
from loadtest._raw import WithGate, parallel_images_per_s, time_batch
from loadtest._servers import (
    ServerFailed,
    ServerProcess,
    start_naive,
    start_service,
    start_triton,
)
from loadtest._stats import RoleCPU, one_role, service_role
from loadtest._workload import C_CLASS_VIN
from loadtest.photos import dealer_jpegs

REPO = Path(__file__).resolve().parent.parent
TRITON_VENV = REPO / ".venv-triton"
PEERS = ("service", "cluster", "pyproxy", "gather", "split", "naive", "triton")
# The chart's layout on one machine: proxy + Ingress + Classifier (service/settings.py).
_CLUSTER = {"RECOGNIZE_CLASSIFIER_IN_INGRESS": "false", "RECOGNIZE_DIRECT_HTTP": "false"}
# recognize serve's layouts: the settings each peer adds to the environment.
SERVICE_LAYOUTS: dict[str, dict[str, str]] = {
    "service": {},
    "cluster": _CLUSTER,
    "pyproxy": {**_CLUSTER, "RECOGNIZE_HTTP_PROXY": "serve"},
    "gather": {**_CLUSTER, "RECOGNIZE_GATHER_IN_INGRESS": "true"},
    # Ingress + Classifier, the Ingress replica listening itself (service/local.py).
    "split": {**_CLUSTER, "RECOGNIZE_DIRECT_HTTP": "true"},
}
SERVICES = tuple(SERVICE_LAYOUTS)
CPU_GROUPS = ("proxy", "ingress", "classifier", "ray", "server")
DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16)
DEFAULT_CONCURRENCY = (1, 4, 16, 64)
QUICK = {"batch_sizes": (1, 2), "concurrency": (1, 4), "duration": 2.0, "warmup": 0.5, "idle": 1.0}
PHOTOS = 16  # distinct JPEGs cycled through by the clients

# The CPU targets of issue 4 (section 3), checked against this run's figures.
TARGETS = (
    ("throughput_vs_raw", "service throughput at concurrency 16 >= 0.85 x raw best batch", 0.85),
    ("throughput_vs_naive", "service throughput at concurrency 16 >= naive server's", 1.0),
    ("added_latency_ms", "service p50 at concurrency 1 <= raw batch-1 p50 + 25 ms", 25.0),
    ("idle_cpu_percent", "idle CPU of the whole running service <= 5 % of the machine", 5.0),
    ("cold_start_s", "service cold start (process start to ready) <= 15 s", 15.0),
)

# The stack targets of issue 13, meant for a --near-free run: (key, rule, bound, at most?).
STACK_TARGETS = (
    ("cluster_vs_triton", "cluster throughput at c=64 >= 0.8 x Triton's", 0.8, False),
    ("local_vs_triton", "service (local layout) throughput at c=64 >= 1.0 x Triton's", 1.0, False),
    ("cluster_p99_vs_triton", "cluster p99 at c=64 <= 1.2 x Triton's", 1.2, True),
    ("local_p99_vs_triton", "service p99 at c=64 <= 1.2 x Triton's", 1.2, True),
    ("local_p50_minus_triton_ms", "service p50 at c=1 <= Triton's + 2 ms", 2.0, True),
    ("cluster_images_per_batch", "cluster: images per classifier batch at c=64 >= 16", 16, False),
)


def _csv_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from exc
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def _peers(text: str) -> tuple[str, ...]:
    names = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown peers {unknown}; choose from {PEERS}")
    return names


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from service.settings import Settings

    settings = Settings()
    parser = argparse.ArgumentParser(
        prog="recognize bench",
        description="Raw onnxruntime vs this service vs a naive server vs Triton, one run.",
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=settings.model_path,
        help=f"ONNX model (default RECOGNIZE_MODEL_PATH, {settings.model_path})",
    )
    parser.add_argument(
        "--batch-sizes",
        type=_csv_ints,
        default=DEFAULT_BATCH_SIZES,
        help="raw onnxruntime batch sizes (default 1,2,4,8,16)",
    )
    parser.add_argument(
        "--concurrency",
        type=_csv_ints,
        default=DEFAULT_CONCURRENCY,
        help="concurrent clients per server cell (default 1,4,16,64)",
    )
    parser.add_argument(
        "--duration", type=float, default=8.0, help="measured seconds per cell (default 8)"
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        help="unmeasured seconds before each cell (default 2); the warm-up also lasts until every "
        "client has had an answer, 60 s at most",
    )
    parser.add_argument(
        "--idle",
        type=float,
        default=5.0,
        help="seconds over which each server's idle CPU is measured (default 5)",
    )
    parser.add_argument(
        "--max-requests",
        type=int,
        default=20_000,
        help="requests per cell at most (default 20000)",
    )
    parser.add_argument(
        "--peers",
        type=_peers,
        default=PEERS,
        help="servers to compare, comma-separated (default all: " + ",".join(PEERS) + ")",
    )
    parser.add_argument(
        "--near-free",
        action="store_true",
        help="serve a twin of --model that costs microseconds (same input, classes and metadata; "
        "loadtest/_nearfree.py) instead of the model, the vehicle gate off: the stack alone",
    )
    parser.add_argument(
        "--no-gate",
        action="store_true",
        help="the service without its vehicle gate (RECOGNIZE_GATE_ENABLED=false), as the naive "
        "and Triton peers run; the raw figures then time the model alone",
    )
    parser.add_argument(
        "--url",
        default=None,
        help="benchmark an already running service at this 127.0.0.1 URL instead of starting "
        "one (no cold start, memory or idle CPU then)",
    )
    parser.add_argument(
        "--triton-python",
        type=Path,
        default=TRITON_VENV / "bin" / "python",
        help="Python of the Triton venv (default .venv-triton/bin/python)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: batch sizes 1,2, concurrency 1,4, 2 s cells, 0.5 s warm-up, 1 s idle",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="JSON report (default results/bench-<timestamp>.json)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            if parser.get_default(key) == getattr(args, key):
                setattr(args, key, value)
    if args.url:
        require_loopback(args.url)
    if not args.model.is_file():
        parser.error(f"model {args.model} does not exist: build the demo model with `make model`")
    if args.near_free:
        args.no_gate = True  # the gate would cost more than the whole near-free model
    args.gate = None if args.no_gate or not settings.gate_enabled else settings.gate_model_path
    if args.gate is not None and not args.gate.is_file():
        parser.error(f"vehicle gate {args.gate} does not exist: build it with `make gate`")
    args.settings = settings
    return args


# --- 1. raw onnxruntime ----------------------------------------------------------------------


def bench_raw(
    model: Path,
    intra_op_threads: int,
    batch_sizes: Sequence[int],
    duration_s: float,
    photos: Sequence[bytes],
    gate: Path | None = None,
) -> dict[str, Any]:
    """images/s and per-call latency of session.run at each batch size, in this process; with
    ``gate``, each call also runs the vehicle gate on the same batch, as the Classifier does."""
    import numpy as np

    from service.core.imaging import Limits, prepare_image
    from service.inference.session import ClassifierConfig, build_gate_session, build_session

    config = ClassifierConfig(
        model_path=str(model),
        intra_op_threads=intra_op_threads,
        **({"gate_model_path": gate} if gate is not None else {}),
    )
    session, metadata = build_session(config)
    if gate is not None:
        session = WithGate(session, build_gate_session(config)[0])
    limits = Limits(max_pixels=50_000_000, min_side=32)
    arrays = [
        prepare_image(
            p, size=metadata.input_size, interpolation=metadata.interpolation, limits=limits
        ).array
        for p in photos
    ]
    rows = []
    for size in batch_sizes:
        batch = np.stack([arrays[i % len(arrays)] for i in range(size)])
        timing = time_batch(session, batch, seconds=duration_s, min_calls=3, warm_runs=2)
        rows.append(
            {
                "batch_size": size,
                "calls": len(timing.calls_ms),
                "images_per_s": round(timing.images_per_s, 2),
                "p50_ms": timing.percentile_ms(50),
                "p99_ms": timing.percentile_ms(99),
            }
        )
    del session
    best = max(rows, key=lambda r: r["images_per_s"])
    parallel = bench_raw_parallel(model, arrays[0], duration_s)
    return {
        "model": metadata.name,
        "arch": metadata.arch,
        "input_size": metadata.input_size,
        "intra_op_threads": session_threads(intra_op_threads),
        "gate": None if gate is None else str(gate),
        "rows": rows,
        "ceiling": {"batch_size": best["batch_size"], "images_per_s": best["images_per_s"]},
        "parallel": parallel,
    }


def bench_raw_parallel(model: Path, image: Any, duration_s: float) -> dict[str, Any]:
    """images/s of one single-threaded session per core, all running batch 1 at once.

    Not the issue's ceiling (that is one session on every core, best batch), but what the cores
    can do with no thread hand-offs inside a call: the service, which runs two batches at once,
    is also compared with it so that no ratio flatters it.
    """
    import numpy as np

    from service.inference.session import ClassifierConfig, build_session

    streams = session_threads(0)
    sessions = [
        build_session(ClassifierConfig(model_path=str(model), intra_op_threads=1))[0]
        for _ in range(streams)
    ]
    images_per_s = parallel_images_per_s(sessions, np.ascontiguousarray(image[None]), duration_s)
    return {
        "streams": streams,
        "threads_per_stream": 1,
        "batch_size": 1,
        "images_per_s": round(images_per_s, 2),
    }


def session_threads(requested: int) -> int:
    from service.inference.session import intra_op_threads_for

    return intra_op_threads_for(requested)


# --- 2-4. servers over HTTP ------------------------------------------------------------------


def start_peer(name: str, args: argparse.Namespace, logs: Path) -> ServerProcess:
    settings = args.settings
    log = logs / f"{name}.log"
    if name in SERVICES:
        gate = {"RECOGNIZE_GATE_ENABLED": "false"} if args.no_gate else {}
        return start_service(args.model, log, {**gate, **SERVICE_LAYOUTS[name]})
    if name == "naive":
        return start_naive(args.model, log, settings.intra_op_threads)
    return start_triton(
        args.triton_python,
        args.model,
        log,
        intra_op_threads=settings.intra_op_threads,
        max_batch_size=settings.max_batch_size,
        batch_wait_ms=settings.batch_wait_timeout_s * 1000,
    )


def target_for(name: str, base_url: str, photos: Sequence[bytes]) -> Target:
    if name == "triton":
        return Target(
            name,
            base_url,
            "/v2/models/recognize/infer",
            kserve_payloads(photos, C_CLASS_VIN),
            kserve_answer,
        )
    return Target(
        name,
        base_url,
        "/recognize",
        multipart_payloads(photos, C_CLASS_VIN),
        json_answer,
        request_id_header=name in SERVICES,
    )


def bench_server(
    name: str, args: argparse.Namespace, photos: Sequence[bytes], logs: Path
) -> dict[str, Any]:
    if name == "triton" and not args.triton_python.is_file():
        return {"status": "skipped", "reason": "run make triton"}
    server: ServerProcess | None = None
    row: dict[str, Any] = {"status": "ok"}
    if name in SERVICES and args.url:
        if name != args.peers[0]:
            return {"status": "skipped", "reason": "--url benchmarks one running service"}
        base_url = args.url.rstrip("/")
        row["url"] = base_url
    else:
        print(f"  starting {name} ...", flush=True)
        try:
            server = start_peer(name, args, logs)
        except (ServerFailed, OSError, subprocess.SubprocessError) as exc:
            return {"status": "failed", "reason": str(exc)[-3000:]}
        base_url = server.base_url
        row["cold_start_s"] = round(server.cold_start_s, 2)
        row["memory_ready"] = server.memory().as_dict()
        print(f"  {name} ready in {server.cold_start_s:.1f}s", flush=True)
    try:
        target = target_for(name, base_url, photos)
        cells = []
        for concurrency in args.concurrency:
            cpu = None
            if server is not None:
                cpu = RoleCPU(server.pid, service_role if name in SERVICES else one_role)
            result = run_cell(
                target,
                concurrency,
                warmup_s=args.warmup,
                duration_s=args.duration,
                max_requests=args.max_requests,
                probe=cpu,
            )
            cell = result.summary()
            # CPU of each process group over the measured window, per request answered in it.
            cell["cpu_ms_per_request"] = cpu.ms_per_request(result.completed) if cpu else {}
            cells.append(cell)
            print(
                f"  {name} c={concurrency}: {cell['throughput_rps']} req/s, "
                f"p50 {cell['p50_ms']} ms, p99 {cell['p99_ms']} ms, "
                f"batch {cell['mean_batch']}, errors {cell['errors']}, "
                f"CPU ms/request {cell['cpu_ms_per_request']}",
                flush=True,
            )
        row["cells"] = cells
        if any(c["errors"] for c in cells):
            row["status"] = "errors"
        if server is not None:
            row["memory_after_load"] = server.memory().as_dict()
            time.sleep(1.0)  # let the last batches and logs settle
            row["idle_cpu_percent"] = server.idle_cpu_percent(args.idle)
    finally:
        if server is not None:
            server.stop(timeout_s=20.0)  # measured already; no need to wait out a slow exit
    return row


# --- report ----------------------------------------------------------------------------------


def _cell(report: dict[str, Any], name: str, concurrency: int) -> dict[str, Any] | None:
    server = report["servers"].get(name, {})
    for cell in server.get("cells", ()):
        if cell["concurrency"] == concurrency:
            return cell
    return None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def ratios(report: dict[str, Any], concurrency: Sequence[int]) -> list[dict[str, Any]]:
    ceiling = report["raw"]["ceiling"]["images_per_s"]
    parallel = (report["raw"].get("parallel") or {}).get("images_per_s")
    rows = []
    for c in concurrency:
        cells = {name: _cell(report, name, c) for name in PEERS}
        tput = {n: (cell or {}).get("throughput_rps") for n, cell in cells.items()}
        rows.append(
            {
                "concurrency": c,
                "service_over_raw": _ratio(tput["service"], ceiling),
                "service_over_raw_parallel": _ratio(tput["service"], parallel),
                "service_over_naive": _ratio(tput["service"], tput["naive"]),
                "service_over_triton": _ratio(tput["service"], tput["triton"]),
                "cluster_over_service": _ratio(tput["cluster"], tput["service"]),
                "cluster_over_triton": _ratio(tput["cluster"], tput["triton"]),
                "split_over_triton": _ratio(tput["split"], tput["triton"]),
                "cluster_over_pyproxy": _ratio(tput["cluster"], tput["pyproxy"]),
                "gather_over_cluster": _ratio(tput["gather"], tput["cluster"]),
                "p99_ms": {n: (cell or {}).get("p99_ms") for n, cell in cells.items()},
            }
        )
    return rows


def check_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    service = report["servers"].get("service", {})
    raw_rows = {r["batch_size"]: r for r in report["raw"]["rows"]}
    c16, c1 = _cell(report, "service", 16), _cell(report, "service", 1)
    naive16 = _cell(report, "naive", 16)
    ceiling = report["raw"]["ceiling"]["images_per_s"]
    values = {
        "throughput_vs_raw": _ratio(c16 and c16["throughput_rps"], ceiling),
        "throughput_vs_naive": _ratio(
            c16 and c16["throughput_rps"], naive16 and naive16["throughput_rps"]
        ),
        "added_latency_ms": (
            round(c1["p50_ms"] - raw_rows[1]["p50_ms"], 1)
            if c1 and c1["p50_ms"] is not None and 1 in raw_rows
            else None
        ),
        "idle_cpu_percent": service.get("idle_cpu_percent"),
        "cold_start_s": service.get("cold_start_s"),
    }
    checked = []
    for key, text, bound in TARGETS:
        value = values[key]
        at_most = key in ("added_latency_ms", "idle_cpu_percent", "cold_start_s")
        met = None if value is None else (value <= bound if at_most else value >= bound)
        checked.append({"target": key, "rule": text, "value": value, "met": met})
    return checked


def check_stack_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 13's targets, from this run's cells (None where a cell is missing)."""
    local, cluster, triton = (_cell(report, n, 64) for n in ("service", "cluster", "triton"))
    local1, triton1 = _cell(report, "service", 1), _cell(report, "triton", 1)

    def of(cell: dict[str, Any] | None, key: str) -> float | None:
        return None if cell is None else cell.get(key)

    values = {
        "cluster_vs_triton": _ratio(of(cluster, "throughput_rps"), of(triton, "throughput_rps")),
        "local_vs_triton": _ratio(of(local, "throughput_rps"), of(triton, "throughput_rps")),
        "cluster_p99_vs_triton": _ratio(of(cluster, "p99_ms"), of(triton, "p99_ms")),
        "local_p99_vs_triton": _ratio(of(local, "p99_ms"), of(triton, "p99_ms")),
        "local_p50_minus_triton_ms": (
            round(local1["p50_ms"] - triton1["p50_ms"], 2)
            if of(local1, "p50_ms") is not None and of(triton1, "p50_ms") is not None
            else None
        ),
        "cluster_images_per_batch": of(cluster, "mean_batch"),
    }
    checked = []
    for key, text, bound, at_most in STACK_TARGETS:
        value = values[key]
        met = None if value is None else (value <= bound if at_most else value >= bound)
        checked.append({"target": key, "rule": text, "value": value, "met": met})
    return checked


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def print_report(report: dict[str, Any]) -> None:
    raw = report["raw"]
    out = [
        "",
        f"Recognize benchmark, {report['created']}, {report['machine']['cpus']} CPUs "
        f"({report['machine']['cpu_model']}), load average {report['machine']['loadavg_start']}",
        f"model {raw['model']} ({raw['arch']} @{raw['input_size']}), onnxruntime "
        f"{raw['intra_op_threads']} intra-op threads, spinning off everywhere",
        (
            "vehicle gate on: raw calls run it too; the naive and Triton peers do not (--no-gate)"
            if raw.get("gate")
            else "vehicle gate off"
        ),
        "",
        "1. raw onnxruntime, in-process (latency per session.run call)",
        f"{'batch':>5} {'img/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'calls':>6}",
    ]
    for r in raw["rows"]:
        out.append(
            f"{r['batch_size']:>5} {r['images_per_s']:>8.2f} {_fmt(r['p50_ms']):>8} "
            f"{_fmt(r['p99_ms']):>8} {r['calls']:>6}"
        )
    out.append(
        f"ceiling: {raw['ceiling']['images_per_s']:.2f} img/s at batch "
        f"{raw['ceiling']['batch_size']}"
    )
    parallel = raw.get("parallel")
    if parallel:
        out.append(
            f"{parallel['streams']} single-threaded sessions at once, batch 1: "
            f"{parallel['images_per_s']:.2f} img/s (svc/raw|| below)"
        )
    out += [
        "",
        "2-4. servers end to end over HTTP (JPEG ~460x706 uploads, C-Class VIN)",
        f"{'server':<8} {'cold start':>10} {'PSS MB':>8} {'RSS MB':>8} {'procs':>5} "
        f"{'idle CPU':>8}  status",
    ]
    for name in PEERS:
        s = report["servers"][name]
        memory = s.get("memory_after_load") or s.get("memory_ready") or {}
        status = s["status"]
        if "reason" in s:
            status += f" ({s['reason'].splitlines()[0][:120]})"
        cold = f"{s['cold_start_s']:.1f} s" if "cold_start_s" in s else "-"
        idle = f"{s['idle_cpu_percent']:.1f} %" if "idle_cpu_percent" in s else "-"
        out.append(
            f"{name:<8} {cold:>10} {_fmt(memory.get('pss_mb'), '.0f'):>8} "
            f"{_fmt(memory.get('rss_mb'), '.0f'):>8} {_fmt(memory.get('processes'), 'd'):>5} "
            f"{idle:>8}  {status}"
        )
    out += [
        "",
        f"{'conc':>4} {'server':<8} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} "
        f"{'batch':>6} {'errors':>6} {'client ms':>9}",
    ]
    for c in report["concurrency"]:
        for name in PEERS:
            cell = _cell(report, name, c)
            if cell is None:
                continue
            out.append(
                f"{c:>4} {name:<8} {cell['throughput_rps']:>8.2f} {_fmt(cell['p50_ms']):>8} "
                f"{_fmt(cell['p90_ms']):>8} {_fmt(cell['p99_ms']):>8} "
                f"{_fmt(cell['mean_batch'], '.2f'):>6} {cell['errors']:>6} "
                f"{_fmt(cell.get('generator_cpu_ms_per_request'), '.2f'):>9}"
            )
    busy = [
        f"{name} c={c}"
        for c in report["concurrency"]
        for name in PEERS
        if ((_cell(report, name, c) or {}).get("generator_busy") or 0) >= BUSY_WARNING
    ]
    if busy:
        out.append(
            f"the load generator was {BUSY_WARNING:.0%} busy or more in {', '.join(busy)}: "
            "those cells may show its limit, not the server's"
        )
    out += [
        "",
        "CPU ms per request over each measured window, by process group ('gen': the load "
        "generator)",
        f"{'conc':>4} {'server':<8} "
        + " ".join(f"{g:>10}" for g in CPU_GROUPS)
        + f" {'gen':>6} {'total':>7}",
    ]
    for c in report["concurrency"]:
        for name in PEERS:
            cell = _cell(report, name, c)
            if cell is None or not cell.get("cpu_ms_per_request"):
                continue
            groups = cell["cpu_ms_per_request"]
            generator = cell.get("generator_cpu_ms_per_request")
            total = sum(groups.values()) + (generator or 0.0)
            out.append(
                f"{c:>4} {name:<8} "
                + " ".join(f"{_fmt(groups.get(g), '.2f'):>10}" for g in CPU_GROUPS)
                + f" {_fmt(generator, '.2f'):>6} {total:>7.2f}"
            )
    out += [
        "",
        "ratios at equal concurrency (throughput), p99 beside",
        f"{'conc':>4} {'svc/raw':>8} {'svc/raw||':>9} {'svc/naive':>9} {'svc/triton':>10} "
        f"{'clu/triton':>10} {'split/triton':>12} {'clu/pyproxy':>11} {'gather/clu':>10}   p99 ms: "
        + " / ".join(PEERS),
    ]
    for r in report["ratios"]:
        p99 = r["p99_ms"]
        out.append(
            f"{r['concurrency']:>4} {_fmt(r['service_over_raw'], '.2f'):>8} "
            f"{_fmt(r.get('service_over_raw_parallel'), '.2f'):>9} "
            f"{_fmt(r['service_over_naive'], '.2f'):>9} "
            f"{_fmt(r['service_over_triton'], '.2f'):>10} "
            f"{_fmt(r.get('cluster_over_triton'), '.2f'):>10} "
            f"{_fmt(r.get('split_over_triton'), '.2f'):>12} "
            f"{_fmt(r.get('cluster_over_pyproxy'), '.2f'):>11} "
            f"{_fmt(r.get('gather_over_cluster'), '.2f'):>10}   "
            + " / ".join(_fmt(p99.get(n), ".0f") for n in PEERS)
        )
    out += ["", "targets (issue 4, CPU)"]
    for t in report["targets"]:
        mark = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        out.append(f"  {mark:<6} {t['rule']}: {_fmt(t['value'], '.2f')}")
    model = "near-free model" if report.get("near_free") else "NOT a near-free run"
    out += ["", f"stack targets (issue 13; meant for --near-free; this run: {model})"]
    for t in report["stack_targets"]:
        mark = {True: "met", False: "MISSED", None: "n/a"}[t["met"]]
        out.append(f"  {mark:<6} {t['rule']}: {_fmt(t['value'], '.2f')}")
    print("\n".join(out), flush=True)


def _machine() -> dict[str, Any]:
    cpu_model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = dt.datetime.now().astimezone()
    out = args.out or REPO / "results" / f"bench-{started:%Y%m%d-%H%M%S}.json"
    logs = out.with_suffix("").with_name(out.stem + "-logs")
    logs.mkdir(parents=True, exist_ok=True)
    settings = args.settings
    photos = [p.data for p in dealer_jpegs(PHOTOS, seed=0)]
    if args.near_free:
        served = args.model
        args.model = build_near_free(served, logs / "near_free.onnx")
        print(f"near-free twin of {served}: {args.model}", flush=True)
    report: dict[str, Any] = {
        "created": started.isoformat(timespec="seconds"),
        "command": ["recognize", "bench", *(sys.argv[1:] if argv is None else argv)],
        "machine": _machine(),
        "model_path": str(args.model),
        "near_free": args.near_free,
        "gate": None if args.gate is None else str(args.gate),
        "settings": {
            "max_batch_size": settings.max_batch_size,
            "batch_wait_timeout_s": settings.batch_wait_timeout_s,
            "intra_op_threads": settings.intra_op_threads,
        },
        "cell": {
            "warmup_s": args.warmup,
            "duration_s": args.duration,
            "max_requests": args.max_requests,
        },
        "photos": {
            "count": len(photos),
            "mean_kb": round(sum(map(len, photos)) / len(photos) / 1024, 1),
            "vin": C_CLASS_VIN,
        },
        "concurrency": list(args.concurrency),
    }
    print(
        f"raw onnxruntime: batch sizes {list(args.batch_sizes)}, {args.duration:g}s each",
        flush=True,
    )
    # The ceiling is the box's, whatever the servers are set to: one session on every core.
    report["raw"] = bench_raw(
        args.model, 0, args.batch_sizes, args.duration, photos, gate=args.gate
    )
    report["servers"] = {}
    for name in PEERS:
        if name not in args.peers:
            report["servers"][name] = {"status": "skipped", "reason": "not in --peers"}
            continue
        print(
            f"{name}: concurrency {list(args.concurrency)}, {args.warmup:g}s warm-up + "
            f"{args.duration:g}s per cell",
            flush=True,
        )
        report["servers"][name] = bench_server(name, args, photos, logs)
    report["ratios"] = ratios(report, args.concurrency)
    report["targets"] = check_targets(report)
    report["stack_targets"] = check_stack_targets(report)
    report["machine"]["loadavg_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    report["logs"] = str(logs)
    print_report(report)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {out}")
    failed = [n for n, s in report["servers"].items() if s["status"] in ("failed", "errors")]
    if failed:
        print(f"servers that failed or answered with errors: {failed} (logs in {logs})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
