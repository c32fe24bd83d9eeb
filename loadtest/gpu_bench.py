"""GPU benchmark: raw onnxruntime CUDA vs the Recognize service on the same GPU, one run.

Run by ``loadtest/gpu_bench.sh`` on a machine with an NVIDIA GPU and onnxruntime-gpu:

1. exports ConvNeXt-B @300 (seeded weights) as fp16 and fp32 with ``models/export.py``
   (fp16 parity against the fp32 torch model is checked by the exporter);
2. raw onnxruntime CUDA, through the service's own ``build_session``: images/s per batch size,
   uint8 input from host memory (what the classifier replica does);
3. the service end-to-end over HTTP (``recognize serve`` on the GPU, JPEG uploads from several
   load-generator processes on 127.0.0.1) at several concurrencies: throughput, p50/p99, mean
   batch size, time spent decoding;
4. the ratio service / raw at the batch size the service actually ran.

Every figure is written to ``--out`` (JSON + a text table) with the card's name beside it.
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

REPO = Path(__file__).resolve().parent.parent
VIN = "WDD2052041F123456"  # C-Class estate (EU layout)


def _nvidia_smi(query: str, fmt: str = "csv,noheader") -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", f"--format={fmt}"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def gpu_name() -> str:
    return _nvidia_smi("name,memory.total,driver_version") or "unknown"


def gpu_memory_used_mib() -> int | None:
    used = _nvidia_smi("memory.used", "csv,noheader,nounits")
    try:
        return int(used.splitlines()[0]) if used else None
    except ValueError:
        return None


def export(arch: str, size: int, fp16: bool, out_dir: Path) -> dict[str, Any]:
    out = out_dir / f"{arch}_{size}_{'fp16' if fp16 else 'fp32'}.onnx"
    report = out.with_suffix(".json")
    cmd = [
        sys.executable,
        "-m",
        "models.export",
        "--arch",
        arch,
        "--input-size",
        str(size),
        "--demo",
        "--seed",
        "0",
        "--out",
        str(out),
        "--report",
        str(report),
    ]
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
    from service.classifier import ClassifierConfig, build_session
    from service.modelfile import INPUT_NAME, OUTPUT_NAME

    session, meta = build_session(ClassifierConfig(model_path=str(model), providers=(provider,)))
    assert session.get_providers()[0] == provider, session.get_providers()
    size = meta.input_size
    rng = np.random.default_rng(0)
    rows = []
    for b in batch_sizes:
        batch = rng.integers(0, 256, size=(b, size, size, 3), dtype=np.uint8)
        for _ in range(5):
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
                "runs": len(times),
            }
        )
        print(f"raw b={b}: {b / median:.0f} img/s", flush=True)
    return rows


def photos(n: int) -> list[bytes]:
    sys.path.insert(0, str(REPO))
    from tests.imagefactory import jpeg

    # Sizes around the thesis's 460x706 average.
    return [jpeg(400 + (i * 37) % 140, 640 + (i * 53) % 140, seed=i) for i in range(n)]


async def _load(
    url: str, concurrency: int, seconds: float, images: list[bytes]
) -> list[tuple[float, int, float, int]]:
    import aiohttp

    results: list[tuple[float, int, float, int]] = []
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(k: int) -> None:
            i = k
            while time.perf_counter() < deadline:
                form = aiohttp.FormData()
                form.add_field(
                    "image", images[i % len(images)], filename="car.jpg", content_type="image/jpeg"
                )
                form.add_field("vin", VIN)
                t = time.perf_counter()
                async with session.post(url, data=form) as r:
                    body = await r.json()
                    status = r.status
                lat = time.perf_counter() - t
                batch = body.get("batch_size", 0) if status == 200 else 0
                decode = body.get("latency_ms", {}).get("decode", 0.0) if status == 200 else 0.0
                results.append((lat, status, decode, batch))
                i += concurrency

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return results


def _load_process(args: tuple[str, int, float, list[bytes]]) -> list[tuple[float, int, float, int]]:
    return asyncio.run(_load(*args))


def service_load(
    port: int, concurrency: int, seconds: float, images: list[bytes], processes: int
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/recognize"
    procs = max(1, min(processes, concurrency))
    shares = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    started = time.perf_counter()
    with mp.get_context("spawn").Pool(procs) as pool:
        parts = pool.map(_load_process, [(url, c, seconds, images) for c in shares])
    wall = time.perf_counter() - started - 0.0
    rows = [r for part in parts for r in part]
    ok = [r for r in rows if r[1] == 200]
    lat = sorted(r[0] for r in ok)
    if not lat:
        return {"concurrency": concurrency, "ok": 0, "errors": len(rows)}
    return {
        "concurrency": concurrency,
        "requests_per_s": round(len(ok) / seconds, 1),
        "p50_ms": round(lat[len(lat) // 2] * 1000, 1),
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000, 1),
        "mean_batch": round(statistics.mean(r[3] for r in ok), 2),
        "decode_ms_mean": round(statistics.mean(r[2] for r in ok), 2),
        "ok": len(ok),
        "errors": len(rows) - len(ok),
        "wall_s": round(wall, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="results folder")
    parser.add_argument("--arch", default="convnext_base")
    parser.add_argument("--size", type=int, default=300)
    parser.add_argument("--batches", default="1,8,16,32,64")
    parser.add_argument("--concurrency", default="1,32,128,256")
    parser.add_argument("--seconds", type=float, default=8.0, help="per measurement cell")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--ingress-replicas", type=int, default=6)
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
    print(result, flush=True)
    result["export_fp16"] = export(args.arch, args.size, True, work)
    result["export_fp32"] = export(args.arch, args.size, False, work)
    batches = [int(b) for b in args.batches.split(",")]
    fp16 = Path(result["export_fp16"]["path"])
    fp32 = Path(result["export_fp32"]["path"])
    result["raw_fp16"] = raw_throughput(fp16, batches, args.seconds / 2, args.provider)
    result["raw_fp32"] = raw_throughput(fp32, batches[:3], args.seconds / 4, args.provider)
    (args.out / "gpu_bench.json").write_text(json.dumps(result, indent=2))

    port = free_port()
    env = {
        "RECOGNIZE_AUTH_DISABLED": "true",  # a local benchmark
        "RECOGNIZE_PROVIDERS": json.dumps([args.provider]),
        "RECOGNIZE_CLASSIFIER_NUM_GPUS": "1" if args.provider.startswith("CUDA") else "0",
        "RECOGNIZE_CLASSIFIER_NUM_CPUS": "1",
        "RECOGNIZE_INTRA_OP_THREADS": "2",
        "RECOGNIZE_MAX_BATCH_SIZE": str(args.max_batch_size),
        # Few batch shapes on the GPU: the first run of each new shape cost ~8 s on the H100
        # (loadtest/RESULTS.md), so batches are padded up to powers of two.
        "RECOGNIZE_BATCH_BUCKETS": json.dumps(
            sorted(
                {
                    min(2**i, args.max_batch_size)
                    for i in range(args.max_batch_size.bit_length() + 1)
                }
            )
        ),
        "RECOGNIZE_BATCH_WAIT_TIMEOUT_S": "0.004",
        "RECOGNIZE_INGRESS_REPLICAS": str(args.ingress_replicas),
        "RECOGNIZE_INGRESS_NUM_CPUS": "1",
    }
    memory_before = gpu_memory_used_mib()
    server = start_server(
        "service",
        [sys.executable, "-m", "service.cli", "serve"],
        port=port,
        ready_path="/readyz",
        log=args.out / "service.log",
        cwd=REPO,
        timeout_s=600,
        env={
            **env,
            "RECOGNIZE_PORT": str(port),
            "RECOGNIZE_MODEL_PATH": str(fp16),
            "RAY_USAGE_STATS_ENABLED": "0",
        },
    )
    result["service_cold_start_s"] = round(server.cold_start_s, 1)
    result["service_gpu_memory_mib"] = (
        (gpu_memory_used_mib() or 0) - (memory_before or 0) if memory_before is not None else None
    )
    result["service_env"] = env
    images = photos(48)
    rows = []
    try:
        for c in [int(x) for x in args.concurrency.split(",")]:
            row = service_load(port, c, args.seconds, images, args.load_processes)
            print(f"service c={c}: {row}", flush=True)
            rows.append(row)
    finally:
        server.stop()
    result["service"] = rows
    raw_by_batch = {r["batch"]: r["images_per_s"] for r in result["raw_fp16"]}
    for row in rows:
        if "mean_batch" in row:
            nearest = min(raw_by_batch, key=lambda b: abs(b - row["mean_batch"]))
            row["raw_at_nearest_batch"] = {"batch": nearest, "images_per_s": raw_by_batch[nearest]}
            row["ratio_vs_raw"] = round(row["requests_per_s"] / raw_by_batch[nearest], 3)
    (args.out / "gpu_bench.json").write_text(json.dumps(result, indent=2))

    lines = [
        f"GPU: {result['gpu']}  ({result['date']}, {result['cpu_count']} CPUs)",
        f"model: {args.arch}@{args.size}; fp16 parity max|diff| = "
        f"{result['export_fp16'].get('max_abs_diff')}",
        "",
        "raw onnxruntime CUDA fp16 (service session options, uint8 host input)",
        "batch  img/s   ms/batch",
    ]
    lines += [
        f"{r['batch']:>5}  {r['images_per_s']:>6}  {r['ms_per_batch_p50']:>8}"
        for r in result["raw_fp16"]
    ]
    lines += [
        "",
        "raw fp32: "
        + ", ".join(f"b={r['batch']}: {r['images_per_s']} img/s" for r in result["raw_fp32"]),
    ]
    lines += [
        "",
        f"service over HTTP (cold start {result['service_cold_start_s']} s, "
        f"GPU memory {result['service_gpu_memory_mib']} MiB)",
        "conc  req/s    p50 ms  p99 ms  mean batch  decode ms  raw@batch  ratio",
    ]
    for r in rows:
        if "mean_batch" in r:
            raw = r["raw_at_nearest_batch"]
            lines.append(
                f"{r['concurrency']:>4}  {r['requests_per_s']:>6}  {r['p50_ms']:>7}  "
                f"{r['p99_ms']:>6}  {r['mean_batch']:>10}  {r['decode_ms_mean']:>9}  "
                f"{raw['images_per_s']:>5}@{raw['batch']:<3}  {r['ratio_vs_raw']}"
            )
        else:
            lines.append(f"{r['concurrency']:>4}  failed: {r}")
    table = "\n".join(lines)
    print(table)
    (args.out / "gpu_bench.txt").write_text(table + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
