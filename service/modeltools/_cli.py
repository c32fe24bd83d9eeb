"""What the model tools' commands share: run one step, print its JSON or a one-line error."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any


def run_step(prog: str, step: Callable[[], Any], expected: tuple[type[Exception], ...]) -> int:
    """Print ``step()``'s result as JSON (exit 0), or an expected error as one line (exit 1)."""
    try:
        result = step()
    except expected as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=1))
    return 0
