"""The README's measured figures, tied to the benchmark results so the two cannot drift apart.

- **Tables** are generated from `benchmarks/results/*.json` and sit in the README between
  `<!-- table: NAME -->` and `<!-- /table -->`. After rerunning a benchmark, regenerate them:

      python benchmarks/readme.py

- **Figures quoted in prose** carry their source right after the number, in an HTML comment GitHub does
  not render: `0.993<!-- training.json goals.conversion.best_auc_ratio_to_oracle -->`. The path is keys
  separated by dots (a key with spaces or dots in double quotes), list items as `[i]`; an optional
  `*N` or `/N` scales the value (`*100` for a percentage, `/1000` for MB shown as GB). The figure must be
  the value rounded to as many decimals as the README shows.

`marketing_ml_tests/test_readme.py` fails when a table differs from its rendering or a quoted figure does
not match its source.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"

TABLE_BLOCK = re.compile(r"(<!-- table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /table -->)", re.DOTALL)
QUOTED_FIGURE = re.compile(
    r"(?P<shown>\d[\d,]*(?:\.\d+)?)<!--\s*(?P<file>[\w-]+\.json)\s+(?P<path>.+?)"
    r"(?:\s+(?P<op>[*/])(?P<factor>\d+(?:\.\d+)?))?\s*-->"
)
PATH_PART = re.compile(r'"(?P<quoted>[^"]+)"|(?P<key>[\w-]+)|\[(?P<index>\d+)\]|(?P<dot>\.)')


def load(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


# ---- quoted figures ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuotedFigure:
    shown: str
    file: str
    path: str
    scale: float
    line: int

    def expected(self, results: dict) -> float:
        return lookup(results, self.path) * self.scale

    def matches(self, results: dict) -> bool:
        decimals = len(self.shown.split(".")[1]) if "." in self.shown else 0
        return round(self.expected(results), decimals) == float(self.shown.replace(",", ""))


def lookup(document: object, path: str) -> float:
    """The number at `path` (e.g. `models.conversion_xgboost.auc`, `results[1].rows`) in a results file."""
    value = document
    position = 0
    for part in PATH_PART.finditer(path):
        if part.start() != position:
            raise ValueError(f"cannot read the path {path!r} at {path[position:]!r}")
        position = part.end()
        if part["dot"]:
            continue
        value = value[int(part["index"])] if part["index"] is not None else value[part["quoted"] or part["key"]]
    if position != len(path):
        raise ValueError(f"cannot read the path {path!r} at {path[position:]!r}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{path!r} is not a number: {value!r}")
    return float(value)


def quoted_figures(text: str) -> list[QuotedFigure]:
    figures = []
    for match in QUOTED_FIGURE.finditer(text):
        factor = float(match["factor"] or 1)
        figures.append(QuotedFigure(match["shown"], match["file"], match["path"].strip(),
                                    1 / factor if match["op"] == "/" else factor,
                                    text.count("\n", 0, match.start()) + 1))
    return figures


# ---- generated tables ----------------------------------------------------------------------------------


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _table(header: list[str], rows: list[list[object]]) -> str:
    return "\n".join([_row(*header), _row(*["---"] * len(header)), *(_row(*r) for r in rows)]) + "\n"


def _ms(value: float) -> str:
    """Three significant figures or so, the way latencies read: 0.56, 12.4, 173, 4,530."""
    return f"{value:.2f}" if value < 1 else f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def _gb(mb: float) -> str:
    return f"{mb / 1000:.1f} GB"


def simulation_table() -> str:
    runs = load("simulation.json")["results"]
    return _table(
        ["clients", "days", "events", "simulate", "write to DuckDB", "peak memory (main / worker)"],
        [[f"{r['clients']:,}", r["days"], f"{r['events']:,}", f"{r['simulate_seconds']:.1f} s",
          f"{r['duckdb_write_seconds']:.1f} s", f"{r['peak_rss_mb_main']:,} / {r['peak_rss_mb_worker']:,} MB"]
         for r in runs],
    )


def features_table() -> str:
    runs = {r["step"]: r for r in load("features.json")["results"]}
    labels = {"backfill": f"{runs['backfill']['as_of_dates']}-day backfill, one run, empty table",
              "partition": "one daily partition, replacing the last day"}
    return _table(
        ["build", "rows", "Dagster run", "dbt model", "dbt CPU", "peak memory (dbt)"],
        [[label, f"{runs[step]['rows']:,}", f"{runs[step]['run_seconds']:.0f} s", f"{runs[step]['dbt_model_seconds']:.0f} s",
          f"{runs[step]['dbt_cpu_seconds']:.0f} s", _gb(runs[step]["peak_rss_mb_dbt"])] for step, label in labels.items()],
    )


def _champions(training: dict) -> dict[str, str]:
    """task -> champion family, from the registry decisions ("**xgboost is @champion (v1)**")."""
    found = {}
    for task, decision in training["registry"].items():
        match = re.search(r"(\w+) is @champion", str(decision.get("decision", "")))
        if match:
            found[task] = match[1]
    return found


def _task_models(training: dict, task: str, key: str) -> list[tuple[str, dict]]:
    models = [(name.removeprefix(f"{task}_"), m) for name, m in training["models"].items() if name.startswith(f"{task}_")]
    return sorted(models, key=lambda item: -item[1][key])


def outcome_models_table() -> str:
    training = load("training.json")
    champions = _champions(training)
    rows = []
    for task in ("conversion", "churn"):
        for family, m in _task_models(training, task, "auc"):
            champion = champions.get(task) == family
            ratio = f"{m['auc_ratio_to_oracle']:.3f}"
            rows.append([f"{task} {family}" + (" (champion)" if champion else ""), f"{m['auc']:.4f}",
                         f"{m['oracle_auc']:.4f}", f"**{ratio}**" if champion else ratio,
                         f"{m['calibration_error']:.4f} ({m['oracle_calibration_error']:.4f})",
                         f"{m['training_seconds']:.0f}"])
    return _table(["model", "AUC", "oracle AUC", "AUC / oracle", "calibration error (oracle's)", "train s"], rows)


def nba_models_table() -> str:
    training = load("training.json")
    champion = _champions(training).get("nba")
    models = _task_models(training, "nba", "policy_value")
    oracle_auc = models[0][1]["oracle_auc"]
    rows = []
    for family, m in models:
        lift = f"{m['captured_lift']:.3f}"
        rows.append([family + (" (champion)" if family == champion else ""), f"{m['auc']:.4f}",
                     f"{m['policy_accuracy']:.3f}", f"{m['policy_value']:.4f}",
                     f"**{lift}**" if family == champion else lift, f"{m['training_seconds']:.0f}"])
    return _table(["NBA (6 response models)", f"response AUC (oracle {oracle_auc:.4f})", "policy accuracy",
                   "policy value", "captured lift", "train s"], rows)


def champion_latency_table() -> str:
    latency = load("training.json")["champion_predict_latency"]
    return _table(
        ["champion", "family", "one row p50", "one row p99", "rows/s in 10,000-row batches"],
        [[task, m["family"], f"{_ms(m['one_row_p50_ms'])} ms", f"{_ms(m['one_row_p99_ms'])} ms",
          f"{m['rows_per_second_10k_batch']:,}"] for task, m in latency.items()],
    )


def serving_table() -> str:
    results = load("serving.json")["results"]
    rows = []
    for name, runs in results.items():
        server, route = name.split(" ", 1)
        label = ("ours" if server == "ours" else f"`{server} models serve`") + f" `{route}`"
        closed = [runs[f"concurrency_{c}"] for c in (1, 16, 64)]
        cpu = [r["server_cpu_ms_per_request"] for r in closed]
        rows.append([label, *(f"{_ms(r['p50_ms'])} / {_ms(r['p99_ms'])} ms" for r in closed),
                     f"{max(r['throughput_rps'] for r in closed):,.0f} req/s", f"{_ms(min(cpu))}-{_ms(max(cpu))} ms"])
    return _table(["server, route", "1 connection: p50 / p99", "16: p50 / p99", "64: p50 / p99", "throughput (max)",
                   "server CPU per request"], rows)


def scoring_table() -> str:
    results = load("scoring.json")["results"]
    populations = list(results.values())
    header = ["model (family)", *(f"{p['rows']:,} rows: clients/s (per response model)" for p in populations),
              *(f"overhead at {p['rows']:,}" for p in populations)]
    rows = []
    for name in populations[0]["models"]:
        measured = [p["models"][name] for p in populations]
        per_model = [f"{m['clients_per_second']:,}" + (f" ({m['clients_per_second_per_response_model']:,})"
                     if m["response_models"] > 1 else "") for m in measured]
        rows.append([f"{name} ({measured[0]['family']})", *per_model, *(f"{m['overhead_ratio']:.2f}x" for m in measured)])
    rows.append(["`score_clients`, all three champions",
                 *(f"{p['score_clients_all_champions']['clients_per_second']:,}" for p in populations),
                 *(f"{p['score_clients_all_champions']['overhead_ratio_vs_champions_model_predict']:.2f}x" for p in populations)])
    return _table(header, rows)


def streaming_table() -> str:
    files = load("streaming.json")["files"]
    parts = ["landed_to_run_requested", "run_queued_and_launched", "run_ingest_and_rescore", "run_end_to_api_visible"]
    return _table(
        ["file", "landed -> new score in the API", "-> run requested", "-> run started", "run (ingest + rescore)",
         "run end -> API"],
        [[i + 1, f"{f['latency_seconds']:.1f} s", *(f"{f['breakdown_seconds'][k]:.1f} s" for k in parts)]
         for i, f in enumerate(files)],
    )


def business_table() -> str:
    business = load("business.json")
    labels = {"advisor_queue": "advisor queue (conversions caused)", "retention_list": "retention list (churns prevented)",
              "campaign_targets": "campaign targets (responses caused)"}
    rows = []
    for use_case, by_policy in business["over_days"].items():
        present = [p for p in ("random", "value_only", "propensity", "uplift", "oracle") if p in by_policy]
        for k, policy in enumerate(present):
            r = by_policy[policy]
            rows.append([labels[use_case] if k == 0 else "", policy.replace("_", " "), f"{r['contacts']:,.0f}",
                         f"${r['cost_usd']:,.0f}", f"{r['incremental_outcomes']:,.1f}",
                         f"${r['incremental_revenue_usd']:,.0f}", f"{r['roi']:,.2f}", f"{r['share_of_oracle_outcomes']:.1%}"])
    return _table(["list", "policy", "contacts", "cost", "incremental outcomes", "incremental annual revenue",
                   "ROI", "share of the oracle's outcomes"], rows)


def uplift_table() -> str:
    rows = []
    for r in load("uplift.json")["sensitivity"]:
        rows.append([f"{r['correlation']:.1f}", r["intervention"], f"{r['captured_share_of_oracle']:.1%}",
                     f"{r['ratio_to_propensity']:.2f}x", f"{r['rank_correlation']:.2f}", f"{r['pehe']:.4f}",
                     f"{r['qini']:.5f}", f"{r['qini_propensity']:.5f}", f"{r['oracle_qini']:.5f}"])
    return _table(["effect-propensity correlation", "intervention", "champion's share of the oracle's outcomes",
                   "vs propensity", "rank correlation with true effects", "PEHE", "Qini", "Qini by propensity",
                   "Qini by true effect"], rows)


def reliability_table() -> str:
    results = load("reliability.json")
    soak, goals = results["soak"], results["goals"]
    kinds = ", ".join(f"{count:,} {kind.replace('_', ' ')}" for kind, count in soak["files_by_kind"].items())
    return _table(
        ["landed", "in the warehouse afterwards"],
        [[f"{soak['files']:,} files ({kinds})", f"{soak['runs']:,} ingestion runs, {soak['failed_runs']} failed"],
         [f"{soak['valid_events']:,} valid events", f"{soak['distinct_events_loaded']:,} loaded, "
          f"**{goals['lost']} lost**, {goals['loaded_twice']} loaded twice"],
         [f"{soak['duplicate_events']:,} duplicate events (in duplicate files)", "skipped by event id"],
         [f"{soak['bad_records']:,} bad records", f"{soak['quarantined']:,} quarantined, "
          f"{soak['quarantined_without_reason']} without a reason"],
         ["", f"{soak['left_in_landing_zone']} files left in the landing zone, {soak['dead_letters']} dead letters"]],
    )


def pipeline_table() -> str:
    """`marketing-ml run` step by step against the issue's goals, then one generated line on the world,
    CPU, memory and load; verdicts only at the goals' scale (50,000 clients x 365 days)."""
    results = load("pipeline.json")
    world, goals, failed = results["world"], results["goals"], results["failed_step"]

    def verdict(seconds: float | None, goal: float | None) -> str:
        if goal is None:
            return ""
        if seconds is None:
            return "not measured"
        if not world["default_scale"]:
            return "not judged: smaller world"
        return "met" if seconds <= goal else "**missed**"

    measured = {s["step"]: s for s in results["steps"]}
    rows = []
    for name in (k.removesuffix("_seconds") for k in goals if k.endswith("_seconds") and not k.startswith(("goal_", "total"))):
        goal = goals.get(f"goal_{name}_seconds")
        step = measured.get(name)
        shown = ("**FAILED** after " if name == failed else "") + f"{step['seconds']:.1f} s" if step else \
            f"not run (stopped at `{failed}`)"
        rows.append([f"`{name}`", shown, f"≤ {goal} s" if goal else "", verdict(goals[f"{name}_seconds"], goal)])
    outside = results["total_seconds"] - results["steps_seconds_sum"]
    rows.append(["outside the steps (start-up, the Definitions)", f"{outside:.1f} s", "", ""])
    total = f"**{results['total_seconds']:.1f} s**" if results["completed"] else \
        f"failed at `{failed}` after {results['total_seconds']:.1f} s"
    rows.append(["whole run (`marketing-ml run`)", total, f"≤ {goals['goal_total_seconds']} s",
                 verdict(goals["total_seconds"], goals["goal_total_seconds"])])
    load_before, load_after = results["machine"]["load_average_before"], results["machine"]["load_average_after"]
    trial = "" if world["default_scale"] else "A trial on a smaller world than the goals' 50,000 x 365: "
    return _table(["step", "wall time", "goal", "verdict"], rows) + (
        f"\n{trial}{world['clients']:,} clients x {world['days']} days on {results['machine']['cpus']} CPUs, "
        f"{results['measured_on']}: CPU time {results['cpu_seconds']:,.0f} s (every process), peak memory "
        f"{_gb(results['peak_rss_mb'])} (largest process), load average {load_before[0]} before, {load_after[0]} after.\n")


