"""Hostile input against the real service: every case a documented 4xx or a correct 200.

The corpus (tests/hostile/, ~370 cases generated on the fly) covers non-images, truncated and
corrupt files, other formats, pixel bombs, every colour mode, EXIF orientations and broken EXIF,
hostile VINs and top_k values, duplicated and oversized fields, broken multipart bodies, lying
Content-Length, chunked uploads and odd headers. Each case is asserted on its own (status, error
code and field, the JSON error shape, never a 5xx); then the whole corpus runs twice more to show
that the service stays healthy and that its memory does not grow from one pass to the next.

Run with ``-s`` (or ``-rP``) to see the summary of outcomes.
"""

from __future__ import annotations

import select
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from service.settings import Settings
from tests import hostile
from tests.hostile import Case, Outcome, Sender
from tests.integration.conftest import RunningService

pytestmark = pytest.mark.integration

CASES = hostile.corpus()
BY_NAME = {case.name: case for case in CASES}

# Memory growth allowed between the end of one full pass and the end of the next, summed over
# the Serve processes (both replicas and the proxy). Earlier passes (the parametrized one above,
# then the first pass here) take each process towards its high-water mark: Pillow's plugins
# loaded, onnxruntime's arena at its batch sizes, and glibc's heap grown by the big transient
# buffers: ~90 MB of 20-25 MB bodies a pass, copied through the proxy and the ingress, and a
# 50 MB decode (the 7071x7071 header case). glibc returns that heap unevenly, so RSS still steps
# up by 10-80 MB a pass before it levels off; measured over six passes on a 2-core box: ingress
# 290 -> 334 -> 335 -> 354 -> 355 -> 355 MB, proxy 202 -> 239 -> 260 -> 271 -> 273 -> 275 MB,
# classifier flat at ~550 MB. 100 MB is above that noise and below what a real leak of the
# bodies costs: keeping each pass's uploads in the proxy and the ingress alone is ~180 MB.
MAX_GROWTH_BYTES = 100 * 1024 * 1024

# A request whose body never arrives must not hold a connection (and a replica slot) forever:
# it is answered by the request deadline (RECOGNIZE_REQUEST_TIMEOUT_S) plus a margin.
BODY_TIMEOUT_BOUND_S = float(Settings.model_fields["request_timeout_s"].default) + 5.0
# A chunked upload (no Content-Length to refuse it by) must be cut off near the upload limit,
# not read to its end: the service answers before the client has sent this much. "Near" allows
# for what loopback TCP buffers may hold however quickly the server refuses (the kernel's
# largest receive plus send buffer), and 16 MiB of read-ahead in the server.
_LIMIT = int(Settings.model_fields["max_upload_bytes"].default)


def _kernel_buffer_bytes() -> int:
    total = 0
    for name in ("tcp_rmem", "tcp_wmem"):
        try:
            total += int(Path(f"/proc/sys/net/ipv4/{name}").read_text().split()[2])
        except (OSError, IndexError, ValueError):
            total += 32 << 20
    return total


CHUNKED_CUTOFF_BYTES = _LIMIT + _kernel_buffer_bytes() + (16 << 20)


@pytest.fixture(scope="module")
def sender(service: RunningService) -> Iterator[Sender]:
    with Sender(service.base_url, getattr(service, "api_key", None), timeout=60.0) as s:
        yield s


def send(sender: Sender, case: Case) -> Outcome:
    try:
        return sender.send(case)
    except (httpx.TimeoutException, TimeoutError) as exc:
        pytest.fail(f"{case.name}: no answer within {sender.timeout:.0f}s (a hang): {exc!r}")


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(c, marks=pytest.mark.xfail(reason=c.known_gap, strict=True))
        if c.known_gap
        else c
        for c in CASES
    ],
    ids=[case.name for case in CASES],
)
def test_hostile_input(sender: Sender, case: Case) -> None:
    outcome = send(sender, case)
    reference = send(sender, BY_NAME[case.same_as]) if case.same_as else None
    problems = hostile.check(case, outcome, reference)
    assert not problems, f"[{case.group}] {case.name}: " + "; ".join(problems)


