"""The dealer-audit workload for Locust: photos and VINs as an audit portal sends them.

Run it headless against any deployment (``loadtest/run.sh URL`` writes every report)::

    locust -f loadtest/locustfile.py --headless --host http://127.0.0.1:8000 \
        -u 16 -r 16 -t 3m --csv results/run/locust --only-summary

Each user uploads a photo with a VIN to ``POST /recognize``, then thinks for 0.5-1.5 s:
- photos: dealer JPEGs of about 460x706 (varied), 8 % PNG, 3 % full-resolution 4032x3024 phone
  photos, all generated at start-up (``loadtest/_workload.py``, ``loadtest/photos.py``);
- VINs: 82 % name a parent class (the photo then matches or not), 7 % an unknown model code,
  7 % another make, 4 % malformed. A malformed VIN must be answered 422 ``invalid_vin``; that
  answer is a success, anything else a failure;
- headers: ``X-Request-ID`` on every request (the response must carry it back), and
  ``Authorization: Bearer $RECOGNIZE_API_KEY`` when that variable is set.

The load follows ``STAGES`` (warm-up, steady, burst, recovery). ``-t`` scales the stages'
durations to that total and ``-u`` sets the burst's user count (the others are fractions of it),
so the same shape runs for 20 s in a test and for minutes against a cluster. At the end it prints
p50/p90/p99 latency and throughput per stage and the verdict mix, and, with ``--csv PREFIX``,
writes ``PREFIX_stages.json`` and every request to ``PREFIX_requests.csv`` (for
``loadtest/plot.py``). Per-stage figures need the single-process runner (no ``--processes``).
"""

from __future__ import annotations

import csv
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from locust import HttpUser, LoadTestShape, between, events, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root

from loadtest._stages import Stage, StageWindow, stage_plan
from loadtest._stats import percentile
from loadtest._workload import INVALID, PhotoMix, VinMix, photo_mix, vin_mix
from service.core.errors import InvalidVIN
from service.core.verdict import Verdict

API_KEY_ENV = "RECOGNIZE_API_KEY"
SEED_ENV = "LOADTEST_SEED"
VERDICTS = tuple(Verdict)


# A quiet warm-up (connections, the service's first batches), a long steady phase well inside
# the capacity, a burst at the peak (the queue must absorb it without errors), and a recovery
# at the steady load that shows whether latency comes back once the burst is over.
STAGES: tuple[Stage, ...] = (
    Stage("warm-up", duration_s=20, users_share=0.125, spawn_rate_share=0.125),
    Stage("steady", duration_s=100, users_share=0.4, spawn_rate_share=0.5),
    Stage("burst", duration_s=40, users_share=1.0, spawn_rate_share=1.0),
    Stage("recovery", duration_s=20, users_share=0.4, spawn_rate_share=1.0),
)


class AuditStages(LoadTestShape):
    """Runs ``STAGES`` once, then stops the test."""

    use_common_options = True  # read -t and -u instead of ignoring them

    def __init__(self) -> None:
        super().__init__()
        self.plan: list[StageWindow] | None = None

    def windows(self) -> list[StageWindow]:
        if self.plan is None:
            options = self.runner.environment.parsed_options if self.runner else None
            self.plan = stage_plan(
                STAGES,
                getattr(options, "run_time", None),
                getattr(options, "num_users", None),
            )
            RECORDER.plan = self.plan
        return self.plan

    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        for window in self.windows():
            if elapsed < window.end_s:
                return window.users, window.spawn_rate
        return None


# --- what each request did, for the per-stage report ---------------------------------------


@dataclass(frozen=True)
class RequestRecord:
    start: float  # seconds since the test started
    name: str
    vin_kind: str
    response_time_ms: float
    status: int
    success: bool
    verdict: str
    batch_size: int