def sources_table() -> str:
    results = load("sources.json")
    world, goals = results["world"], results["goals"]
    rows = [[fmt, f"{r['files']:,}", f"{r['bytes_on_disk'] / 1e6:,.0f} MB", f"{r['rows_loaded']:,}", f"{r['seconds']:.1f} s",
             f"{r['rows_per_second']:,.0f}", _gb(r["peak_rss_mb"]),
             "met" if r["seconds"] <= goals["goal_load_seconds"] and r["peak_rss_mb"] <= goals["goal_peak_rss_mb"] else "**missed**"]
            for fmt, r in results["results"].items()]
    return _table(["events files", "files", "on disk", "events loaded", "load + contract checks", "rows/s",
                   "peak memory", f"goal (≤ {goals['goal_load_seconds']} s, ≤ {_gb(goals['goal_peak_rss_mb'])})"], rows) + (
        f"\n{world['clients']:,} clients x {world['days']} days on {results['machine']['cpus']} CPUs, "
        f"{results['measured_on']}, load average {results['machine']['load_average_before'][0]} before, "
        f"{results['machine']['load_average_after'][0]} after.\n")


TABLES: dict[str, Callable[[], str]] = {
    "simulation": simulation_table,
    "features": features_table,
    "outcome-models": outcome_models_table,
    "nba-models": nba_models_table,
    "champion-latency": champion_latency_table,
    "serving": serving_table,
    "scoring": scoring_table,
    "business-impact": business_table,
    "uplift": uplift_table,
    "streaming": streaming_table,
    "reliability": reliability_table,
    "pipeline": pipeline_table,
    "sources": sources_table,
}


def table_blocks(text: str) -> dict[str, str]:
    return {m["name"]: m["body"] for m in TABLE_BLOCK.finditer(text)}


def render(text: str) -> str:
    """The README with every table block regenerated from the results."""
    return TABLE_BLOCK.sub(lambda m: m[1] + TABLES[m["name"]]() + m[4], text)


def main() -> None:
    text = README.read_text()
    missing = set(TABLES) - set(table_blocks(text))
    if missing:
        raise SystemExit(f"README.md has no block for the tables {sorted(missing)}: add <!-- table: NAME --><!-- /table -->")
    README.write_text(render(text))
    results = {name: load(name) for name in {f.file for f in quoted_figures(text)}}
    wrong = [f for f in quoted_figures(text) if not f.matches(results[f.file])]
    for f in wrong:
        print(f"README.md:{f.line}: {f.shown} but {f.file} {f.path} gives {f.expected(results[f.file]):g}")
    print(f"tables regenerated; {len(wrong)} quoted figures to update by hand")


if __name__ == "__main__":
    main()
