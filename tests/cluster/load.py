"""A bounded load on the cluster while a fault or a rollout happens, and what every request got.

A few closed-loop clients post one photo each again and again (every request bounded by a
client timeout), and a prober reads /healthz and /readyz twice a second. Both stop at a
deadline and after a number of requests, whichever comes first.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field

import httpx

from loadtest import photos as f

VIN = "WDD2052041F123456"


@dataclass(frozen=True)
class Answer:
    client: int
    sent: float  # time.monotonic() when sent
    latency_s: float
    status: int  # 0: no HTTP answer at all (connection refused, reset, client timeout)
    code: str | None  # the error's code, or the transport error's class name
    retry_after: str | None
    version: str | None  # model.version of a 200
    confidence: float | None

    @property
    def done(self) -> float:
        return self.sent + self.latency_s

    @property
    def kind(self) -> str:
        return "200" if self.status == 200 else f"{self.status} {self.code}"


@dataclass(frozen=True)
class Probe:
    at: float
    healthz: int
    readyz: int
    readyz_code: str | None


@dataclass
class Load:
    """Clients and a prober against base_url, started by ``start`` and ended by ``stop``."""

    base_url: str
    headers: dict[str, str]
    clients: int = 3
    seconds: float = 60.0
    max_requests: int = 5000
    client_timeout_s: float = 30.0
    image: bytes = field(default_factory=lambda: f.jpeg(300, 400, seed=5))
    answers: list[Answer] = field(default_factory=list)
    probes: list[Probe] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def start(self) -> Load:
        self._deadline = time.monotonic() + self.seconds
        self._threads = [
            threading.Thread(target=self._client, args=(i,)) for i in range(self.clients)
        ]
        self._threads.append(threading.Thread(target=self._prober))
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.client_timeout_s + 10)
        assert not any(t.is_alive() for t in self._threads), "a load thread hangs"

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _going(self) -> bool:
        return (
            not self._stop.is_set()
            and time.monotonic() < self._deadline
            and len(self.answers) < self.max_requests
        )

    def _client(self, index: int) -> None:
        with httpx.Client(
            base_url=self.base_url, headers=self.headers, timeout=self.client_timeout_s
        ) as client:
            while self._going():
                sent = time.monotonic()
                try:
                    r = client.post(
                        "/recognize",
                        files={"image": ("car.jpg", self.image, "image/jpeg")},
                        data={"vin": VIN},
                    )
                    body = r.json()
                    ok = r.status_code == 200
                    answer = Answer(
                        index,
                        sent,
                        time.monotonic() - sent,
                        r.status_code,
                        None if ok else body["error"]["code"],
                        r.headers.get("retry-after"),
                        body["model"]["version"] if ok else None,
                        body["prediction"]["confidence"] if ok else None,
                    )
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    latency = time.monotonic() - sent
                    answer = Answer(index, sent, latency, 0, type(exc).__name__, None, None, None)
                with self._lock:
                    self.answers.append(answer)
                if answer.status != 200:
                    time.sleep(0.2)  # as a client honouring Retry-After would, only faster

    def _prober(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            while self._going():
                at = time.monotonic()
                try:
                    healthz = client.get("/healthz").status_code
                    ready = client.get("/readyz")
                    readyz = ready.status_code
                    code = None if readyz == 200 else ready.json()["error"]["code"]
                except (httpx.HTTPError, ValueError, KeyError) as exc:
                    healthz, readyz, code = 0, 0, type(exc).__name__
                self.probes.append(Probe(at, healthz, readyz, code))
                self._stop.wait(max(0.0, at + 0.5 - time.monotonic()))


def counts(answers: list[Answer]) -> dict[str, int]:
    """Answers per status (and error code), e.g. {"200": 180, "503 not_ready": 12}."""
    return dict(sorted(collections.Counter(a.kind for a in answers).items()))