class Recorder:
    """Every request's latency, tagged later with the stage its start time falls into."""

    def __init__(self) -> None:
        self.records: list[RequestRecord] = []
        self.started: float | None = None
        self.plan: list[StageWindow] = []
        self.lock = threading.Lock()

    def add(self, record: RequestRecord) -> None:
        with self.lock:
            self.records.append(record)

    def stage_of(self, start: float) -> str:
        for window in self.plan:
            if start < window.end_s:
                return window.name
        return self.plan[-1].name if self.plan else "all"

    def summary(self) -> dict[str, Any]:
        stages = []
        windows = self.plan or [StageWindow("all", 0.0, float("inf"), 0, 0.0)]
        for window in windows:
            rows = [r for r in self.records if window.start_s <= r.start < window.end_s]
            # Latency of the photos the service classified; expected 422s answer in a millisecond
            # and would flatter the percentiles.
            timed = sorted(r.response_time_ms for r in rows if r.success and r.status == 200)
            span = min(window.end_s, self.last_end()) - window.start_s
            batches = [r.batch_size for r in rows if r.batch_size]
            stages.append(
                {
                    "stage": window.name,
                    "users": window.users,
                    "seconds": round(max(0.0, span), 1),
                    "requests": len(rows),
                    "failures": sum(not r.success for r in rows),
                    "throughput_rps": round(len(rows) / span, 2) if span > 0 else 0.0,
                    "p50_ms": percentile(timed, 50),
                    "p90_ms": percentile(timed, 90),
                    "p99_ms": percentile(timed, 99),
                    "mean_batch": round(sum(batches) / len(batches), 2) if batches else None,
                    "verdicts": dict(Counter(r.verdict for r in rows if r.verdict)),
                }
            )
        return {
            "stages": stages,
            "plan": [asdict(w) for w in self.plan],
            "verdicts": dict(Counter(r.verdict for r in self.records if r.verdict)),
            "vin_kinds": dict(Counter(r.vin_kind for r in self.records)),
            "requests": len(self.records),
            "failures": sum(not r.success for r in self.records),
        }

    def last_end(self) -> float:
        return max((r.start + r.response_time_ms / 1000 for r in self.records), default=0.0)


RECORDER = Recorder()
WORKLOAD: dict[str, Any] = {}


@events.init.add_listener
def _make_workload(environment: Any, **_: Any) -> None:
    """Photos and VINs are made once per process, before the first user starts."""
    seed = int(os.environ.get(SEED_ENV, "0"))
    started = time.perf_counter()
    photos, vins = photo_mix(seed=seed), vin_mix(seed=seed)
    WORKLOAD.update(photos=photos, vins=vins)
    print(
        f"workload ready in {time.perf_counter() - started:.1f}s: {photos.describe()}; "
        f"{vins.describe()}",
        flush=True,
    )


@events.test_start.add_listener
def _test_start(**_: Any) -> None:
    RECORDER.started = time.time()


@events.request.add_listener
def _record(
    name: str,
    response_time: float,
    response: Any,
    context: dict[str, Any],
    exception: BaseException | None,
    start_time: float | None = None,
    **_: Any,
) -> None:
    if RECORDER.started is None or not context:
        return
    began = (start_time or time.time() - response_time / 1000) - RECORDER.started
    RECORDER.add(
        RequestRecord(
            start=round(began, 4),
            name=name,
            vin_kind=context.get("vin_kind", ""),
            response_time_ms=round(response_time, 2),
            status=getattr(response, "status_code", 0) or 0,
            success=exception is None,
            verdict=context.get("verdict", ""),
            batch_size=context.get("batch_size", 0),
        )
    )


@events.quitting.add_listener
def _report(environment: Any, **_: Any) -> None:
    if not RECORDER.records:
        return
    summary = RECORDER.summary()
    print_summary(summary)
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if prefix:
        Path(f"{prefix}_stages.json").write_text(json.dumps(summary, indent=2) + "\n")
        with open(f"{prefix}_requests.csv", "w", newline="") as out:
            writer = csv.writer(out)
            writer.writerow(["stage", *RequestRecord.__dataclass_fields__])
            for record in sorted(RECORDER.records, key=lambda r: r.start):
                writer.writerow([RECORDER.stage_of(record.start), *asdict(record).values()])


