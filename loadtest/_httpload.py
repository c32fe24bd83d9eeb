"""HTTP load for the benchmarks: ready-made requests over lean keep-alive connections.

Request bodies are encoded once, before the clock starts (multipart forms for the service and
the naive server, KServe v2 binary tensors for Triton), and each client sends them over its own
keep-alive HTTP/1.1 connection with a minimal client (``HttpConnection``): the generator shares
the machine with the server it measures, and httpx's own CPU (1.3-2.0 core-ms per request on
2 cores, ~3 % of the machine at the CPU service's rate) came off every server's figures. This
client takes 0.1-0.4 (loadtest/RESULTS.md, runs Q-T). A ``Target`` here is what
``loadtest/_loadgen.run_cell`` drives.
"""

from __future__ import annotations

import asyncio
import json
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from urllib.parse import urlsplit

import httpx

from loadtest._loadgen import Answer, Client

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
    """How to send one request to a server and read what its answer says (a load target of
    ``loadtest/_loadgen.run_cell``)."""

    name: str
    base_url: str
    path: str
    payloads: Sequence[Payload]
    read_answer: Callable[[bytes], Answer]  # from a 200 answer's body; ValueError if unreadable
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

    async def open(self) -> Callable[[], Client]:
        _ = self.address  # refuses anything but plain HTTP before the first client starts
        return lambda: HttpClient(self)


class HttpClient:
    """One load client: the target's requests over one keep-alive connection."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._connection = HttpConnection(*target.address)

    async def send(self, n: int) -> Answer:
        try:
            status, body = await asyncio.wait_for(
                self._connection.exchange(*self._target.request(n)), REQUEST_TIMEOUT_S
            )
            if status != 200:
                return Answer.failed(f"HTTP {status}", body[:200].decode(errors="replace"))
            return self._target.read_answer(body)
        except (
            OSError,  # refused, reset
            TimeoutError,
            asyncio.IncompleteReadError,  # closed in the middle of an answer
            asyncio.LimitOverrunError,  # an answer's head over 64 KiB
            ValueError,  # unreadable answer
            KeyError,
        ) as exc:
            return Answer.failed(type(exc).__name__, str(exc))

    def close(self) -> None:
        self._connection.close()


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


def json_answer(body: bytes) -> Answer:
    """A ``POST /recognize`` answer: its batch size and, from the service, its stage timings."""
    answer = json.loads(body)
    if "verdict" not in answer:
        raise ValueError(f"no verdict in {str(answer)[:200]}")
    stages = answer.get("latency_ms") or {}
    return Answer(
        batch_size=int(answer.get("batch_size") or 1),
        stages_ms={k: float(v) for k, v in stages.items() if isinstance(v, int | float)},
    )


def kserve_answer(body: bytes) -> Answer:
    """A KServe v2 inference answer of the Triton peer: its batch size."""
    outputs = {o["name"]: o["data"] for o in json.loads(body)["outputs"]}
    if not outputs.get("verdict"):
        raise ValueError(f"no verdict in {outputs}")
    return Answer(batch_size=int(outputs["batch_size"][0]))
