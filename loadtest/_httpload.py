"""A closed-loop HTTP load generator: N concurrent clients, each sending its next request as soon
as the last one is answered, for a bounded time and a bounded number of requests.

Request bodies are encoded once, before the clock starts (multipart forms for the service and
the naive server, KServe v2 binary tensors for Triton), so the generator spends its CPU on
sending, not on encoding: it shares the machine with the server it measures.

Throughput counts the answers that arrive inside the measured window; latency percentiles cover
the requests sent inside it. The window opens after a warm-up that lasts until every client has
had an answer (a slow server's queue has then filled and turned over once), so a cell at high
concurrency measures the steady state, not the start.
"""

from __future__ import annotations

import asyncio
import json
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from loadtest._stats import percentile

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def require_loopback(url: str) -> None:
    """The benchmark measures this machine: its load goes to loopback addresses only."""
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK_HOSTS and not host.startswith("127."):
        raise SystemExit(f"refusing to load {url}: the benchmark targets 127.0.0.1 only")


@dataclass(frozen=True)
class Payload:
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Target:
    """How to send one request to a server and read the batch size from its answer."""

    name: str
    base_url: str
    path: str
    payloads: Sequence[Payload]
    read_batch_size: Callable[[httpx.Response], int]
    request_id_header: bool = False

    def send(self, client: httpx.AsyncClient, n: int) -> Any:
        payload = self.payloads[n % len(self.payloads)]
        headers = payload.headers
        if self.request_id_header:
            headers = {**headers, "X-Request-ID": f"bench-{n}"}
        return client.post(self.path, content=payload.body, headers=headers)


def multipart_payloads(images: Sequence[bytes], vin: str) -> list[Payload]:
    """One POST /recognize form per image, encoded by httpx as a client would send it."""
    payloads = []
    for i, data in enumerate(images):
        request = httpx.Request(
            "POST",
            "http://127.0.0.1/recognize",
            files={"image": (f"photo-{i}.jpg", data, "image/jpeg")},
            data={"vin": vin},
        )
        body = request.read()
        payloads.append(Payload(body, {"Content-Type": request.headers["Content-Type"]}))
    return payloads


def kserve_payloads(images: Sequence[bytes], vin: str) -> list[Payload]:
    """KServe v2 inference requests with the photo and VIN as binary BYTES tensors."""
    payloads = []
    vin_bytes = vin.encode()
    for data in images:
        header = {
            "inputs": [
                {
                    "name": "image",
                    "shape": [1, 1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": 4 + len(data)},
                },
                {
                    "name": "vin",
                    "shape": [1, 1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": 4 + len(vin_bytes)},
                },
            ],
            "outputs": [
                {"name": name, "parameters": {"binary_data": False}}
                for name in ("verdict", "parent_probability", "batch_size")
            ],
        }
        head = json.dumps(header).encode()
        # A BYTES element in binary form: 4-byte little-endian length, then the bytes.
        body = b"".join(
            [head, struct.pack("<I", len(data)), data, struct.pack("<I", len(vin_bytes)), vin_bytes]
        )
        payloads.append(
            Payload(
                body,
                {
                    "Content-Type": "application/octet-stream",
                    "Inference-Header-Content-Length": str(len(head)),
                },
            )
        )
    return payloads


def batch_size_from_json(response: httpx.Response) -> int:
    body = response.json()
    if "verdict" not in body:
        raise ValueError(f"no verdict in {str(body)[:200]}")
    return int(body.get("batch_size") or 1)


def batch_size_from_kserve(response: httpx.Response) -> int:
    outputs = {o["name"]: o["data"] for o in response.json()["outputs"]}
    if not outputs.get("verdict"):
        raise ValueError(f"no verdict in {outputs}")
    return int(outputs["batch_size"][0])


@dataclass
class CellResult:
    concurrency: int
    seconds: float
    requests: int = 0  # sent inside the measured window
    completed: int = 0  # answered inside the measured window
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    first_error: str | None = None
    warmup_s: float | None = None  # how long the warm-up lasted; None: the window never opened

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)
        return {
            "concurrency": self.concurrency,
            "warmup_s": None if self.warmup_s is None else round(self.warmup_s, 2),
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "errors": self.errors,
            "throughput_rps": round(self.completed / self.seconds, 2) if self.seconds else 0.0,
            "p50_ms": percentile(ordered, 50),
            "p90_ms": percentile(ordered, 90),
            "p99_ms": percentile(ordered, 99),
            "mean_batch": (
                round(sum(self.batch_sizes) / len(self.batch_sizes), 2)
                if self.batch_sizes
                else None
            ),
            "first_error": self.first_error,
        }


class _Window:
    """The measured window: it opens once the warm-up has lasted ``warmup_s`` and every client
    has had an answer (so the server's queue has filled and turned over once, however slow it
    is), or after ``max_warmup_s`` at the latest, and lasts ``duration_s``."""

    def __init__(
        self, concurrency: int, warmup_s: float, duration_s: float, max_warmup_s: float
    ) -> None:
        self.begin = time.perf_counter()
        self.concurrency = concurrency
        self.warmup_s = warmup_s
        self.duration_s = duration_s
        self.max_warmup_s = max(warmup_s, max_warmup_s)
        self.answered = 0
        self.start = float("inf")
        self.end = float("inf")

    def tick(self, now: float) -> None:
        if self.start != float("inf"):
            return
        waited = now - self.begin
        warm = self.answered >= self.concurrency and waited >= self.warmup_s
        if warm or waited >= self.max_warmup_s:
            self.start, self.end = now, now + self.duration_s


async def _run_cell(
    target: Target,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    max_requests: int,
    max_warmup_s: float,
) -> CellResult:
    result = CellResult(concurrency, duration_s)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(120.0, connect=10.0)
    sent = 0
    async with httpx.AsyncClient(
        base_url=target.base_url, limits=limits, timeout=timeout
    ) as client:
        window = _Window(concurrency, warmup_s, duration_s, max_warmup_s)

        async def one_client() -> None:
            nonlocal sent
            first = True
            while True:
                started = time.perf_counter()
                window.tick(started)
                if started >= window.end or sent >= max_requests:
                    return
                n, sent = sent, sent + 1
                error = None
                batch = 0
                try:
                    response = await target.send(client, n)
                    if response.status_code != 200:
                        error = f"HTTP {response.status_code}: {response.text[:200]}"
                    else:
                        batch = target.read_batch_size(response)
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                ended = time.perf_counter()
                if first:
                    first = False
                    window.answered += 1
                in_window = started >= window.start
                if in_window:
                    result.requests += 1
                if error is not None:
                    result.errors += 1
                    result.first_error = result.first_error or error
                    continue
                if window.start <= ended <= window.end:
                    result.completed += 1
                if in_window:
                    result.latencies_ms.append((ended - started) * 1000)
                    result.batch_sizes.append(batch)

        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        if window.start != float("inf"):
            result.warmup_s = window.start - window.begin
    return result


def run_cell(
    target: Target,
    concurrency: int,
    *,
    warmup_s: float,
    duration_s: float,
    max_requests: int = 100_000,
    max_warmup_s: float = 60.0,
) -> CellResult:
    """Load ``target`` with ``concurrency`` clients: warm-up, then a measured window. Bounded:
    the warm-up lasts at most ``max_warmup_s``, no request starts after the window, and at
    most ``max_requests`` are sent."""
    return asyncio.run(
        _run_cell(target, concurrency, warmup_s, duration_s, max_requests, max_warmup_s)
    )