def serve_processes(service: RunningService) -> dict[int, str]:
    """The service's Serve replicas and HTTP proxy: {pid: process title}."""
    found = {}
    for proc in psutil.Process(service.process.pid).children(recursive=True):
        try:
            name = proc.name()
        except psutil.NoSuchProcess:
            continue
        if name.startswith(("ray::ServeReplica", "ray::ProxyActor")):
            found[proc.pid] = name
    return found


def rss(pids: dict[int, str]) -> dict[str, int]:
    out = {}
    for pid, name in pids.items():
        try:
            out[name] = psutil.Process(pid).memory_info().rss
        except psutil.NoSuchProcess:
            out[name] = -1
    return out


def run_pass(sender: Sender) -> list[tuple[Case, Outcome | None]]:
    results: list[tuple[Case, Outcome | None]] = []
    for case in CASES:
        try:
            results.append((case, sender.send(case)))
        except (httpx.HTTPError, OSError):
            results.append((case, None))  # a hang or a dropped connection: reported below
    return results


def mb(n: int) -> str:
    return f"{n / 2**20:7.1f} MB"


def test_corpus_twice_keeps_service_healthy_and_memory_flat(
    service: RunningService, sender: Sender
) -> None:
    processes = serve_processes(service)
    assert any("Ingress" in name for name in processes.values()), processes
    baseline = rss(processes)
    started = time.perf_counter()
    first = run_pass(sender)
    time.sleep(1.0)
    after_first = rss(processes)
    second = run_pass(sender)
    time.sleep(1.0)
    after_second = rss(processes)
    seconds = time.perf_counter() - started

    print(f"\nhostile corpus: {len(CASES)} cases, 2 passes in {seconds:.1f}s")
    expected = Counter(case.expect.label() for case in CASES)
    observed = Counter(o.label() if o else "no answer" for _, o in first)
    mismatched = [(case, o) for case, o in first if o is None or hostile.check(case, o)]
    gaps = [case for case, _ in mismatched if case.known_gap]
    print("outcome                          expected  observed")
    for label in sorted(set(expected) | set(observed)):
        print(f"  {label:32s} {expected[label]:6d}  {observed[label]:8d}")
    print(f"cases not as expected: {len(mismatched)} ({len(gaps)} of them known gaps)")
    for case, o in mismatched:
        print(
            f"  [{case.group}] {case.name}: {o.label() if o else 'no answer'}, "
            f"expected {case.expect.label()}"
        )
    print("RSS (baseline, after pass 1, after pass 2):")
    for name in sorted(baseline):
        print(f"  {name:45s} {mb(baseline[name])} {mb(after_first[name])} {mb(after_second[name])}")

    problems: list[str] = []
    with service.client() as client:
        ready = client.get("/readyz")
        if ready.status_code != 200:
            problems.append(f"/readyz {ready.status_code} after the corpus: {ready.text[:200]}")
        valid = client.post(
            "/recognize",
            files={"image": ("car.jpg", hostile.small_jpeg(), "image/jpeg")},
            data={"vin": hostile.VIN},
        )
        if valid.status_code != 200:
            problems.append(f"a valid request got {valid.status_code}: {valid.text[:200]}")
    restarted = set(processes) - set(serve_processes(service))
    if restarted:
        problems.append(f"Serve processes died during the corpus: {restarted}")
    growth = sum(after_second.values()) - sum(after_first.values())
    if growth > MAX_GROWTH_BYTES:
        problems.append(
            f"memory grew by {mb(growth)} between pass 1 and pass 2 (bound {mb(MAX_GROWTH_BYTES)})"
        )
    for (case, a), (_, b) in zip(first, second, strict=True):
        if case.known_gap:
            continue  # asserted (as a strict xfail) case by case above
        if a is None or b is None:
            problems.append(f"{case.name}: no answer (a hang or a dropped connection)")
        elif a.status >= 500 or b.status >= 500:
            problems.append(f"{case.name}: server error {a.label()} / {b.label()}")
        elif a.label() != b.label():
            problems.append(f"{case.name}: {a.label()} the first time, {b.label()} the second")
    assert not problems, "\n".join(problems)


