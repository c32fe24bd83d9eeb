"""A closed-loop HTTP load generator: N concurrent clients, each sending its next request as soon
as the last one is answered, for a bounded time and a bounded number of requests.

Request bodies are encoded once, before the clock starts (multipart forms for the service and
the naive server, KServe v2 binary tensors for Triton), and each client sends them over its own
keep-alive HTTP/1.1 connection with a minimal client (``HttpConnection``): the generator shares
the machine with the server it measures, and httpx's own CPU (1.3-2.0 core-ms per request on
2 cores, ~3 % of the machine at the CPU service's rate) came off every server's figures. This
client takes 0.1-0.4 (loadtest/RESULTS.md, runs Q-T).

Throughput counts the answers that arrive inside the measured window; latency percentiles cover
the requests sent inside it. The window opens after a warm-up that lasts until every client has
had an answer (a slow server's queue has then filled and turned over once), so a cell at high
concurrency measures the steady state, not the start.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import httpx

from loadtest._stats import percentile

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
REQUEST_TIMEOUT_S = 120.0


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
    read_batch_size: Callable[[bytes], int]  # from a 200 answer's body
    request_id_header: bool = False

    @cached_property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise SystemExit(f"the load generator speaks plain HTTP only, not {self.base_url}")
        return parts.hostname, parts.port or 80

    def request(self, n: int) -> tuple[bytes, bytes]:
        """Head and body of the n-th request."""
        payload = self.payloads[n % len(self.payloads)]
        host, port = self.address
        lines = [
            f"POST {self.path} HTTP/1.1",
            f"Host: {f'[{host}]' if ':' in host else host}:{port}",
            f"Content-Length: {len(payload.body)}",
            *(f"{name}: {value}" for name, value in payload.headers.items()),
        ]
        if self.request_id_header:
            lines.append(f"X-Request-ID: bench-{n}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"), payload.body


class HttpConnection:
    """One keep-alive HTTP/1.1 connection that sends ready-made requests and reads answers
    framed by Content-Length, chunked, or the server closing; it reconnects when the server
    closed the connection or an exchange failed."""

    def __init__(self, host: str, port: int) -> None:
        self._address = (host, port)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def exchange(self, head: bytes, body: bytes) -> tuple[int, bytes]:
        """(status, body) of one request."""
        if self._reader is None or self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(*self._address)
        try:
            self._writer.writelines((head, body))
            status, answer, keep_alive = await read_answer(self._reader)
        except BaseException:
            self.close()
            raise
        if not keep_alive:
            self.close()
        return status, answer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, whether the connection stays open) of one HTTP/1.x answer."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head[:-4].decode("latin-1").split("\r\n")
    version, status = status_line.split(" ", 2)[:2]
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = await _read_chunks(reader)
    elif "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    else:  # the body lasts until the server closes
        body, keep_alive = await reader.read(), False
    return int(status), body, keep_alive


async def _read_chunks(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        chunks.append(await reader.readexactly(size))
        await reader.readexactly(2)  # the chunk's CRLF
    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the empty line
        pass
    return b"".join(chunks)


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


def batch_size_from_json(body: bytes) -> int:
    answer = json.loads(body)
    if "verdict" not in answer:
        raise ValueError(f"no verdict in {str(answer)[:200]}")
    return int(answer.get("batch_size") or 1)


def batch_size_from_kserve(body: bytes) -> int:
    outputs = {o["name"]: o["data"] for o in json.loads(body)["outputs"]}
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
    sent: int = 0  # every request, warm-up included
    generator_cpu_s: float = 0.0  # this process's CPU over the whole cell, warm-up included

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
            # The load generator shares the machine with the server it measures.
            "generator_cpu_ms_per_request": (
                round(1000 * self.generator_cpu_s / self.sent, 2) if self.sent else None
            ),
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
    host, port = target.address
    sent = 0
    window = _Window(concurrency, warmup_s, duration_s, max_warmup_s)

    async def one_client() -> None:
        nonlocal sent
        connection = HttpConnection(host, port)
        first = True
        try:
            while True:
                started = time.perf_counter()
                window.tick(started)
                if started >= window.end or sent >= max_requests:
                    return
                n, sent = sent, sent + 1
                error = None
                batch = 0
                try:
                    status, body = await asyncio.wait_for(
                        connection.exchange(*target.request(n)), REQUEST_TIMEOUT_S
                    )
                    if status != 200:
                        error = f"HTTP {status}: {body[:200].decode(errors='replace')}"
                    else:
                        batch = target.read_batch_size(body)
                except (
                    OSError,  # refused, reset
                    TimeoutError,
                    asyncio.IncompleteReadError,  # closed in the middle of an answer
                    asyncio.LimitOverrunError,  # an answer's head over 64 KiB
                    ValueError,  # unreadable answer
                    KeyError,
                ) as exc:
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
        finally:
            connection.close()

    await asyncio.gather(*(one_client() for _ in range(concurrency)))
    result.sent = sent
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
    before = os.times()
    result = asyncio.run(
        _run_cell(target, concurrency, warmup_s, duration_s, max_requests, max_warmup_s)
    )
    after = os.times()
    result.generator_cpu_s = (after.user + after.system) - (before.user + before.system)
    return result
