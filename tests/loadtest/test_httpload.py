"""The benchmark's HTTP client and load generator against a real socket server that answers in
every framing.

The server is a small asyncio server on 127.0.0.1 whose path picks how it answers
(Content-Length, chunked with a trailer, ``Connection: close``, a body that lasts until it
closes, a cut-off answer, a 503); it records every request it read and every connection.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import pytest

from loadtest._httpload import HttpConnection, Payload, Target, json_answer
from loadtest._loadgen import Answer, run_cell

ANSWER = json.dumps({"verdict": "match", "batch_size": 3}).encode()


@dataclass
class Recorder:
    connections: int = 0
    requests: list[tuple[bytes, bytes]] = field(default_factory=list)  # (head, body)


def _framed(path: str) -> tuple[bytes, bool]:
    """The answer for ``path`` and whether the server closes the connection after it."""
    if path == "/length":
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(ANSWER)}\r\n\r\n"
        return head.encode() + ANSWER, False
    if path == "/chunked":
        chunks = b"".join(
            f"{len(part):x};ext=1\r\n".encode() + part + b"\r\n"
            for part in (ANSWER[:7], ANSWER[7:])
        )
        head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        return head + chunks + b"0\r\nX-Trailer: yes\r\n\r\n", False
    if path == "/close":
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(ANSWER)}\r\nConnection: close\r\n\r\n"
        return head.encode() + ANSWER, True
    if path == "/until-close":
        return b"HTTP/1.0 200 OK\r\n\r\n" + ANSWER, True
    if path == "/cut":
        return f"HTTP/1.1 200 OK\r\nContent-Length: {len(ANSWER)}\r\n\r\n".encode() + b"{", True
    body = b'{"error": {"code": "overloaded"}}'
    head = f"HTTP/1.1 503 Service Unavailable\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body, False


def _handler(
    recorder: Recorder,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        recorder.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                recorder.requests.append((head, body))
                answer, close = _framed(head.split(b" ")[1].decode())
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    return handle


@pytest.fixture
def server() -> Iterator[tuple[int, Recorder]]:
    """The answering server on an event loop of its own in a thread (run_cell runs its own)."""
    recorder = Recorder()
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    started = asyncio.start_server(_handler(recorder), "127.0.0.1", 0)
    listening = asyncio.run_coroutine_threadsafe(started, loop).result(5)
    yield listening.sockets[0].getsockname()[1], recorder

    async def close() -> None:
        listening.close()
        await listening.wait_closed()

    asyncio.run_coroutine_threadsafe(close(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def target(port: int, path: str, *, request_id: bool = False) -> Target:
    payloads = [Payload(b"photo-%d" % i, {"Content-Type": "image/jpeg"}) for i in range(2)]
    return Target("test", f"http://127.0.0.1:{port}", path, payloads, json_answer, request_id)


def exchange_twice(port: int, path: str) -> list[tuple[int, bytes]]:
    async def go() -> list[tuple[int, bytes]]:
        connection = HttpConnection("127.0.0.1", port)
        t = target(port, path, request_id=True)
        try:
            return [await connection.exchange(*t.request(n)) for n in range(2)]
        finally:
            connection.close()

    return asyncio.run(go())


@pytest.mark.parametrize("path", ["/length", "/chunked", "/close", "/until-close"])
def test_every_framing_reads_the_whole_body(server, path: str) -> None:
    port, recorder = server
    assert exchange_twice(port, path) == [(200, ANSWER), (200, ANSWER)]
    # Keep-alive answers share one connection; after a close the client opens a new one.
    closes = path in ("/close", "/until-close")
    assert recorder.connections == (2 if closes else 1)


def test_requests_carry_their_length_headers_and_request_ids(server) -> None:
    port, recorder = server
    exchange_twice(port, "/length")
    (head0, body0), (head1, body1) = recorder.requests
    assert (body0, body1) == (b"photo-0", b"photo-1")
    lines = head0.decode().split("\r\n")
    assert lines[0] == "POST /length HTTP/1.1"
    assert f"Host: 127.0.0.1:{port}" in lines
    assert "Content-Length: 7" in lines and "Content-Type: image/jpeg" in lines
    assert "X-Request-ID: bench-0" in lines
    assert "X-Request-ID: bench-1" in head1.decode()


def test_a_cell_counts_answers_latencies_and_batch_sizes(server) -> None:
    port, recorder = server
    cell = run_cell(target(port, "/chunked"), 4, warmup_s=0.1, duration_s=0.5)
    summary = cell.summary()
    assert cell.errors == 0 and cell.first_error is None
    assert cell.completed > 0 and summary["throughput_rps"] > 0
    assert summary["mean_batch"] == 3
    assert len(cell.latencies_ms) == cell.requests
    assert recorder.connections == 4  # one keep-alive connection per client


def test_errors_are_counted_with_the_first_one_kept(server) -> None:
    port, _ = server
    cell = run_cell(target(port, "/overloaded"), 2, warmup_s=0.1, duration_s=0.3)
    assert cell.completed == 0 and cell.errors > 0
    assert cell.first_error is not None and cell.first_error.startswith("HTTP 503")
    assert "overloaded" in cell.first_error


def test_a_cut_off_answer_is_an_error_and_the_client_reconnects(server) -> None:
    port, recorder = server
    cell = run_cell(target(port, "/cut"), 1, warmup_s=0.0, duration_s=0.3, max_requests=3)
    assert cell.errors == 3 and "IncompleteReadError" in (cell.first_error or "")
    assert recorder.connections == 3


def test_a_refused_connection_is_an_error_not_a_crash() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cell = run_cell(target(port, "/length"), 1, warmup_s=0.0, duration_s=0.2, max_requests=2)
    assert cell.errors == 2 and "ConnectionRefusedError" in (cell.first_error or "")


def test_only_plain_http_is_spoken() -> None:
    https = Target("t", "https://127.0.0.1:1", "/", [], json_answer)
    with pytest.raises(SystemExit, match="plain HTTP only, not https"):
        run_cell(https, 1, warmup_s=0.0, duration_s=0.1)


def test_clients_spread_over_load_processes_share_one_window(server) -> None:
    """Two spawned load processes, two clients each: one cell, one set of figures."""
    port, recorder = server
    cell = run_cell(
        target(port, "/chunked", request_id=True), 4, warmup_s=0.1, duration_s=0.5, processes=2
    )
    summary = cell.summary()
    assert cell.errors == 0 and cell.first_error is None
    assert cell.completed > 0 and summary["mean_batch"] == 3
    assert len(cell.latencies_ms) == cell.requests  # both processes' figures
    assert summary["generator_processes"] == 2 and 0 < summary["generator_busy"] <= 1.5
    assert cell.warmup_s is not None and cell.warmup_s >= 0.1
    assert recorder.connections == 4
    ids = [
        line
        for head, _ in recorder.requests
        for line in head.decode().split("\r\n")
        if line.startswith("X-Request-ID")
    ]
    assert len(ids) == len(recorder.requests) == cell.sent
    assert len(set(ids)) == len(ids)  # the processes number their requests apart


class _Timed:
    """A probe that notes when it was entered and left."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __enter__(self) -> None:
        self.times.append(time.monotonic())

    def __exit__(self, *_: object) -> None:
        self.times.append(time.monotonic())