def print_summary(summary: dict[str, Any]) -> None:
    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f}"

    lines = [
        "",
        "Per stage (latency of classified photos, 200s only; throughput counts every request)",
        f"{'stage':<10} {'users':>5} {'secs':>6} {'reqs':>6} {'fails':>5} {'req/s':>7} "
        f"{'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'batch':>5}  verdicts",
    ]
    for s in summary["stages"]:
        verdicts = " ".join(f"{v}={s['verdicts'].get(v, 0)}" for v in VERDICTS)
        batch = "-" if s["mean_batch"] is None else f"{s['mean_batch']:.1f}"
        lines.append(
            f"{s['stage']:<10} {s['users']:>5} {s['seconds']:>6.1f} {s['requests']:>6} "
            f"{s['failures']:>5} {s['throughput_rps']:>7.2f} {ms(s['p50_ms']):>7} "
            f"{ms(s['p90_ms']):>7} {ms(s['p99_ms']):>7} {batch:>5}  {verdicts}"
        )
    total = sum(summary["verdicts"].values()) or 1
    mix = ", ".join(f"{v} {summary['verdicts'].get(v, 0) / total:.0%}" for v in VERDICTS)
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(summary["vin_kinds"].items()))
    lines.append(f"verdict mix: {mix}  (VINs sent: {kinds})")
    print("\n".join(lines), flush=True)


# --- the user ------------------------------------------------------------------------------


class AuditPortal(HttpUser):
    """One audit clerk: upload a photo with the car's VIN, read the verdict, think, repeat."""

    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.photos: PhotoMix = WORKLOAD["photos"]
        self.vins: VinMix = WORKLOAD["vins"]
        api_key = os.environ.get(API_KEY_ENV)
        self.auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    @task
    def recognize(self) -> None:
        photo = self.photos.pick(self.rng)
        vin = self.vins.pick(self.rng)
        request_id = uuid.uuid4().hex
        if vin.kind == INVALID:
            name = "/recognize [invalid VIN, 422 expected]"
        elif photo.kind == "phone":
            name = "/recognize [phone photo 4032x3024]"
        else:
            name = "/recognize"
        with self.client.post(
            "/recognize",
            files={"image": (photo.name, photo.data, photo.content_type)},
            data={"vin": vin.vin},
            headers={"X-Request-ID": request_id, **self.auth},
            name=name,
            context={"vin_kind": vin.kind},
            catch_response=True,
        ) as response:
            check_response(response, request_id, expect_invalid=vin.kind == INVALID)


def check_response(response: Any, request_id: str, *, expect_invalid: bool) -> None:
    """Success only for the answer the contract promises; the reason names what was wrong."""
    if not response.status_code:
        response.failure(f"no response: {response.error!r}")
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = (response.text or "")[:200]
        response.failure(f"HTTP {response.status_code}: body is not JSON: {text!r}")
        return
    if expect_invalid:
        code = (body.get("error") or {}).get("code")
        if response.status_code == InvalidVIN.status_code and code == InvalidVIN.code:
            response.success()
        else:
            response.failure(
                f"expected {InvalidVIN.status_code} {InvalidVIN.code}, "
                f"got {response.status_code} {code}"
            )
        return
    if response.status_code != 200:
        error = body.get("error") or {}
        response.failure(
            f"HTTP {response.status_code} {error.get('code')}: {error.get('message', '')[:200]}"
        )
        return
    if body.get("verdict") not in VERDICTS:
        response.failure(f"unknown verdict {body.get('verdict')!r}")
        return
    if body.get("request_id") != request_id:
        response.failure(f"X-Request-ID {request_id} not kept (got {body.get('request_id')!r})")
        return
    # The request event reads this context: it carries the verdict into the per-stage report.
    response.request_meta["context"].update(
        verdict=body["verdict"], batch_size=int(body.get("batch_size") or 0)
    )
    response.success()
