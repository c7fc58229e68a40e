"""The README: its commands are the ones CI runs, its figures are the benchmarks', its diagram is the asset graph."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    test_command = next(line for block in _bash_blocks(readme) for line in block.splitlines() if line.endswith("pytest"))
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command + " || status=$?" in ci


def test_readme_main_command_runs_the_cli():
    readme = (ROOT / "README.md").read_text()
    assert any(line.endswith("marketing-ml run") and "pip install torch==2.13.0" in line
               for block in _bash_blocks(readme) for line in block.splitlines())


# ---- measured figures: generated tables and quoted figures match benchmarks/results/*.json ----------------


def _benchmark_readme():
    """benchmarks/readme.py (a script, not a package module) loaded by path."""
    spec = importlib.util.spec_from_file_location("benchmark_readme", ROOT / "benchmarks" / "readme.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve the module's string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_readme_tables_are_generated_from_the_benchmark_results():
    bench = _benchmark_readme()
    blocks = bench.table_blocks((ROOT / "README.md").read_text())
    assert set(blocks) == set(bench.TABLES), "README table blocks and benchmarks/readme.py TABLES differ"
    stale = [name for name, body in blocks.items() if body != bench.TABLES[name]()]
    assert not stale, f"tables {stale} differ from benchmarks/results: run `python benchmarks/readme.py`"


def test_every_quoted_figure_matches_its_benchmark_result():
    bench = _benchmark_readme()
    figures = bench.quoted_figures((ROOT / "README.md").read_text())
    assert len(figures) >= 20, "the README's measured sections quote their figures with a source comment"
    results = {name: bench.load(name) for name in {f.file for f in figures}}
    wrong = [f"line {f.line}: {f.shown} vs {f.file} {f.path} = {f.expected(results[f.file]):g}"
             for f in figures if not f.matches(results[f.file])]
    assert not wrong, wrong


def test_a_quoted_figure_that_drifted_is_caught():
    bench = _benchmark_readme()
    results = bench.load("training.json")
    exact, drifted, scaled = bench.quoted_figures(
        "0.993<!-- training.json goals.conversion.best_auc_ratio_to_oracle --> "
        "0.994<!-- training.json goals.conversion.best_auc_ratio_to_oracle --> "
        "86.8<!-- training.json goals.nba.best_captured_lift *100 -->")
    assert exact.matches(results) and scaled.matches(results) and not drifted.matches(results)


# ---- the architecture diagram is the asset graph ----------------------------------------------------------

ARROW = re.compile(r"\s*(-->|-\.->)\s*(?:\|[^|]*\|)?\s*")
# drawn nodes that stand for several assets, and nodes that are not assets
COLLAPSED = {
    "stg": lambda key, group: key.startswith("stg_"),
    "models": lambda key, group: group == "training" and not key.startswith(("training_set_", "nba_policy")),
}
NOT_ASSETS = {"landing", "api"}


def _diagram() -> tuple[dict[str, str | None], list[tuple[str, str, str]]]:
    """(node -> subgraph it is first drawn in, edges as (kind, source, target)) of the README's Mermaid."""
    block = re.search(r"```mermaid\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL).group(1)
    nodes: dict[str, str | None] = {}
    edges = []
    subgraph = None
    for line in block.splitlines():
        line = line.strip()
        if not line or line.startswith(("%%", "flowchart", "direction")):
            continue
        if line.startswith("subgraph "):
            subgraph = re.match(r"subgraph (\w+)", line).group(1)
            nodes.setdefault(subgraph, None)
            continue
        if line == "end":
            subgraph = None
            continue
        parts = ARROW.split(line)  # node, arrow, node, arrow, node ...
        ids = [re.match(r"\w+", p).group(0) for p in parts[::2]]
        for node in ids:
            nodes.setdefault(node, subgraph)
        edges += [(parts[i], ids[i // 2], ids[i // 2 + 1]) for i in range(1, len(parts), 2)]
    return nodes, edges


def test_the_architecture_diagram_draws_the_asset_graph(tmp_path):
    from marketing_ml.definitions import build_definitions
    from marketing_ml.settings import load_settings

    defs = build_definitions(load_settings(environ={"MARKETING_ML_HOME": str(tmp_path)}))
    graph = defs.resolve_asset_graph()
    group = {key.to_user_string(): graph.get(key).group_name for key in graph.get_all_asset_keys()}
    upstream = {key.to_user_string(): {p.to_user_string() for p in graph.get(key).parent_keys}
                for key in graph.get_all_asset_keys()}
    automation = {s.name for s in defs.sensors} | {s.name for s in defs.schedules}
    nodes, edges = _diagram()

    groups = {node for node, where in nodes.items() if node in set(group.values())}
    assert groups == set(group.values()), "every asset group is a subgraph"
    unknown = set(nodes) - set(group) - groups - set(COLLAPSED) - NOT_ASSETS - automation
    assert not unknown, f"nodes that are neither assets, groups, sensors nor schedules: {unknown}"
    misplaced = {node: where for node, where in nodes.items() if node in group and where != group[node]}
    assert not misplaced, f"assets drawn outside their group's subgraph: {misplaced}"
    drawn = {key for key in group if key in nodes or any(is_member(key, group[key]) for is_member in COLLAPSED.values())}
    assert drawn == set(group), f"assets missing from the diagram: {set(group) - drawn}"

    def members(node: str) -> set[str]:
        if node in group:
            return {node}
        if node in COLLAPSED:
            return {key for key in group if COLLAPSED[node](key, group[key])}
        return {key for key in group if group[key] == node}

    for kind, source, target in edges:
        if kind == "-->":
            assert any(upstream[t] & members(source) for t in members(target)), f"{source} --> {target} is no dependency"


def test_the_bring_your_own_data_section_is_rendered_from_the_contract():
    from marketing_ml.sources.contract import readme_with_contract

    readme = (ROOT / "README.md").read_text()
    assert readme_with_contract(readme) == readme, "regenerate it: python -m marketing_ml.sources.contract README.md"
