"""Shared helpers of the benchmarks: interleaved timing, environment record, atomic JSON output.

Every benchmark measures the variants it compares side by side in one process, interleaving the
repetitions (A B C A B C ...) and reporting medians, so that load from other processes on the
machine affects all variants alike and cancels in the ratios.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import torch

ROOT = Path(__file__).resolve().parents[1]
OUT_DIR = ROOT / "reports" / "benchmarks"


def interleaved(cases: dict[str, Callable[[], object]], repeats: int = 15, inner: int = 3, warmup: int = 2) -> dict[str, dict]:
    """Median and spread of the seconds per call of each case, timed in interleaved rounds."""
    for fn in cases.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in cases.items():
            started = time.perf_counter()
            for _ in range(inner):
                fn()
            samples[name].append((time.perf_counter() - started) / inner)
    return {
        name: {
            "median_s": statistics.median(s),
            "min_s": min(s),
            "q1_s": statistics.quantiles(s, n=4)[0] if len(s) > 1 else s[0],
            "q3_s": statistics.quantiles(s, n=4)[2] if len(s) > 1 else s[0],
            "repeats": len(s),
        }
        for name, s in samples.items()
    }


def environment() -> dict:
    """What the numbers were measured on."""
    return {
        "torch": torch.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_json(name: str, payload: dict, out_dir: Path | None = None) -> Path:
    """Write ``reports/benchmarks/<name>.json`` atomically (temp file, then rename)."""
    out_dir = Path(out_dir) if out_dir is not None else OUT_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    tmp = out_dir / f".{name}.json.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def table(rows: list[list], header: list[str]) -> str:
    """A plain-text table (also valid Markdown)."""
    cells = [header] + [[f"{c:.3g}" if isinstance(c, float) else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(cells[0]), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(r) for r in cells[1:]])
