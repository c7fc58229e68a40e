"""The demo notebooks: committed without outputs, and executed end to end on a trained world.

The world is a copy of the `trained` session fixture (10,000 clients x 120 days, models and champions
built through the CLI) with the inference step run for its last two days, so every table the notebooks
read exists. Each notebook runs in a fresh Jupyter kernel (nbclient), reads the data directory from
MARKETING_ML_HOME as a user's would, and notebook 04 starts, calls and stops the real API.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
from pathlib import Path

import dagster as dg
import nbformat
import pytest
from nbclient import NotebookClient

from marketing_ml.notebook import open_local_platform
from marketing_ml.settings import (
    ENV_CLIENTS,
    ENV_HISTORY_DAYS,
    ENV_REGIME_SHIFT,
    ENV_SEED,
    ENV_START_DATE,
    ENV_WAREHOUSE,
)
from marketing_ml_tests.conftest import TRAINING_END, copy_of, run_step

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = (
    "01_Data_Setup_and_Generation",
    "02_Feature_Engineering",
    "03_Model_Training_and_Registry",
    "04_Inference_and_Deployment",
)
CELL_TIMEOUT_SECONDS = 300
API_KEY = "notebook-test-key"
EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+")


def _read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)


def test_the_demo_notebooks_are_the_four_of_the_demo_guide():
    assert sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb")) == list(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_notebook_has_no_outputs(name):
    notebook = _read(name)
    nbformat.validate(notebook)
    dirty = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
             and (cell.outputs or cell.execution_count is not None or "execution" in cell.metadata)]
    assert not dirty, f"{name}: cells {dirty} carry outputs or execution state; clear them before committing"


def test_a_notebook_on_an_empty_directory_says_what_to_run_and_pins_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("MARKETING_ML_HOME", str(tmp_path / "nothing"))
    with pytest.raises(FileNotFoundError, match="marketing-ml run"):
        open_local_platform()
    assert not (tmp_path / "nothing").exists()


@pytest.fixture(scope="module")
def demo_world(trained, tmp_path_factory):
    """A private copy of the trained world with the inference step run for its last two days."""
    settings = copy_of(trained[0], tmp_path_factory.mktemp("mm_notebooks") / "world")
    instance = dg.DagsterInstance.from_config(str(settings.dagster_home))
    run_step(settings, "step_inference", TRAINING_END - dt.timedelta(days=1), TRAINING_END, instance=instance)
    return settings


def _texts(notebook: nbformat.NotebookNode) -> list[str]:
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                texts.append(output.text)
            elif output.output_type in ("execute_result", "display_data"):
                texts += [v for k, v in output.data.items() if k.startswith("text/")]
    return texts


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_on_the_trained_world(name, demo_world, monkeypatch):
    monkeypatch.setenv("MARKETING_ML_HOME", str(demo_world.data_dir))
    monkeypatch.setenv("MARKETING_ML_API_KEYS", API_KEY)
    for variable in (ENV_CLIENTS, ENV_HISTORY_DAYS, ENV_START_DATE, ENV_SEED, ENV_REGIME_SHIFT, ENV_WAREHOUSE):
        monkeypatch.delenv(variable, raising=False)  # the world comes from the data directory's pin
    notebook = _read(name)
    # raises CellExecutionError, with the failing cell and its traceback, if any cell fails
    NotebookClient(notebook, timeout=CELL_TIMEOUT_SECONDS, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOK_DIR)}}).execute()

    images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, f"{name} drew no plot"
    texts = _texts(notebook)
    assert not [t for t in texts if EMAIL.search(t)], f"{name} shows an e-mail address"
    if name.startswith("02"):  # the notebook recomputes two features from raw events before the as-of date
        for feature in ("events_7d", "calculator_use_30d"):
            assert re.search(rf"{feature}: 0 of [1-9][\d,]* clients differ", "\n".join(texts)), texts
    if name.startswith("04"):
        served = "\n".join(texts)
        port = int(re.search(r"ready on http://127\.0\.0\.1:(\d+)", served).group(1))
        assert "no key: 401 | wrong key: 403" in served
        assert "server stopped (exit code 0)" in served
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, "the notebook left its API server running"
