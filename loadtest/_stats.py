"""Percentiles, and what a server's processes cost: memory (RSS, PSS) and CPU, from /proc.

A server here is a process tree: `recognize serve` starts Ray's GCS, raylet and workers, PyTriton
starts tritonserver and a Python backend stub. All of them count, so a tree is the process, its
descendants, and every process of its session (Ray re-parents some of its helpers).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) of sorted values, linearly interpolated; None if empty."""
    if not sorted_values:
        return None
    rank = (len(sorted_values) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    value = sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (rank - low)
    return round(value, 2)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after its last ")".
    return text[text.rindex(")") + 2 :].split()


def start_time(pid: int) -> str | None:
    """When the process started (clock ticks after boot), or None once it is gone: with the
    pid, it names a process even after its pid is reused."""
    fields = _stat_fields(pid)
    return fields[19] if fields is not None else None


def process_argv(pid: int) -> list[str] | None:
    """A process's command line, or None once it is gone."""
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None


def process_tree(root: int) -> list[int]:
    """root, its descendants, and the other processes of root's session."""
    parents: dict[int, int] = {}
    sessions: dict[int, int] = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None:
            continue
        # After the command: state, ppid, pgrp, session, ...
        parents[int(entry.name)] = int(fields[1])
        sessions[int(entry.name)] = int(fields[3])
    if root not in parents:
        return []
    tree = {root} | {pid for pid, sid in sessions.items() if sid == root}
    grew = True
    while grew:
        children = {pid for pid, ppid in parents.items() if ppid in tree} - tree
        tree |= children
        grew = bool(children)
    return sorted(tree)


@dataclass(frozen=True)
class Memory:
    processes: int
    rss_mb: float
    pss_mb: float

    def as_dict(self) -> dict[str, float]:
        return {"processes": self.processes, "rss_mb": self.rss_mb, "pss_mb": self.pss_mb}


def process_memory(pid: int) -> tuple[int, int] | None:
    """(RSS, PSS) of one process in kB; None if it is gone or a kernel thread."""
    try:
        text = (PROC / str(pid) / "smaps_rollup").read_text()
    except OSError:
        return None
    rss_kb = pss_kb = 0
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key == "Rss":
            rss_kb = int(rest.split()[0])
        elif key == "Pss":
            pss_kb = int(rest.split()[0])
    return rss_kb, pss_kb


def tree_memory(root: int) -> Memory:
    """Summed RSS and PSS of a process tree (PSS splits shared pages fairly between processes)."""
    rss_kb = pss_kb = count = 0
    for pid in process_tree(root):
        memory = process_memory(pid)
        if memory is not None:
            count += 1
            rss_kb += memory[0]
            pss_kb += memory[1]
    return Memory(count, round(rss_kb / 1024, 1), round(pss_kb / 1024, 1))


def tree_cpu_seconds(root: int) -> float:
    """User + system CPU seconds the tree's live processes have used so far."""
    ticks = 0
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / CLOCK_TICKS


def service_role(argv: Sequence[str]) -> str:
    """The process group of a `recognize serve` process, by the title Ray gives its workers
    (``ray::ServeReplica:<app>:<deployment>``, ``ray::ProxyActor``) or binary (HAProxy): proxy,
    ingress, classifier, or ray (GCS, raylet, dashboard, Serve's controller, idle workers, the
    driver)."""
    title = argv[0] if argv else ""
    # Serve's Python proxy, or HAProxy and the actor that manages it (Serve's HAProxy mode).
    if title.startswith(("ray::ProxyActor", "ray::HAProxyManager")) or Path(title).name == (
        "haproxy"
    ):
        return "proxy"
    if title.startswith("ray::ServeReplica:"):
        deployment = title.split(":")[-1].split(".")[0].split(" ")[0]
        return {"Ingress": "ingress", "Classifier": "classifier"}.get(deployment, "ray")
    return "ray"


def one_role(argv: Sequence[str]) -> str:
    """A peer server's processes are one group."""
    return "server"


def role_cpu_seconds(root: int, role_of: Callable[[Sequence[str]], str]) -> dict[str, float]:
    """User + system CPU seconds so far of each process group of a tree, keyed by
    ``role_of(argv)``; each live process is counted under the pid and start time it has now,
    so a process that started during a window is counted from zero."""
    used: dict[str, float] = {}
    for pid in process_tree(root):
        fields, argv = _stat_fields(pid), process_argv(pid)
        if fields is None or argv is None:
            continue
        role = role_of(argv)
        used[role] = used.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return used


class RoleCPU:
    """CPU seconds each process group of a tree used while this context was open (the load
    generator's own CPU is measured by the load processes themselves)."""

    def __init__(self, root: int, role_of: Callable[[Sequence[str]], str]) -> None:
        self.root = root
        self.role_of = role_of
        self.used: dict[str, float] = {}

    def __enter__(self) -> RoleCPU:
        self._before = role_cpu_seconds(self.root, self.role_of)
        return self

    def __exit__(self, *exc: object) -> None:
        after = role_cpu_seconds(self.root, self.role_of)
        self.used = {
            role: max(0.0, seconds - self._before.get(role, 0.0))
            for role, seconds in sorted(after.items())
        }

    def ms_per_request(self, requests: int) -> dict[str, float]:
        if not requests:
            return {}
        return {role: round(1000 * s / requests, 2) for role, s in self.used.items()}
