"""Load-test stages as data, and the plan that turns them into time windows and user counts.

Kept apart from the locustfile so that it can be tested without importing Locust (which
monkey-patches the whole process with gevent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_PEAK_USERS = 16


@dataclass(frozen=True)
class Stage:
    """One phase of the run: how long, and how many users as a share of the peak."""

    name: str
    duration_s: float  # in the default run; scaled so that all stages fill -t when given
    users_share: float  # of the peak user count (-u, default DEFAULT_PEAK_USERS)
    spawn_rate_share: float  # users started per second, as a share of the peak


@dataclass(frozen=True)
class StageWindow:
    name: str
    start_s: float
    end_s: float
    users: int
    spawn_rate: float


def stage_plan(
    stages: Sequence[Stage], run_time_s: float | None, peak_users: int | None
) -> list[StageWindow]:
    """Concrete stage windows: durations scaled to run_time_s, users to peak_users."""
    total = sum(s.duration_s for s in stages)
    scale = (run_time_s / total) if run_time_s else 1.0
    peak = peak_users or DEFAULT_PEAK_USERS
    windows, start = [], 0.0
    for stage in stages:
        end = start + stage.duration_s * scale
        users = max(1, round(stage.users_share * peak))
        windows.append(
            StageWindow(stage.name, start, end, users, max(1.0, stage.spawn_rate_share * peak))
        )
        start = end
    return windows
