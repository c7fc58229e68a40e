"""Benchmark: the real-time API against `mlflow models serve` on the same champion, same machine, same run.

Both servers run on 127.0.0.1 as their users start them, one uvicorn worker each:

- ours: `marketing-ml serve` (the three champions and the online store of the data directory);
- MLflow's: `mlflow models serve -m models:/conversion@champion --env-manager local`.

A bounded asyncio load generator (raw HTTP/1.1 keep-alive on uvloop, requests encoded beforehand, so the
client costs ~0.1 ms of CPU per request instead of httpx's ~0.5 ms) sends, for a random sample of stored
clients:

- `GET /v1/clients/{id}/scores` (ours: conversion + churn + six NBA response models + exact top-3 reasons
  for conversion and churn, from the in-memory store);
- `POST /v1/score` with the client's feature row (ours: the same scoring, from a JSON payload);
- `POST /invocations` with the client's conversion feature row (MLflow: the conversion model only).

Closed loop at 1, 16 and 64 concurrent connections (p50/p99 latency, throughput), then an open loop at a
fixed rate (default 3 runs of 20 s at 200 requests/s, open loop, so a slow server cannot hide queueing),
each followed by a control run of `GET /healthz` at the same rate: the tail the machine itself adds. Server CPU per request comes from the
server process's own CPU time. The load generator shares the machine's cores with the server, as on a
laptop, and the load average before and after is recorded.

    python benchmarks/serving.py [--data-dir DIR] [--clients 50000] [--days 365] [--requests 4000]

`--data-dir` is reused if it holds registered champions and the online feature table; otherwise the data,
features, models and registry steps are built there first with `marketing-ml run` (at 50k clients x 365
days that takes a while). Results: benchmarks/results/serving.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from results_file import load_average, write_results

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "benchmark-key"
CONCURRENCY = (1, 16, 64)
WARMUP = 300


# ---- the world --------------------------------------------------------------------------------------


def environment(data_dir: Path, start: dt.date | None = None) -> dict[str, str]:
    env = {**os.environ, "MARKETING_ML_HOME": str(data_dir), "MARKETING_ML_API_KEYS": API_KEY,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           # `mlflow models serve` execs `uvicorn` from PATH
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
           "MLFLOW_TRACKING_URI": f"sqlite:///{data_dir / 'mlflow.db'}", "MLFLOW_DISABLE_TELEMETRY": "true"}
    if start is not None:
        env["MARKETING_ML_START_DATE"] = start.isoformat()
    return env


def world_is_built(data_dir: Path) -> bool:
    import duckdb

    from marketing_ml.registry.store import CHAMPION, alias_version
    from marketing_ml.serving.models import SERVED_TASKS

    if not (data_dir / "warehouse.duckdb").exists() or not (data_dir / "mlflow.db").exists():
        return False
    from mlflow import MlflowClient

    uri = f"sqlite:///{data_dir / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    if any(alias_version(client, task, CHAMPION) is None for task in SERVED_TASKS):
        return False
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as conn:
        return bool(conn.execute("select count(*) from information_schema.tables where table_schema = 'features' "
                                 "and table_name = 'online_client_features'").fetchone()[0])


def build_world(data_dir: Path, clients: int, days: int) -> float:
    end = dt.date.today() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=days - 1)
    command = [sys.executable, "-m", "marketing_ml.cli", "run", "--clients", str(clients),
               "--end-date", end.isoformat()]
    for step in ("data", "features", "models", "registry"):
        command += ["--step", step]
    print(f"building the world in {data_dir}: {' '.join(command[1:])}", flush=True)
    began = time.perf_counter()
    subprocess.run(command, env=environment(data_dir, start), check=True)
    return time.perf_counter() - began


# ---- servers -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def server(command: list[str], env: dict[str, str], ready_url: str, log: Path, timeout: float = 300):
    """Start a server process, wait until `ready_url` answers 200, stop it (SIGINT, then kill) afterwards."""
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None:
                    raise SystemExit(f"{command[0]} exited with {process.returncode}; see {log}")
                try:
                    with urllib.request.urlopen(ready_url, timeout=2) as response:
                        if response.status == 200:
                            break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit(f"{ready_url} not ready after {timeout}s; see {log}")
                time.sleep(0.5)
            yield process
        finally:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children (from /proc)."""
    ticks = os.sysconf("SC_CLK_TCK")
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / ticks


