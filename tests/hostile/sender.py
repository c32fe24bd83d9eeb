"""Sends corpus cases to the service on 127.0.0.1: httpx for well-formed HTTP, a raw socket for
the rest (lying Content-Length, broken chunks, Expect: 100-continue, half-closed requests), and
reads the raw answer back."""

from __future__ import annotations

import contextlib
import socket
import time
from typing import Any

import httpx

from tests.hostile.case import Case, materialize
from tests.hostile.checker import Outcome


class Sender:
    """Sends corpus cases to the service: httpx for well-formed HTTP, a socket for the rest."""

    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 60.0) -> None:
        url = httpx.URL(base_url)
        if url.host != "127.0.0.1":
            raise ValueError(f"hostile traffic goes to 127.0.0.1 only, not {url.host}")
        self.host, self.port = url.host, url.port or 80
        self.auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.timeout = timeout
        self.client = httpx.Client(base_url=base_url, timeout=timeout, headers=self.auth)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def send(self, case: Case) -> Outcome:
        started = time.perf_counter()
        outcome = self._wire(case) if case.wire is not None else self._http(case)
        outcome.seconds = time.perf_counter() - started
        return outcome

    def _http(self, case: Case) -> Outcome:
        headers = dict(case.headers)
        if case.body is not None:
            if case.content_type is not None:
                headers["Content-Type"] = case.content_type
            # A body with no Content-Type: httpx adds none for raw content.
            r = self.client.request(
                case.method, case.path, content=materialize(case.body), headers=headers
            )
        else:
            data: dict[str, Any] = {}
            for key, value in case.data:
                data.setdefault(key, []).append(value)
            if case.vin is not None:
                data["vin"] = case.vin
            files: list[tuple[str, Any]] = []
            if case.image is not None:
                files.append(("image", (case.filename, materialize(case.image), case.image_type)))
            for name, (filename, payload, ctype) in case.files:
                files.append((name, (filename, materialize(payload), ctype)))
            if not files:
                # httpx sends url-encoded without files: keep every form case multipart.
                files.append(("__empty", (None, b"", None)))
            r = self.client.request(case.method, case.path, data=data, files=files, headers=headers)
        return Outcome(r.status_code, dict(r.headers), r.content)

    def _wire(self, case: Case) -> Outcome:
        assert case.wire is not None
        wire = case.wire
        body = materialize(wire.body)
        lines = [
            f"{case.method} {case.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Connection: close",
        ]
        lines += [f"{k}: {v}" for k, v in self.auth.items()]
        for line in wire.head:
            if line.startswith("{length"):
                delta = int(line[len("{length") : -1] or 0)
                line = f"Content-Length: {len(body) + delta}"
            lines.append(line)
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        with socket.create_connection((self.host, self.port), timeout=self.timeout) as sock:
            if wire.expect_continue:
                sock.sendall(head)
                interim = sock.recv(65536)
                if not interim.startswith(b"HTTP/1.1 100"):
                    return parse_response(interim + read_all(sock))
                sock.sendall(body)
            else:
                # The server may answer early (413) and close: then read what it said.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    sock.sendall(head + body)
            if wire.half_close:
                sock.shutdown(socket.SHUT_WR)
            return parse_response(read_all(sock))


def read_all(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def parse_response(data: bytes) -> Outcome:
    """The first final response in ``data`` (interim 1xx responses skipped)."""
    while data:
        head, _, rest = data.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {}
        for line in header_lines:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        if 100 <= status < 200:
            data = rest
            continue
        if headers.get("transfer-encoding", "").lower() == "chunked":
            rest = _dechunk(rest)
        elif "content-length" in headers:
            rest = rest[: int(headers["content-length"])]
        return Outcome(status, headers, rest)
    return Outcome(0)


def _dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out