def test_a_body_that_never_arrives_is_not_waited_for_forever(service: RunningService) -> None:
    """Content-Length promises more bytes than come, and the client keeps the connection open.

    Untimed, the connection (and an ingress slot) would stay taken for as long as the client
    likes, a slow-loris door: the ingress gives the whole body the request deadline, then
    answers 408. (Behind Ray's HTTP proxy, the cluster layout, the proxy waits for the body
    before the ingress sees the request; there the ingress controller's body timeout applies.)
    """
    body = hostile.valid_multipart()
    head = (
        "POST /recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        f"Content-Type: multipart/form-data; boundary={hostile.BOUNDARY}\r\n"
        f"Content-Length: {len(body) + 1000}\r\n"
    )
    api_key = getattr(service, "api_key", None)
    if api_key:
        head += f"Authorization: Bearer {api_key}\r\n"
    url = httpx.URL(service.base_url)
    assert url.host == "127.0.0.1"
    started = time.perf_counter()
    with socket.create_connection((url.host, url.port), timeout=BODY_TIMEOUT_BOUND_S) as sock:
        sock.sendall((head + "\r\n").encode() + body)
        try:
            data = hostile.read_all(sock)
        except TimeoutError:
            data = b""
    waited = time.perf_counter() - started
    outcome = hostile.parse_response(data) if data else Outcome(0)
    assert outcome.label() == "408 request_timeout", (
        f"after {waited:.1f}s: {outcome.label() if data else 'no answer'} "
        f"(expected 408 within {BODY_TIMEOUT_BOUND_S:.0f}s)"
    )


def test_an_oversized_chunked_upload_is_cut_off_near_the_limit(service: RunningService) -> None:
    """Chunked transfer has no Content-Length for the early size check to read.

    The ingress counts the body as it streams in and answers 413 once it passes the limit,
    before the client has sent CHUNKED_CUTOFF_BYTES; nothing is spooled to disk. The client
    sends at most ~100 MiB/s: Ray Serve's direct-ingress wrapper reads a body ahead into an
    unbounded queue, so a client on loopback that sends faster than the ingress parses gets its
    413 later (45 to over 72 MiB measured), a gap outside our code.
    Behind Ray's HTTP proxy (the cluster layout) the proxy reads the whole chunked body first:
    there the ingress controller's body limit (e.g. nginx client_max_body_size) must cut it off.
    """
    url = httpx.URL(service.base_url)
    assert url.host == "127.0.0.1"
    head = (
        f"POST /recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{hostile.MP_TYPE}\r\n"
        "Transfer-Encoding: chunked\r\n"
    )
    api_key = getattr(service, "api_key", None)
    if api_key:
        head += f"Authorization: Bearer {api_key}\r\n"
    image_headers, image = hostile.image_part()
    opening = (
        hostile.multipart([hostile.vin_part()], close=False)
        + f"--{hostile.BOUNDARY}\r\n".encode()
        + image_headers
        + b"\r\n\r\n"
        + image
    )
    mib = b"\x00" * (1 << 20)
    sent, answered = len(opening), False
    with socket.create_connection((url.host, url.port), timeout=60) as sock:
        sock.sendall((head + "\r\n").encode() + b"%x\r\n%s\r\n" % (len(opening), opening))
        while sent < CHUNKED_CUTOFF_BYTES:
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(mib), mib))
                time.sleep(0.01)  # ~100 MiB/s at most: see the docstring
            except OSError:
                answered = True  # refused and closed mid-upload
                break
            sent += len(mib)
            if select.select([sock], [], [], 0)[0]:
                answered = True
                break
        if not answered:
            closing = f"\r\n--{hostile.BOUNDARY}--\r\n".encode()
            sock.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(closing), closing))
        data = hostile.read_all(sock)
    outcome = hostile.parse_response(data) if data else Outcome(0)
    assert answered, (
        f"no answer before the client had sent {sent / 2**20:.0f} MiB of a chunked upload "
        f"(limit {_LIMIT / 2**20:.0f} MiB); at its end: {outcome.label()}"
    )
    assert outcome.status == 0 or outcome.label() == "413 payload_too_large", outcome.label()
