"""Latency over time of a Locust run of loadtest/locustfile.py, as a PNG.

Reads ``PREFIX_requests.csv`` and ``PREFIX_stages.json`` (written by the locustfile when Locust
runs with ``--csv PREFIX``) and draws every classified request's latency, the p50 and p99 of each
2-second bin, the stages as shaded bands, and throughput and users beneath.

    python loadtest/plot.py results/loadtest-20261126-120000/locust --out latency.png

Needs matplotlib (the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root

from loadtest._stats import percentile

BIN_S = 2.0
STAGE_COLOURS = ("#dbe9f6", "#e5f5e0", "#fde0dd", "#efedf5", "#fff7bc")


def load(prefix: str) -> tuple[list[dict[str, str]], dict]:
    with open(f"{prefix}_requests.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    stages = json.loads(Path(f"{prefix}_stages.json").read_text())
    return rows, stages


def plot(prefix: str, out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    rows, summary = load(prefix)
    ok = [r for r in rows if r["success"] == "True" and r["status"] == "200"]
    failed = [r for r in rows if r["success"] != "True"]
    bins: dict[int, list[float]] = defaultdict(list)
    counts: dict[int, int] = defaultdict(int)
    for r in rows:
        counts[int(float(r["start"]) // BIN_S)] += 1
    for r in ok:
        bins[int(float(r["start"]) // BIN_S)].append(float(r["response_time_ms"]))
    centres = sorted(bins)
    x = [(b + 0.5) * BIN_S for b in centres]

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(11, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]}
    )
    for i, window in enumerate(summary["plan"]):
        for axis in (top, bottom):
            axis.axvspan(
                window["start_s"], window["end_s"], color=STAGE_COLOURS[i % len(STAGE_COLOURS)]
            )
        top.text(
            (window["start_s"] + window["end_s"]) / 2,
            1.0,
            f"{window['name']}\n{window['users']} users",
            transform=top.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    top.scatter(
        [float(r["start"]) for r in ok],
        [float(r["response_time_ms"]) for r in ok],
        s=4,
        alpha=0.35,
        color="#555555",
        label="request (200)",
    )
    if failed:
        top.scatter(
            [float(r["start"]) for r in failed],
            [float(r["response_time_ms"]) for r in failed],
            s=12,
            marker="x",
            color="#d62728",
            label="failure",
        )
    for q, colour in ((50, "#1f77b4"), (99, "#ff7f0e")):
        top.plot(x, [percentile(sorted(bins[b]), q) for b in centres], color=colour, label=f"p{q}")
    top.set_ylabel("latency (ms)")
    top.set_yscale("log")
    plain = matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}")
    top.yaxis.set_major_formatter(plain)
    top.yaxis.set_minor_formatter(plain)
    top.legend(loc="upper left", fontsize=8)
    top.grid(alpha=0.3, which="both")

    seconds = sorted(counts)
    bottom.plot(
        [(b + 0.5) * BIN_S for b in seconds],
        [counts[b] / BIN_S for b in seconds],
        color="#2ca02c",
        label="requests/s",
    )
    bottom.set_ylabel("requests/s")
    bottom.set_xlabel("seconds since start")
    bottom.grid(alpha=0.3)
    users = bottom.twinx()
    steps = [(w["start_s"], w["users"]) for w in summary["plan"]]
    if steps:
        users.step(
            [s for s, _ in steps] + [summary["plan"][-1]["end_s"]],
            [u for _, u in steps] + [steps[-1][1]],
            where="post",
            color="#9467bd",
            linestyle="--",
            label="users",
        )
    users.set_ylabel("users")
    fig.suptitle(f"Recognize load test: {len(rows)} requests, {len(failed)} failed", y=0.995)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prefix", help="the --csv PREFIX Locust ran with")
    parser.add_argument(
        "--out", type=Path, default=None, help="PNG to write (default: PREFIX_latency.png)"
    )
    args = parser.parse_args(argv)
    out = plot(args.prefix, args.out or Path(f"{args.prefix}_latency.png"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
