"""Audit a folder of dealer photos against their VINs, as the Geofence portal does.

    python examples/portal_integration.py PHOTOS [--url URL] [--api-key KEY] [--concurrency N]

PHOTOS is either

* a folder of photos named after the car's VIN: ``WDD2052041F123456.jpg`` (anything after an
  underscore is ignored, so ``WDD2052041F123456_front.jpg`` works too; JPEG, PNG, WebP), or
* a CSV file with a header ``photo,vin``; photo paths are relative to the CSV's folder.

Every photo is sent to ``POST /recognize`` through the async client, at most ``--concurrency``
at a time, each with its own audit id as ``X-Request-ID``. A progress bar runs on stderr; the
table of verdicts goes to stdout:

    photo  VIN  expected parent  predicted parent  confidence  verdict  latency

``confidence`` is the model's probability for its top class (whose parent is the predicted
parent); the verdict itself is decided on parent classes, see the README. The exit status is 0 when
every photo got a verdict, 1 when any request failed (its error is listed under the table),
2 for bad arguments. The API key comes from ``--api-key`` or ``RECOGNIZE_API_KEY``.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from service.client import (
    AsyncRecognizeClient,
    RecognizeAPIError,
    RecognizeClientError,
    RecognizeResponse,
)

PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


@dataclass
class Job:
    photo: Path
    vin: str


@dataclass
class Outcome:
    job: Job
    audit_id: str
    latency_ms: float
    result: RecognizeResponse | None = None
    error: RecognizeClientError | None = None


def load_jobs(source: Path) -> list[Job]:
    """The photos to audit and their VINs, from a CSV ``photo,vin`` or a folder's file names."""
    if source.is_file():
        with source.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or not {"photo", "vin"} <= set(reader.fieldnames):
                raise ValueError(f"{source}: the CSV needs a header with 'photo' and 'vin'")
            return [
                Job(source.parent / (row["photo"] or "").strip(), (row["vin"] or "").strip())
                for row in reader
            ]
    if source.is_dir():
        photos = sorted(p for p in source.iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)
        return [Job(p, p.stem.split("_")[0].upper()) for p in photos]
    raise ValueError(f"{source}: neither a CSV file nor a folder")


class ProgressBar:
    """A one-line text progress bar on stderr (redrawn in place)."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.total, self.stream, self.width = total, stream, width
        self.done = self.failed = 0
        self.started = time.perf_counter()

    def advance(self, failed: bool) -> None:
        self.done += 1
        self.failed += failed
        self.draw()

    def draw(self) -> None:
        share = self.done / self.total if self.total else 1.0
        filled = round(share * self.width)
        rate = self.done / max(time.perf_counter() - self.started, 1e-9)
        self.stream.write(
            f"\r[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} "
            f"{share:4.0%}  {rate:5.1f} photos/s  {self.failed} failed"
        )
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


async def audit(
    jobs: list[Job], client: AsyncRecognizeClient, concurrency: int, progress: ProgressBar
) -> list[Outcome]:
    """Recognise every job, at most ``concurrency`` at a time; outcomes in the jobs' order."""
    slots = asyncio.BoundedSemaphore(concurrency)

    async def one(job: Job) -> Outcome:
        async with slots:
            outcome = Outcome(job, audit_id=f"audit-{uuid.uuid4().hex[:12]}", latency_ms=0.0)
            started = time.perf_counter()
            try:
                outcome.result = await client.recognize(
                    job.photo, job.vin, request_id=outcome.audit_id
                )
            except (RecognizeClientError, OSError) as exc:
                outcome.error = (
                    exc
                    if isinstance(exc, RecognizeClientError)
                    else RecognizeClientError(f"cannot read {job.photo}: {exc}")
                )
            outcome.latency_ms = (time.perf_counter() - started) * 1000
        progress.advance(failed=outcome.error is not None)
        return outcome

    progress.draw()
    try:
        return await asyncio.gather(*(one(job) for job in jobs))
    finally:
        progress.close()


def render(outcomes: list[Outcome]) -> str:
    """The verdict table, then the errors, then a one-line summary."""
    header = (
        "photo",
        "VIN",
        "expected parent",
        "predicted parent",
        "confidence",
        "verdict",
        "latency",
    )
    rows = []
    for o in outcomes:
        if o.result is not None:
            r = o.result
            rows.append(
                (
                    o.job.photo.name,
                    o.job.vin,
                    r.vin.expected_parent or "-",
                    r.prediction.parent,
                    f"{r.prediction.confidence:.3f}",
                    r.verdict,
                    f"{o.latency_ms:.0f} ms",
                )
            )
        else:
            code = o.error.code if isinstance(o.error, RecognizeAPIError) else "no_answer"
            latency = f"{o.latency_ms:.0f} ms"
            rows.append((o.job.photo.name, o.job.vin, "-", "-", "-", f"ERROR {code}", latency))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    right = {4, 6}  # numbers right-aligned

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(header), line(tuple("-" * w for w in widths)), *(line(row) for row in rows)]
    failed = [o for o in outcomes if o.error is not None]
    if failed:
        out += ["", "errors:"]
        out += [f"  {o.job.photo.name} ({o.audit_id}): {o.error}" for o in failed]
    verdicts = Counter(o.result.verdict for o in outcomes if o.result is not None)
    summary = ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())) or "no verdicts"
    out += ["", f"{len(outcomes)} photos: {summary}, {len(failed)} failed"]
    return "\n".join(out)


async def run(args: argparse.Namespace, jobs: list[Job]) -> int:
    async with AsyncRecognizeClient(
        args.url, api_key=args.api_key, timeout=(5.0, args.timeout)
    ) as client:
        outcomes = await audit(jobs, client, args.concurrency, ProgressBar(len(jobs)))
    print(render(outcomes))
    return 1 if any(o.error is not None for o in outcomes) else 0


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1 (got {number})")
    return number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Audit a folder of dealer photos against their VINs (Recognize service).",
        epilog="PHOTOS: a folder of <VIN>.jpg files, or a CSV file with columns photo,vin.",
    )
    parser.add_argument("photos", type=Path, metavar="PHOTOS", help="folder or CSV file")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the service's base URL")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("RECOGNIZE_API_KEY"),
        help="API key (default: $RECOGNIZE_API_KEY)",
    )
    parser.add_argument(
        "--concurrency", type=positive_int, default=8, help="requests in flight (default 8)"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for each answer (default 60)"
    )
    args = parser.parse_args(argv)
    try:
        jobs = load_jobs(args.photos)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))  # exits 2
    if not jobs:
        print(f"{args.photos}: no photos to audit", file=sys.stderr)
        return 1
    return asyncio.run(run(args, jobs))


if __name__ == "__main__":
    sys.exit(main())
