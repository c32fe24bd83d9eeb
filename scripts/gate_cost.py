"""What the vehicle gate costs on this machine's CPU, raw and through the service.

Until loadtest/bench.py gains gate columns, this measures the two figures the gate adds:

1. raw onnxruntime, the service's session options: the classifier alone vs the classifier and
   the gate on the same uint8 batch, one after the other (as a Classifier replica runs them),
   per batch size, rounds interleaved so that a busy neighbour slows both alike;
2. the service (`recognize serve`, one process per setting): POST /recognize latency and
   throughput on real photos with the gate on and off, sequential and at a concurrency.

Timings on a shared machine are noisy: compare the ratios printed, from one run.

    .venv/bin/python scripts/gate_cost.py --photos .data/photos/opencv/*.jpg
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from service.inference.session import ClassifierConfig, build_gate_session, build_session
from service.settings import DEMO_GATE, DEMO_MODEL

VIN = "WDD2052041F123456"


def raw(model: Path, gate: Path, batch_sizes: list[int], rounds: int) -> None:
    config = ClassifierConfig(model_path=model, gate_model_path=gate)
    classifier, meta = build_session(config)
    gate_session, _ = build_gate_session(config)
    size = meta.input_size
    print(f"raw onnxruntime, {os.cpu_count()} cores, {meta.arch} @{size} + gate")
    print(f"{'batch':>5} {'classifier ms':>14} {'+ gate ms':>10} {'gate ms':>8} {'ratio':>6}")
    for n in batch_sizes:
        batch = np.random.default_rng(n).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        feed = {"image": batch}
        classifier.run(None, feed), gate_session.run(None, feed)  # first runs allocate
        alone, both = [], []
        for _ in range(rounds):
            started = time.perf_counter()
            classifier.run(None, feed)
            alone.append(time.perf_counter() - started)
            started = time.perf_counter()
            classifier.run(None, feed)
            gate_session.run(None, feed)
            both.append(time.perf_counter() - started)
        a, b = statistics.median(alone) * 1e3, statistics.median(both) * 1e3
        print(f"{n:>5} {a:>14.1f} {b:>10.1f} {b - a:>8.1f} {b / a:>6.2f}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(
    gate_on: bool, photos: list[bytes], requests: int, concurrency: int
) -> dict[str, float]:
    port = free_port()
    env = {
        **os.environ,
        "RECOGNIZE_PORT": str(port),
        "RECOGNIZE_METRICS_PORT": str(free_port()),
        "RECOGNIZE_AUTH_DISABLED": "true",
        "RECOGNIZE_GATE_ENABLED": json.dumps(gate_on),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            else:
                raise RuntimeError("service not ready in 240 s")

            def post(i: int) -> float:
                started = time.perf_counter()
                r = client.post(
                    "/recognize",
                    files={"image": ("p", photos[i % len(photos)])},
                    data={"vin": VIN},
                )
                r.raise_for_status()
                return time.perf_counter() - started

            for i in range(len(photos)):
                post(i)  # warm the path once per photo
            sequential = [post(i) for i in range(requests)]
            started = time.perf_counter()
            with ThreadPoolExecutor(concurrency) as pool:
                list(pool.map(post, range(requests * 2)))
            rate = requests * 2 / (time.perf_counter() - started)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=90)
    return {
        "p50_ms": statistics.median(sequential) * 1e3,
        "mean_ms": statistics.fmean(sequential) * 1e3,
        "req_s": rate,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=DEMO_MODEL)
    parser.add_argument("--gate", type=Path, default=DEMO_GATE)
    parser.add_argument("--batch-sizes", default="1,4,8", help="(default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=15, help="(default: %(default)s)")
    parser.add_argument("--photos", type=Path, nargs="*", default=[], help="real photos to POST")
    parser.add_argument("--requests", type=int, default=40, help="(default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=8, help="(default: %(default)s)")
    args = parser.parse_args(argv)
    raw(args.model, args.gate, [int(n) for n in args.batch_sizes.split(",")], args.rounds)
    if not args.photos:
        return 0
    photos = [p.read_bytes() for p in args.photos]
    # off, on, off: the second "off" shows how far the box drifted meanwhile
    results = [
        (on, serve(on, photos, args.requests, args.concurrency)) for on in (False, True, False)
    ]
    print(f"\nservice, {len(photos)} real photos, {args.requests} sequential requests, "
          f"{args.requests * 2} at concurrency {args.concurrency}")  # fmt: skip
    print(f"{'gate':>4} {'p50 ms':>8} {'mean ms':>8} {'req/s':>7}")
    for on, r in results:
        state = "on" if on else "off"
        print(f"{state:>4} {r['p50_ms']:>8.1f} {r['mean_ms']:>8.1f} {r['req_s']:>7.2f}")
    off = [r for on, r in results if not on]
    gate = next(r for on, r in results if on)
    p50 = gate["p50_ms"] / statistics.fmean(r["p50_ms"] for r in off)
    rate = gate["req_s"] / statistics.fmean(r["req_s"] for r in off)
    print(f"on/off: p50 x{p50:.2f}, req/s x{rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
