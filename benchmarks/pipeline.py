"""Benchmark: the README's main command, `marketing-ml run`, from an empty data directory, as a user runs it.

Creates a new data directory, runs `marketing-ml run` (every default step: data, features, models, registry,
uplift, inference) as a subprocess with the venv's `marketing-ml` script, and reads the CLI's own lines
(`step NAME: ok in S s, ...`) for each step's wall time. Around it: the command's total wall time, the CPU
time and the peak memory (largest single process) of everything it started, the load average before and
after, and the machine.

    python benchmarks/pipeline.py [--clients 50000] [--days 365] [--output PATH] [--keep]

Goals (issue 17), at the default scale (50,000 clients x 365 days) on 2 cores: the whole run <= 360 s;
the features backfill of 365 days <= 90 s; the models step <= 120 s; the inference step (35 days) <= 60 s.
A smaller world (`--clients 3000 --days 160`) checks the script; write it with `--output` elsewhere, so
it never replaces the results, which are measured at the default scale.
Results: benchmarks/results/pipeline.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_file import load_average, write_results

DEFAULT_CLIENTS = 50_000
DEFAULT_DAYS = 365
GOAL_TOTAL_SECONDS = 360
# per-step goals of the issue; the steps without one count towards the total only
GOAL_STEP_SECONDS = {"features": 90, "models": 120, "inference": 60}
STEP_LINE = re.compile(r"^step (?P<step>\w+): (?P<status>ok|FAILED) in (?P<seconds>[\d.]+)s, "
                       r"(?P<materializations>\d+) asset materializations")
# settings a user's shell may hold that would change the world or the backend the default run builds
WORLD_VARIABLES = ("MARKETING_ML_HOME", "MARKETING_ML_WAREHOUSE", "MARKETING_ML_CLIENTS", "MARKETING_ML_HISTORY_DAYS",
                   "MARKETING_ML_START_DATE", "MARKETING_ML_SEED", "MARKETING_ML_REGIME_SHIFT",
                   "MARKETING_ML_EFFECT_CORRELATION")


def default_steps() -> list[str]:
    """The steps `marketing-ml run` runs without --step, in order: the CLI's own list."""
    from marketing_ml.pipeline.steps import STEPS

    return [s.name for s in STEPS if s.name != "streaming"]


def cli_command(clients: int, days: int) -> list[str]:
    """`.venv/bin/marketing-ml run`, the README's command; the world options only when they differ from
    the defaults, so the default benchmark runs exactly the command a user types."""
    script = Path(sys.executable).with_name("marketing-ml")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "marketing_ml.cli"]
    command.append("run")
    if clients != DEFAULT_CLIENTS:
        command += ["--clients", str(clients)]
    if days != DEFAULT_DAYS:
        command += ["--days", str(days)]
    return command


def run_pipeline(command: list[str], data_dir: Path) -> dict:
    """Run `command` on the empty `data_dir`, echoing its output; its steps, wall time, CPU and peak memory."""
    env = {k: v for k, v in os.environ.items() if k not in WORLD_VARIABLES} | {"MARKETING_ML_HOME": str(data_dir)}
    steps = []
    began = time.perf_counter()
    # stderr (Dagster's and dbt's logs) goes to the terminal as it would for a user; stdout is read for the steps
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True, bufsize=1) as process:
        for line in process.stdout:
            print(line, end="", flush=True)
            match = STEP_LINE.match(line)
            if match:
                steps.append({"step": match["step"], "status": match["status"], "seconds": float(match["seconds"]),
                              "asset_materializations": int(match["materializations"])})
    total = time.perf_counter() - began
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # every process the command started and waited for
    return {
        "returncode": process.returncode,
        "total_seconds": round(total, 1),
        "cpu_seconds": round(children.ru_utime + children.ru_stime, 1),
        "peak_rss_mb": round(children.ru_maxrss / 1024),  # KB on Linux: the largest single process, not the sum
        "steps": steps,
    }


def machine() -> dict:
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    return {"platform": platform.platform(), "processor": platform.machine(), "memory_gb": round(memory, 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS)
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--output", type=Path, help="results file (default benchmarks/results/pipeline.json); "
                        "use it for a smaller world")
    parser.add_argument("--keep", action="store_true", help="keep the data directory the run built")
    args = parser.parse_args()
    default_scale = (args.clients, args.days) == (DEFAULT_CLIENTS, DEFAULT_DAYS)
    if not default_scale and args.output is None:
        raise SystemExit("the results are measured at the default scale: write a smaller world with --output PATH")
    root = Path(tempfile.mkdtemp(prefix="mm_pipeline_bench_"))
    data_dir = root / "data"  # does not exist yet: the run starts from nothing, as on a new checkout
    command = cli_command(args.clients, args.days)
    print(f"MARKETING_ML_HOME={data_dir} {' '.join(command)}", flush=True)
    load_before = load_average()
    measured = run_pipeline(command, data_dir)
    load_after = load_average()
    if args.keep:
        print(f"kept {data_dir}")
    else:
        shutil.rmtree(root)
    steps = [{**s, "goal_seconds": GOAL_STEP_SECONDS.get(s["step"])} for s in measured["steps"]]
    failed_step = next((s["step"] for s in steps if s["status"] != "ok"), None)
    completed = measured["returncode"] == 0 and failed_step is None
    # a failed run is written too, so what it measured is not lost; its goals say what it did not reach
    seconds = {s["step"]: s["seconds"] for s in steps if s["status"] == "ok"}
    goals = {"total_seconds": measured["total_seconds"] if completed else None, "goal_total_seconds": GOAL_TOTAL_SECONDS}
    for name in default_steps():
        goals[f"{name}_seconds"] = seconds.get(name)
        if name in GOAL_STEP_SECONDS:
            goals[f"goal_{name}_seconds"] = GOAL_STEP_SECONDS[name]
    world = {"clients": args.clients, "days": args.days, "default_scale": default_scale}
    if not default_scale:
        world["note"] = (f"a trial at {args.clients:,} clients x {args.days} days, not the goals' scale: "
                         f"rerun `python benchmarks/pipeline.py` for {DEFAULT_CLIENTS:,} x {DEFAULT_DAYS}")
    write_results("pipeline", {
        "world": world,
        "command": " ".join(["marketing-ml", *command[command.index("run"):]]),
        "completed": completed,
        "failed_step": failed_step,
        "returncode": measured["returncode"],
        "goals": goals,
        "steps": steps,
        "steps_seconds_sum": round(sum(s["seconds"] for s in steps), 1),
        "total_seconds": measured["total_seconds"],
        "cpu_seconds": measured["cpu_seconds"],
        "peak_rss_mb": measured["peak_rss_mb"],
    }, path=args.output, load_average_before=load_before, load_average_after=load_after, **machine())
    print(json.dumps(goals, indent=2))
    if not completed:
        raise SystemExit(f"`{' '.join(command)}` failed (exit code {measured['returncode']}, step {failed_step})")


if __name__ == "__main__":
    main()
