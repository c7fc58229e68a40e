"""What every benchmark shares: its results file in benchmarks/results/, stamped with the machine and the
day, and a scratch copy of a built world for benchmarks that write to one."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import tempfile
from pathlib import Path

RESULTS_DIR = Path(__file__).parent / "results"


def load_average() -> list[float]:
    """The 1, 5 and 15-minute load: how busy the shared machine was, which every timing depends on."""
    return [round(x, 2) for x in os.getloadavg()]


def write_results(benchmark: str, sections: dict, path: Path | None = None, **machine: object) -> Path:
    """Write `<benchmark>.json` (or `path`, for a trial run that must not replace the results): the
    benchmark's name, the machine (plus `machine` extras such as load averages), the day, then the
    benchmark's own sections."""
    path = path or RESULTS_DIR / f"{benchmark}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "benchmark": benchmark,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), **machine},
        "measured_on": dt.date.today().isoformat(),
        **sections,
    }, indent=2, default=str) + "\n")
    print(f"wrote {path}")
    return path


def scratch_copy(data_dir: Path, prefix: str) -> Path:
    """A copy of a built data directory in a new temporary folder, so a benchmark that writes (streams,
    scores) leaves the original as it was; the landing zone and dbt's per-run artifacts are not copied."""
    copy = Path(tempfile.mkdtemp(prefix=prefix)) / "world"
    print(f"copying {data_dir} to {copy}", flush=True)
    shutil.copytree(data_dir, copy, ignore=shutil.ignore_patterns("landing", "dbt"))
    return copy