def process_tree_cpu(pid: int) -> float:
    """CPU seconds of `pid` and its live descendants (`mlflow models serve` runs uvicorn as a child)."""
    total = cpu_seconds(pid)
    for child in Path(f"/proc/{pid}/task").glob("*/children"):
        for child_pid in child.read_text().split():
            total += process_tree_cpu(int(child_pid))
    return total


# ---- the load generator --------------------------------------------------------------------------------


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes) -> int:
    writer.write(raw)
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    start = lower.index(b"content-length:") + len(b"content-length:")
    length = int(lower[start:lower.index(b"\r\n", start)])
    await reader.readexactly(length)
    return int(head[9:12])


async def _connections(port: int, n: int):
    return [await asyncio.open_connection("127.0.0.1", port) for _ in range(n)]


async def closed_loop(port: int, requests: list[bytes], concurrency: int, total: int) -> dict:
    """`concurrency` connections, each sending its next request as soon as the previous answer arrives."""
    connections = await _connections(port, concurrency)
    latencies: list[float] = []
    statuses: list[int] = []
    order = iter(range(total))

    async def worker(reader, writer):
        for i in order:
            began = time.perf_counter()
            statuses.append(await _exchange(reader, writer, requests[i % len(requests)]))
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker(r, w) for r, w in connections))
    elapsed = time.perf_counter() - began
    for _, writer in connections:
        writer.close()
    return summary(latencies, statuses, elapsed)


async def open_loop(port: int, requests: list[bytes], rate: float, total: int, pool: int = 32) -> dict:
    """Request i is due at t0 + i / rate whatever happened before (open loop). Its latency counts from the
    moment the client is ready to send it (the due time, or later if the client's own timer fired late),
    so waiting for a free connection behind slow answers - queueing - is included."""
    idle: asyncio.Queue = asyncio.Queue()
    for connection in await _connections(port, pool):
        idle.put_nowait(connection)
    latencies: list[float] = []
    statuses: list[int] = []
    t0 = time.perf_counter() + 0.05  # perf_counter, not loop.time(): uvloop's clock ticks in milliseconds

    async def one(i: int) -> None:
        scheduled = t0 + i / rate
        await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
        ready = max(scheduled, time.perf_counter())
        reader, writer = await idle.get()
        statuses.append(await _exchange(reader, writer, requests[i % len(requests)]))
        latencies.append(time.perf_counter() - ready)
        idle.put_nowait((reader, writer))

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(total)))
    elapsed = time.perf_counter() - began
    while not idle.empty():
        idle.get_nowait()[1].close()
    return summary(latencies, statuses, elapsed)


