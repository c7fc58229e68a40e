"""The README's commands are the ones CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    test_command = next(line for block in _bash_blocks(readme) for line in block.splitlines() if line.endswith("pytest"))
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command + " || status=$?" in ci


def test_readme_main_command_runs_the_cli():
    readme = (ROOT / "README.md").read_text()
    assert any(line.endswith("marketing-ml run") and "pip install torch==2.13.0" in line
               for block in _bash_blocks(readme) for line in block.splitlines())