def test_the_probe_spans_the_measured_window(server) -> None:
    port, _ = server
    probe = _Timed()
    began = time.monotonic()
    cell = run_cell(target(port, "/length"), 2, warmup_s=0.3, duration_s=0.5, probe=probe)
    assert cell.completed > 0
    entered, left = probe.times
    assert entered - began >= 0.3  # after the warm-up
    assert left - entered >= 0.45  # over the whole window


class _Instant:
    """A client whose answers come at once."""

    async def send(self, n: int) -> Answer:
        return Answer(batch_size=1)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class OnlyOneConnects:
    """The first load process to open it connects; the others cannot (as Ray drivers whose
    cluster went away), so the first waits for them in vain."""

    marker: str  # a file: whoever creates it has connected

    async def open(self) -> Callable[[], _Instant]:
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            raise ConnectionRefusedError("no cluster at 127.0.0.1:1") from None
        return _Instant


def test_a_load_process_that_cannot_connect_fails_the_cell_with_its_reason(tmp_path) -> None:
    began = time.monotonic()
    with pytest.raises(RuntimeError, match="no cluster at 127"):
        run_cell(
            OnlyOneConnects(str(tmp_path / "connected")),
            2,
            warmup_s=0.0,
            duration_s=0.1,
            processes=2,
        )
    # Said at once: the process that did connect is not left waiting for the other one.
    assert time.monotonic() - began < 60
