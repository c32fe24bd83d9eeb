"""GPU benchmark: raw onnxruntime CUDA vs the Recognize service on the same GPU, one run.

Run by ``loadtest/gpu_bench.sh`` on a machine with an NVIDIA GPU and onnxruntime-gpu:

1. exports ConvNeXt-B @300 (seeded weights) as fp16 with ``recognize export``, which checks its
   parity against the fp32 torch model (``--fp32`` adds an fp32 export and its raw figures);
2. raw onnxruntime CUDA, through the service's own ``build_session``: images/s per batch size,
   uint8 input from host memory (what the classifier replica does);
3. the service end-to-end over HTTP (``recognize serve`` on the GPU: Ray's proxy, ingress
   replicas that decode, the Classifier on the GPU; JPEG uploads from load-generator processes
   on 127.0.0.1) at several concurrencies: throughput, p50/p99, mean batch size, decode time,
   and how busy the machine's CPUs and the GPU were;
4. the Classifier deployment alone through Serve handles (uint8 images from driver processes,
   no HTTP and no decoding): what Serve's batching and the GPU replica reach on their own;
5. each service figure over raw at the batch size the service actually ran.

Every figure is written to ``--out`` (JSON after each step, and a text table) with the card's
name beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from loadtest._servers import free_port, start_server
from loadtest._stats import percentile, process_memory, process_tree, tree_cpu_seconds, tree_memory
from loadtest.photos import dealer_jpegs

REPO = Path(__file__).resolve().parent.parent
VIN = "WDD2052041F123456"  # C-Class estate (EU layout)


def _nvidia_smi(*args: str) -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", *args], capture_output=True, text=True, timeout=20)
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def gpu_name() -> str:
    return (
        _nvidia_smi("--query-gpu=name,memory.total,driver_version", "--format=csv,noheader")
        or "unknown"
    )


def gpu_memory_used_mib() -> int | None:
    used = _nvidia_smi("--query-gpu=memory.used", "--format=csv,noheader,nounits")
    try:
        return int(used.splitlines()[0]) if used else None
    except ValueError:
        return None


def gpu_processes() -> list[dict[str, Any]]:
    """GPU memory per process (the classifier replica is the one that holds the model)."""
    text = _nvidia_smi(
        "--query-compute-apps=pid,process_name,used_memory", "--format=csv,noheader,nounits"
    )
    rows = []
    for line in (text or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 3 and parts[2].isdigit():
            rows.append({"pid": int(parts[0]), "name": parts[1], "used_mib": int(parts[2])})
    return rows


def _machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


class Usage:
    """How busy the machine's CPUs (cores in use) and the GPU (utilization %) were meanwhile."""

    def __init__(self, service_pid: int | None = None) -> None:
        self._service_pid = service_pid
        self.result: dict[str, Any] = {}

    def __enter__(self) -> Usage:
        self._cpu = _machine_cpu()
        self._service = tree_cpu_seconds(self._service_pid) if self._service_pid else 0.0
        self._started = time.perf_counter()
        try:
            self._smi: subprocess.Popen[str] | None = subprocess.Popen(
                [
                    "nvidia-smi",
                    "--query-gpu=utilization.gpu",
                    "--format=csv,noheader,nounits",
                    "-lms",
                    "200",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
        except OSError:
            self._smi = None
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._started
        busy0, total0 = self._cpu
        busy1, total1 = _machine_cpu()
        cores = os.cpu_count() or 1
        self.result = {
            "machine_cores_busy": round((busy1 - busy0) / max(1, total1 - total0) * cores, 1),
            "cores": cores,
        }
        if self._service_pid:
            used = tree_cpu_seconds(self._service_pid) - self._service
            self.result["service_cores_busy"] = round(used / wall, 1)
        if self._smi is not None:
            self._smi.terminate()
            out, _ = self._smi.communicate(timeout=10)
            samples = [int(x) for x in out.split() if x.strip().isdigit()]
            # The first sample or two predate the load.
            samples = samples[2:] or samples
            if samples:
                self.result["gpu_util_pct"] = round(statistics.mean(samples), 1)


def export(arch: str, size: int, fp16: bool, out_dir: Path) -> dict[str, Any]:
    out = out_dir / f"{arch}_{size}_{'fp16' if fp16 else 'fp32'}.onnx"
    report = out.with_suffix(".json")
    cmd = [sys.executable, "-m", "service.modeltools.export", "--arch", arch,
           "--input-size", str(size), "--demo", "--seed", "0",
           "--out", str(out), "--report", str(report)]  # fmt: skip
    if fp16:
        cmd.append("--fp16")
    started = time.perf_counter()
    subprocess.run(cmd, cwd=REPO, check=True)
    result = json.loads(report.read_text())
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["path"] = str(out)
    return result


def raw_throughput(
    model: Path, batch_sizes: list[int], seconds: float, provider: str
) -> list[dict[str, Any]]:
    """images/s of the service's own session (CUDA EP, HEURISTIC conv search) per batch size."""
    from service.core.modelfile import INPUT_NAME, OUTPUT_NAME
    from service.inference.classifier import ClassifierConfig, build_session

    session, meta = build_session(ClassifierConfig(model_path=str(model), providers=(provider,)))
    assert session.get_providers()[0] == provider, session.get_providers()
    size = meta.input_size
    rng = np.random.default_rng(0)
    rows = []
    for b in batch_sizes:
        batch = rng.integers(0, 256, size=(b, size, size, 3), dtype=np.uint8)
        first = time.perf_counter()
        session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        first_s = time.perf_counter() - first
        for _ in range(4):
            session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        times = []
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline or len(times) < 10:
            t = time.perf_counter()
            session.run([OUTPUT_NAME], {INPUT_NAME: batch})
            times.append(time.perf_counter() - t)
        median = statistics.median(times)
        rows.append(
            {
                "batch": b,
                "ms_per_batch_p50": round(median * 1000, 2),
                "images_per_s": round(b / median, 1),
                "first_run_s": round(first_s, 2),
                "runs": len(times),
            }
        )
        print(f"raw b={b}: {b / median:.0f} img/s (first run {first_s:.1f} s)", flush=True)
    return rows


Sample = tuple[float, int, int, float, float]  # latency s, status, batch, decode ms, queue ms


async def _http_load(
    url: str, concurrency: int, start_at: float, seconds: float, images: list[bytes]
) -> list[Sample]:
    import aiohttp

    results: list[Sample] = []
    deadline = start_at + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def worker(k: int) -> None:
            i = k
            while time.time() < deadline:
                form = aiohttp.FormData()
                form.add_field(
                    "image", images[i % len(images)], filename="car.jpg", content_type="image/jpeg"
                )
                form.add_field("vin", VIN)
                t = time.perf_counter()
                try:
                    async with session.post(url, data=form) as r:
                        body = await r.json(content_type=None)
                        status = r.status
                except (aiohttp.ClientError, TimeoutError, ValueError):
                    body, status = {}, 0
                lat = time.perf_counter() - t
                if status == 200:
                    ms = body.get("latency_ms", {})
                    results.append((lat, 200, body.get("batch_size", 0), ms.get("decode", 0.0),
                                    ms.get("queue", 0.0)))  # fmt: skip
                else:
                    results.append((lat, status, 0, 0.0, 0.0))
                i += concurrency

        await asyncio.sleep(max(0.0, start_at - time.time()))
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return results


def _http_process(args: tuple[str, int, float, float, list[bytes]]) -> list[Sample]:
    return asyncio.run(_http_load(*args))


async def _handle_load(
    concurrency: int, start_at: float, seconds: float, size: int, gcs_address: str
) -> list[Sample]:
    from service.rayenv import SERVE_ENVIRONMENT

    # Before Ray Serve is imported: its handles then call the Classifier by gRPC, as the
    # service's Ingress does (run L's handle cells went through Ray's object store).
    os.environ.update(SERVE_ENVIRONMENT)
    import ray
    from ray import serve
    from ray._private import ray_constants

    from service.app import APP_NAME

    # The service's node is on loopback (service/app.py); as there, keep Ray from swapping
    # 127.0.0.1 for the machine's interface address.
    ray_constants.ENABLE_RAY_CLUSTER = False
    # The service's own cluster by its address: "auto" takes the newest on the machine.
    ray.init(address=gcs_address, _node_ip_address="127.0.0.1", log_to_driver=False)
    handle = serve.get_deployment_handle("Classifier", app_name=APP_NAME)
    rng = np.random.default_rng(concurrency)
    images = [rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8) for _ in range(8)]
    await handle.classify.remote(images[0])  # the router's first call
    results: list[Sample] = []
    deadline = start_at + seconds

    async def worker(k: int) -> None:
        i = k
        while time.time() < deadline:
            t = time.perf_counter()
            try:
                r = await handle.classify.remote(images[i % len(images)])
                results.append((time.perf_counter() - t, 200, r.batch_size, 0.0, r.queue_s * 1000))
            except Exception:  # noqa: BLE001 - counted as an error
                results.append((time.perf_counter() - t, 0, 0, 0.0, 0.0))
            i += 1

    await asyncio.sleep(max(0.0, start_at - time.time()))
    await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return results


def _handle_process(args: tuple[int, float, float, int, str]) -> list[Sample]:
    return asyncio.run(_handle_load(*args))


def _argv(pid: int) -> list[str] | None:
    """A process's command line, or None once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None


def gcs_address(service_pid: int) -> str:
    """The GCS address of the Ray cluster the service started, from its raylet's arguments."""
    for pid in process_tree(service_pid):
        argv = _argv(pid)
        if argv and argv[0].endswith("/raylet"):
            for arg in argv:
                if arg.startswith("--gcs-address="):
                    return arg.split("=", 1)[1]
    raise RuntimeError(f"no raylet with a --gcs-address under process {service_pid}")


def _shares(concurrency: int, processes: int) -> list[int]:
    procs = max(1, min(processes, concurrency))
    return [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]


def _summary(concurrency: int, seconds: float, rows: list[Sample], usage: Usage) -> dict[str, Any]:
    ok = [r for r in rows if r[1] == 200]
    errors: dict[str, int] = {}
    for r in rows:
        if r[1] != 200:
            errors[str(r[1])] = errors.get(str(r[1]), 0) + 1
    lat = sorted(r[0] * 1000 for r in ok)
    summary: dict[str, Any] = {"concurrency": concurrency, "ok": len(ok), "errors": errors}
    if ok:
        summary |= {
            "requests_per_s": round(len(ok) / seconds, 1),
            "p50_ms": percentile(lat, 50),
            "p99_ms": percentile(lat, 99),
            "mean_batch": round(statistics.mean(r[2] for r in ok), 2),
            "decode_ms_mean": round(statistics.mean(r[3] for r in ok), 2),
            "queue_ms_mean": round(statistics.mean(r[4] for r in ok), 2),
        }
    return summary | usage.result


def measure(
    kind: str, concurrency: int, seconds: float, processes: int, job: Any, service_pid: int
) -> dict[str, Any]:
    """One cell. kind "http": ``job`` is (url, images), JPEG uploads over HTTP; kind "handle":
    ``job`` is (the model's input size, the service's GCS address), uint8 arrays straight to
    the Classifier deployment."""
    shares = _shares(concurrency, processes)
    # Every load process starts and stops at the same wall-clock times (a Ray driver takes a
    # few seconds to connect), so the rate is over one common window.
    start_at = time.time() + (10.0 if kind == "handle" else 4.0)
    if kind == "http":
        url, images = job
        target: Any = _http_process
        jobs: list[Any] = [(url, c, start_at, seconds, images) for c in shares]
    else:
        size, address = job
        target, jobs = _handle_process, [(c, start_at, seconds, size, address) for c in shares]
    usage = Usage(service_pid)
    with mp.get_context("spawn").Pool(len(shares)) as pool:
        pending = pool.map_async(target, jobs)
        time.sleep(max(0.0, start_at - time.time()))
        with usage:
            time.sleep(seconds)
        parts = pending.get(timeout=seconds + 45)
    summary = _summary(concurrency, seconds, [r for part in parts for r in part], usage)
    summary["kind"] = kind
    return summary


def with_ratio(row: dict[str, Any], raw_by_batch: dict[int, float]) -> dict[str, Any]:
    """The row plus its throughput over raw at the batch size nearest the one it ran."""
    if "mean_batch" in row:
        nearest = min(raw_by_batch, key=lambda b: abs(b - row["mean_batch"]))
        row["raw_at_nearest_batch"] = {"batch": nearest, "images_per_s": raw_by_batch[nearest]}
        row["ratio_vs_raw"] = round(row["requests_per_s"] / raw_by_batch[nearest], 3)
    return row


def process_memories(root: int) -> list[dict[str, Any]]:
    """RSS/PSS of each of the service's processes over 100 MB, named by their command line."""
    rows = []
    for pid in process_tree(root):
        memory, argv = process_memory(pid), _argv(pid)
        if memory is not None and argv is not None and memory[0] >= 100 * 1024:
            rows.append(
                {
                    "pid": pid,
                    "name": " ".join(argv).strip()[:70],
                    "rss_mb": memory[0] // 1024,
                    "pss_mb": memory[1] // 1024,
                }
            )
    return sorted(rows, key=lambda r: -r["rss_mb"])


def service_env(args: argparse.Namespace, replicas: int) -> dict[str, str]:
    cuda = args.provider.startswith("CUDA")
    # Few batch shapes on the GPU, each on its own session: a session re-plans its cuDNN
    # convolutions at every shape change (5-8 s on the H100, loadtest/RESULTS.md run K), so
    # batches are padded up to powers of two.
    buckets = sorted(
        {min(2**i, args.max_batch_size) for i in range(args.max_batch_size.bit_length() + 1)}
    )
    return {
        "RECOGNIZE_AUTH_DISABLED": "true",  # a local benchmark
        "RECOGNIZE_PROVIDERS": json.dumps([args.provider]),
        "RECOGNIZE_CLASSIFIER_REPLICAS": str(replicas),
        "RECOGNIZE_CLASSIFIER_NUM_GPUS": f"{1 / replicas:.4f}" if cuda else "0",
        "RECOGNIZE_CLASSIFIER_NUM_CPUS": "1",
        "RECOGNIZE_INTRA_OP_THREADS": "2",
        "RECOGNIZE_MAX_BATCH_SIZE": str(args.max_batch_size),
        "RECOGNIZE_BATCH_BUCKETS": json.dumps(buckets),
        "RECOGNIZE_BATCH_WAIT_TIMEOUT_S": "0.004",
        # What the Helm chart runs on a GPU: each serving thread warms every shape itself.
        "RECOGNIZE_CONCURRENT_BATCHES": str(args.concurrent_batches),
        # The production layout: Ray's proxy, ingress replicas that decode, the GPU classifier.
        "RECOGNIZE_CLASSIFIER_IN_INGRESS": "false",
        "RECOGNIZE_DIRECT_HTTP": "false",
        "RECOGNIZE_INGRESS_REPLICAS": str(args.ingress_replicas),
        "RECOGNIZE_INGRESS_NUM_CPUS": "1",
    }


def table(result: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        f"GPU: {result['gpu']}  ({result['date']}, {result['cpu_count']} CPUs)",
        f"model: {args.arch}@{args.size}; fp16 parity max|diff| = "
        f"{result['export_fp16'].get('max_abs_diff')}",
        "",
        f"raw onnxruntime fp16 on {args.provider} (service session options, uint8 host input)",
        "batch  img/s   ms/batch  first run s",
    ]
    lines += [
        f"{r['batch']:>5}  {r['images_per_s']:>6}  {r['ms_per_batch_p50']:>8}  "
        f"{r['first_run_s']:>11}"
        for r in result["raw_fp16"]
    ]
    if result.get("raw_fp32"):
        lines += [
            "",
            "raw fp32: "
            + ", ".join(f"b={r['batch']}: {r['images_per_s']} img/s" for r in result["raw_fp32"]),
        ]
    for run in result["services"]:
        lines += ["", *_service_lines(run)]
    return "\n".join(lines)


def _service_lines(run: dict[str, Any]) -> list[str]:
    """The table of one service run (one classifier replica count)."""
    if "error" in run:
        return [f"service, {run['classifier_replicas']} classifier replica(s): {run['error']}"]
    gpu_procs = ", ".join(f"{p['used_mib']} MiB (pid {p['pid']})" for p in run["gpu_processes"])
    lines = [
        f"service, {run['classifier_replicas']} classifier replica(s): cold start "
        f"{run['cold_start_s']} s; GPU memory {run['gpu_memory_mib']} MiB in all, per process: "
        f"{gpu_procs or 'n/a'}",
        f"service memory: {run.get('memory')}",
        "kind    conc  req/s    p50 ms  p99 ms  batch  decode  queue  CPU busy  svc CPU  GPU %"
        "  raw@batch   ratio  errors",
    ]
    for r in run["rows"]:
        if "mean_batch" not in r:
            lines.append(f"{r['kind']:<6}  {r['concurrency']:>4}  failed: {r}")
            continue
        raw = r["raw_at_nearest_batch"]
        lines.append(
            f"{r['kind']:<6}  {r['concurrency']:>4}  {r['requests_per_s']:>6}  {r['p50_ms']:>7}  "
            f"{r['p99_ms']:>6}  {r['mean_batch']:>5}  {r['decode_ms_mean']:>6}  "
            f"{r['queue_ms_mean']:>5}  {r['machine_cores_busy']:>5}/{r['cores']:<2}  "
            f"{r.get('service_cores_busy', '-'):>7}  {r.get('gpu_util_pct', '-'):>5}  "
            f"{raw['images_per_s']:>6}@{raw['batch']:<3}  {r['ratio_vs_raw']:>5}  {r['errors']}"
        )
    return lines


def service_run(
    args: argparse.Namespace,
    run: dict[str, Any],
    model: Path,
    images: list[bytes],
    raw_by_batch: dict[int, float],
    save: Any,
) -> None:
    """Start the service with ``run["classifier_replicas"]`` classifier replicas, measure every
    cell, stop it; the figures go into ``run`` as they come (``save`` writes them out)."""
    replicas = run["classifier_replicas"]
    port = free_port()
    env = service_env(args, replicas)
    run |= {"env": env, "rows": []}
    memory_before = gpu_memory_used_mib()
    server = start_server(
        "service",
        [sys.executable, "-m", "service.cli", "serve"],
        port=port,
        ready_path="/readyz",
        log=args.out / f"service-{replicas}.log",
        cwd=REPO,
        timeout_s=400,
        env={
            **env,
            "RECOGNIZE_PORT": str(port),
            "RECOGNIZE_METRICS_PORT": str(free_port()),
            "RECOGNIZE_MODEL_PATH": str(model),
            "RAY_USAGE_STATS_ENABLED": "0",
        },
    )
    try:
        run["cold_start_s"] = round(server.cold_start_s, 1)
        memory_after = gpu_memory_used_mib()
        run["gpu_memory_mib"] = (
            memory_after - memory_before if memory_before is not None and memory_after else None
        )
        run["gpu_processes"] = gpu_processes()
        url = f"http://127.0.0.1:{port}/recognize"
        address = gcs_address(server.pid)  # where the handle drivers join
        cells = [("http", int(c)) for c in args.concurrency.split(",") if c]
        cells += [("handle", int(c)) for c in args.handle_concurrency.split(",") if c]
        for kind, c in cells:
            job: Any = (url, images) if kind == "http" else (args.size, address)
            try:
                row = measure(kind, c, args.seconds, args.load_processes, job, server.pid)
            except Exception as exc:  # noqa: BLE001 - keep the other cells' figures
                row = {"kind": kind, "concurrency": c, "error": repr(exc)}
            print(f"{replicas} replica(s), {kind} c={c}: {row}", flush=True)
            run["rows"].append(with_ratio(row, raw_by_batch))
            save()
        run["memory"] = tree_memory(server.pid).as_dict()
        run["processes"] = process_memories(server.pid)
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    parser.add_argument("--arch", default="convnext_base")
    parser.add_argument("--size", type=int, default=300)
    # The service's batch buckets, so that each service row compares with raw at its batch size.
    parser.add_argument("--batches", default="1,2,4,8,16,32")
    parser.add_argument("--fp32", action="store_true", help="also export and time fp32")
    parser.add_argument("--concurrency", default="1,32,128", help="HTTP cells")
    parser.add_argument("--handle-concurrency", default="32,128", help="Classifier-handle cells")
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement cell")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--concurrent-batches", type=int, default=1)
    parser.add_argument("--ingress-replicas", type=int, default=6)
    parser.add_argument(
        "--classifier-replicas",
        default="1",
        help="classifier replicas sharing the GPU (each gets 1/N of it and its own sessions); "
        "a list such as 1,2 runs the service once per count, the same cells each time",
    )
    parser.add_argument("--load-processes", type=int, default=4)
    parser.add_argument(
        "--provider",
        default="CUDAExecutionProvider",
        help="CPUExecutionProvider checks the script itself on a CPU machine",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path("/tmp/gpu_bench")
    work.mkdir(parents=True, exist_ok=True)

    result: dict[str, Any] = {
        "gpu": gpu_name(),
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpu_count": os.cpu_count(),
        "arch": args.arch,
        "size": args.size,
    }

    def save() -> None:
        (args.out / "gpu_bench.json").write_text(json.dumps(result, indent=2))

    print(result, flush=True)
    result["export_fp16"] = export(args.arch, args.size, True, work)
    save()
    batches = [int(b) for b in args.batches.split(",")]
    fp16 = Path(result["export_fp16"]["path"])
    result["raw_fp16"] = raw_throughput(fp16, batches, args.seconds / 2, args.provider)
    save()
    if args.fp32:
        result["export_fp32"] = export(args.arch, args.size, False, work)
        fp32 = Path(result["export_fp32"]["path"])
        result["raw_fp32"] = raw_throughput(fp32, batches[:3], args.seconds / 4, args.provider)
        save()
    raw_by_batch = {r["batch"]: r["images_per_s"] for r in result["raw_fp16"]}

    images = [p.data for p in dealer_jpegs(48, seed=0)]
    result["services"] = []
    for replicas in [int(n) for n in args.classifier_replicas.split(",") if n]:
        run: dict[str, Any] = {"classifier_replicas": replicas}
        result["services"].append(run)
        try:
            service_run(args, run, fp16, images, raw_by_batch, save)
        except Exception as exc:  # noqa: BLE001 - keep the other runs' figures
            run["error"] = repr(exc)
        save()
    text = table(result, args)
    print(text)
    (args.out / "gpu_bench.txt").write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
