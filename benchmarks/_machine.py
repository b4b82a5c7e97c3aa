"""What a benchmark ran on, so that figures from different machines can be told apart.

``python_loop_ms`` times a fixed pure-Python loop (best of three): the same run takes about as
much longer on a machine as this figure is larger. ``load_average`` is the one-minute load just
before the measurement; above ~0.5 on two cores, other work shares the cores.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "python": platform.python_version(),
        "python_loop_ms": round(_loop_ms(), 1),
        "load_average": round(os.getloadavg()[0], 2),
    }


def _loop_ms(n: int = 3_000_000) -> float:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(n):
            total += i
        best = min(best, time.perf_counter() - started)
    return best * 1000


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
