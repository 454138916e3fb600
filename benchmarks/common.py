"""What every benchmark shares: where results go, the one-line summary, timing and memory."""
from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/x.py` as well as `python -m benchmarks.x`
    sys.path.insert(0, str(ROOT))

from workflow_scripts.files import write_json  # noqa: E402

RESULTS = ROOT / "results" / "bench"
WORK = RESULTS / "work"


def report(name: str, values: dict, summary: str, out: str | None = None) -> Path:
    """Write results/bench/<name>.json (atomically) and print the one-line summary."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    # Other jobs on the machine slow every figure down: say how busy it was.
    values = {**values, "load_average_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
    write_json(path, values)
    print(f"{name}: {summary} -> {path}", flush=True)
    return path


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's peak resident set, in MB.

    Linux: VmHWM of /proc/self/status, the high-water mark of this program's own memory map.
    (getrusage's ru_maxrss survives exec, so a child started from a big parent would report the
    parent's size.) Elsewhere getrusage.
    """
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float | None:
    """This process's resident set now, in MB (Linux)."""
    return _status_mb("VmRSS")


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def matmul_gflops(n: int = 4096, repeats: int = 3, dtype=None, device: str = "cpu") -> float:
    """The best rate of an n x n x n torch.mm: the reference peak that model throughput is
    compared with. Best of `repeats`, as a machine shared with other jobs only ever slows a run."""
    import torch

    dtype = dtype or torch.float32
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    torch.mm(a, b)  # warm-up: kernel selection, page faults
    best = float("inf")
    for _ in range(repeats):
        if device != "cpu":
            torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, b)
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * n ** 3 / best / 1e9
