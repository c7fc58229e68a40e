"""Benchmark: event file landed -> new score visible in the real-time API, through Dagster's own daemon.

Copies a data directory that holds features, an online feature table and @champion models (built by
`marketing-ml run`, or the serving benchmark's world), then starts, on this machine only:
- `dagster-daemon run` on the project: the landing_zone_sensor (minimum interval 5 s) requests a run per
  batch of new files; the run ingests them (`streamed_events`) and rescores the clients they touch
  (`realtime_scores`: dbt `client_features_online`, the champions, the online feature table);
- `marketing-ml serve` with a 1 s online-feature poll.
Then streams the next day's simulated events, one file every `--interval` seconds, and for each file polls
`GET /v1/clients/{id}/scores` for a client of that file until the response's `features_updated_at` is
later than the moment the file landed. That wait is the latency; the Dagster run records split it into
sensor + launch, run, and the API's refresh.

    python benchmarks/streaming.py --data-dir DIR [--files 6] [--interval 30] [--events-per-file 300]

Goal (issue #7): landed -> visible <= 30 s. Results: benchmarks/results/streaming.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
from results_file import load_average, scratch_copy, write_results

REPO = Path(__file__).resolve().parents[1]
API_KEY = "streaming-benchmark-key"
POLL_SECONDS = 0.2
GIVE_UP_SECONDS = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(url: str, process: subprocess.Popen, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the API exited with {process.returncode} before it was ready")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise SystemExit(f"the API was not ready within {seconds:.0f}s")


def watch(url: str, client_id: int, landed: dt.datetime, out: dict) -> None:
    """Poll until the client's served feature row is newer than the file (bounded)."""
    began = time.monotonic()
    with httpx.Client(headers={"X-API-Key": API_KEY}, timeout=5) as http:
        while time.monotonic() - began < GIVE_UP_SECONDS:
            response = http.get(f"{url}/v1/clients/{client_id}/scores")
            if response.status_code == 200:
                updated = response.json().get("features_updated_at")
                if updated and dt.datetime.fromisoformat(updated) > landed:
                    out["latency_seconds"] = round(time.monotonic() - began, 2)
                    out["visible_at"] = dt.datetime.now(dt.UTC).isoformat()
                    return
            time.sleep(POLL_SECONDS)
    out["latency_seconds"] = None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True, help="a built data directory (copied, not changed)")
    parser.add_argument("--files", type=int, default=6)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between files")
    parser.add_argument("--events-per-file", type=int, default=300)
    args = parser.parse_args()

    import dagster as dg
    import duckdb

    from marketing_ml.settings import load_settings
    from marketing_ml.streaming.producer import stream

    work = scratch_copy(args.data_dir, "mm_streaming_bench_")
    env = {**os.environ, "MARKETING_ML_HOME": str(work), "DAGSTER_HOME": str(work / "dagster_home"),
           "MARKETING_ML_API_KEYS": API_KEY, "PYTHONPATH": str(REPO)}
    os.environ.update({k: env[k] for k in ("MARKETING_ML_HOME", "DAGSTER_HOME")})
    settings = load_settings()
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as conn:
        last_day = conn.execute("select max(event_date) from raw.raw_marketing_events").fetchone()[0]
        online = set(conn.execute("select client_id from features.online_client_features").fetchdf()["client_id"])
    day = last_day + dt.timedelta(days=1)

    bin_dir = Path(sys.executable).parent
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    logs = work.parent
    daemon = subprocess.Popen([str(bin_dir / "dagster-daemon"), "run", "-m", "marketing_ml.definitions"], env=env,
                              cwd=REPO, stdout=open(logs / "daemon.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    api = subprocess.Popen([str(bin_dir / "marketing-ml"), "serve", "--port", str(port), "--feature-poll-seconds", "1",
                            "--log-level", "warning"], env=env, cwd=REPO, stdout=open(logs / "api.log", "w"),
                           stderr=subprocess.STDOUT, start_new_session=True)
    files: list[dict] = []
    watchers: list[threading.Thread] = []
    try:
        wait_until_ready(url, api, 300)
        print(f"API ready on {url}; streaming {args.files} files of {day}, one every {args.interval:g}s", flush=True)

        def on_file(path: Path, records: int) -> None:
            landed = dt.datetime.now(dt.UTC)
            try:
                lines = path.read_text().splitlines()
            except FileNotFoundError:  # already ingested and archived
                lines = (settings.landing_dir / "archive" / path.name).read_text().splitlines()
            clients = []
            for line in lines:
                try:
                    clients.append(int(json.loads(line)["client_id"]))
                except (ValueError, KeyError, TypeError):
                    continue
            candidates = [c for c in clients if c in online]
            record = {"file": path.name, "records": records, "landed_at": landed.isoformat(), "client_id": candidates[-1]}
            files.append(record)
            watcher = threading.Thread(target=watch, args=(url, candidates[-1], landed, record), daemon=True)
            watcher.start()
            watchers.append(watcher)
            print(f"  landed {path.name} ({records} records)", flush=True)

        stream(settings.simulation, settings.landing_dir, rate=args.events_per_file / args.interval,
               duration=args.files * args.interval, batch_seconds=args.interval, first_day=day, on_file=on_file)
        for watcher in watchers:
            watcher.join(GIVE_UP_SECONDS + 10)
    finally:
        for process in (api, daemon):
            os.killpg(process.pid, signal.SIGTERM)
        for process in (api, daemon):
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    instance = dg.DagsterInstance.from_config(str(work / "dagster_home"))
    runs = []
    for record in instance.get_run_records(dg.RunsFilter(tags={"dagster/sensor_name": "landing_zone_sensor"})):
        stats = instance.get_run_stats(record.dagster_run.run_id)
        runs.append({"status": record.dagster_run.status.value, "created": record.create_timestamp.timestamp(),
                     "started": stats.start_time, "ended": stats.end_time})
    for record in files:
        landed = dt.datetime.fromisoformat(record["landed_at"]).timestamp()
        # the first run created after the file landed is the one that ingested it
        run = min((r for r in runs if r["created"] >= landed), key=lambda r: r["created"], default=None)
        if run and run["started"] and run["ended"] and record.get("visible_at"):
            visible = dt.datetime.fromisoformat(record["visible_at"]).timestamp()
            record["breakdown_seconds"] = {
                "landed_to_run_requested": round(run["created"] - landed, 2),
                "run_queued_and_launched": round(run["started"] - run["created"], 2),
                "run_ingest_and_rescore": round(run["ended"] - run["started"], 2),
                "run_end_to_api_visible": round(visible - run["ended"], 2),
            }
    latencies = [f["latency_seconds"] for f in files if f.get("latency_seconds") is not None]
    write_results("streaming", {
        "world": {"clients": settings.simulation.n_clients, "online_clients": len(online), "streamed_day": day.isoformat()},
        "setup": {"files": args.files, "interval_seconds": args.interval, "events_per_file": args.events_per_file,
                  "sensor_minimum_interval_seconds": 5, "api_feature_poll_seconds": 1, "client_poll_seconds": POLL_SECONDS},
        "goals": {"goal_seconds": 30, "files_visible": len(latencies), "files": len(files),
                  "p50_seconds": round(float(np.median(latencies)), 2) if latencies else None,
                  "max_seconds": max(latencies) if latencies else None},
        "files": files,
        "runs": [{k: v for k, v in r.items() if k == "status"} | {"seconds": round(r["ended"] - r["started"], 2)}
                 for r in runs if r["started"] and r["ended"]],
    }, load_average_at_end=load_average())
    print(json.dumps({"latencies_seconds": latencies}, indent=2))


if __name__ == "__main__":
    main()