def summary(latencies: list[float], statuses: list[int], elapsed: float) -> dict:
    ms = np.asarray(latencies) * 1000
    return {"requests": len(ms), "errors": sum(s != 200 for s in statuses),
            "p50_ms": round(float(np.percentile(ms, 50)), 3), "p90_ms": round(float(np.percentile(ms, 90)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "max_ms": round(float(ms.max()), 3),
            "throughput_rps": round(len(ms) / elapsed, 1)}


def measure(name: str, port: int, pid: int, requests: list[bytes], total: int, rate: float, rate_requests: int,
            rate_runs: int, control: list[bytes] | None = None) -> dict:
    """Closed loop at each concurrency, then `rate_runs` open-loop runs at `rate` (each followed by the same
    run on the `control` requests, if given: a route that does no work shows the tail the machine adds)."""
    results: dict = {}
    asyncio.run(closed_loop(port, requests, 4, WARMUP))
    for concurrency in CONCURRENCY:
        cpu = process_tree_cpu(pid)
        result = asyncio.run(closed_loop(port, requests, concurrency, total))
        result["server_cpu_ms_per_request"] = round((process_tree_cpu(pid) - cpu) * 1000 / total, 3)
        results[f"concurrency_{concurrency}"] = result
        print(f"{name:28s} c={concurrency:<3d} p50 {result['p50_ms']:7.2f} ms  p99 {result['p99_ms']:7.2f} ms  "
              f"{result['throughput_rps']:8.1f} req/s  server CPU {result['server_cpu_ms_per_request']:.2f} ms/req"
              f"  errors {result['errors']}", flush=True)
    key = f"fixed_rate_{rate:g}"
    capacity = max(r["throughput_rps"] for r in results.values())
    if capacity < rate:  # an open loop above capacity only measures a growing queue
        results[key] = {"skipped": f"closed-loop capacity {capacity:.0f} req/s is below {rate:g}"}
        print(f"{name:28s} {rate:g} req/s: skipped, capacity {capacity:.0f} req/s", flush=True)
        return results
    results[key], controls = [], []
    for run in range(rate_runs):
        result = asyncio.run(open_loop(port, requests, rate, rate_requests))
        results[key].append(result)
        line = f"{name:28s} {rate:g} req/s run {run + 1}: p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms"
        if control is not None:
            controls.append(asyncio.run(open_loop(port, control, rate, rate_requests)))
            line += f"  (control p50 {controls[-1]['p50_ms']:.2f} ms  p99 {controls[-1]['p99_ms']:.2f} ms)"
        print(line + f"  errors {result['errors']}", flush=True)
    if controls:
        results[f"control_GET_healthz_{key}"] = controls
    return results


# ---- requests ----------------------------------------------------------------------------------------


def http_get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {API_KEY}\r\n\r\n".encode()


def http_post(path: str, body: dict, key: bool) -> bytes:
    payload = json.dumps(body).encode()
    auth = f"X-API-Key: {API_KEY}\r\n" if key else ""
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload


def sample_rows(data_dir: Path, n: int, seed: int = 7):
    import duckdb

    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as conn:
        ids = [r[0] for r in conn.execute("select client_id from features.online_client_features").fetchall()]
        chosen = random.Random(seed).sample(ids, min(n, len(ids)))
        conn.register("chosen", pd.DataFrame({"client_id": chosen}))
        rows = conn.execute("select f.* from features.online_client_features f join chosen using (client_id)").fetchdf()
    return len(ids), rows


def jsonable(value):
    return value.item() if hasattr(value, "item") else value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, default=Path(tempfile.gettempdir()) / "marketing_ml_serving_bench")
    parser.add_argument("--clients", type=int, default=50_000, help="clients of a world built here (default 50,000)")
    parser.add_argument("--days", type=int, default=365, help="days of history of a world built here")
    parser.add_argument("--requests", type=int, default=4000, help="requests per concurrency level")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s of the fixed-rate run")
    parser.add_argument("--rate-seconds", type=float, default=20.0, help="length of one fixed-rate run")
    parser.add_argument("--rate-runs", type=int, default=3, help="fixed-rate runs (each with its control run)")
    parser.add_argument("--sample", type=int, default=2000, help="distinct clients requests are drawn from")
    args = parser.parse_args()

    from marketing_ml.registry.predictor import load_champion

    data_dir = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    build_seconds = None if world_is_built(data_dir) else build_world(data_dir, args.clients, args.days)
    env = environment(data_dir)
    uri = env["MLFLOW_TRACKING_URI"]
    champions = {task: load_champion(task, uri) for task in ("conversion", "churn", "nba")}
    online_clients, rows = sample_rows(data_dir, args.sample)
    conversion_columns = list(champions["conversion"].predictor.feature_columns)
    payload_columns = list(dict.fromkeys(c for m in champions.values() for c in m.predictor.feature_columns))
    records = rows.to_dict(orient="records")
    requests = {
        "ours GET /v1/clients/{id}/scores": [http_get(f"/v1/clients/{r['client_id']}/scores") for r in records],
        "ours POST /v1/score": [http_post("/v1/score", {"features": {c: jsonable(r[c]) for c in payload_columns}}, True)
                                for r in records],
        "mlflow POST /invocations": [
            http_post("/invocations", {"dataframe_split": {
                "columns": conversion_columns, "data": [[jsonable(r[c]) for c in conversion_columns]]}}, False)
            for r in records],
    }
    ours_port, mlflow_port = free_port(), free_port()
    logs = Path(tempfile.mkdtemp(prefix="mm_serving_bench_logs_"))
    load_before = load_average()
    results = {}
    rate_requests = int(args.rate * args.rate_seconds)
    with server([sys.executable, "-m", "marketing_ml.cli", "serve", "--port", str(ours_port), "--log-level", "warning"],
                env, f"http://127.0.0.1:{ours_port}/readyz", logs / "ours.log") as ours:
        get, post = "ours GET /v1/clients/{id}/scores", "ours POST /v1/score"
        results[get] = measure(get, ours_port, ours.pid, requests[get], args.requests, args.rate, rate_requests,
                               args.rate_runs, control=[http_get("/healthz")])
        results[post] = measure(post, ours_port, ours.pid, requests[post], args.requests, args.rate, rate_requests,
                                args.rate_runs)
    with server([sys.executable, "-m", "mlflow", "models", "serve", "-m", "models:/conversion@champion",
                 "--env-manager", "local", "-h", "127.0.0.1", "-p", str(mlflow_port)],
                env, f"http://127.0.0.1:{mlflow_port}/ping", logs / "mlflow.log") as mlflow_server:
        name = "mlflow POST /invocations"
        results[name] = measure(name, mlflow_port, mlflow_server.pid, requests[name], args.requests, args.rate,
                                rate_requests, args.rate_runs)

    ours_get, ours_post = results["ours GET /v1/clients/{id}/scores"], results["ours POST /v1/score"]
    theirs_p50 = results["mlflow POST /invocations"]["concurrency_1"]["p50_ms"]
    key = f"fixed_rate_{args.rate:g}"
    goals = {
        "p99_ms_at_fixed_rate_per_run": [r["p99_ms"] for r in ours_get[key]], "goal_p99_ms": 5.0,
        "control_p99_ms_at_fixed_rate_per_run": [r["p99_ms"] for r in ours_get[f"control_GET_healthz_{key}"]],
        "p50_speedup_vs_mlflow_concurrency_1": round(theirs_p50 / ours_get["concurrency_1"]["p50_ms"], 2),
        "p50_speedup_vs_mlflow_post_score_concurrency_1": round(theirs_p50 / ours_post["concurrency_1"]["p50_ms"], 2),
        "goal_speedup": 5.0,
    }
    write_results("serving", {
        "world": {"online_clients": online_clients, "clients_sampled": len(records), "build_seconds": build_seconds},
        "champions": {task: {"version": m.version, "family": m.predictor.family} for task, m in champions.items()},
        "setup": {"workers_per_server": 1, "requests_per_level": args.requests, "warmup_requests": WARMUP,
                  "fixed_rate_rps": args.rate, "fixed_rate_requests_per_run": rate_requests,
                  "fixed_rate_runs": args.rate_runs,
                  "load_generator": "asyncio + uvloop, raw HTTP/1.1 keep-alive, same machine"},
        "goals": goals,
        "results": results,
    }, load_average_before=load_before, load_average_after=load_average())
    print(json.dumps(goals, indent=2))


if __name__ == "__main__":
    import uvloop

    uvloop.install()
    main()
